//! This node's connections by session, so that a session signed out or revoked on any node
//! can close its connections here (4003), and by user, so that what concerns a user (their
//! read markers, an administrator closing them) reaches all their connections.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::outbox::Outbox;
use crate::domain::{ConnectionId, UserId};
use crate::protocol::server::Frame;

#[derive(Default)]
pub struct Registry {
    by_session: Mutex<HashMap<String, Vec<(ConnectionId, Outbox)>>>,
    by_user: Mutex<HashMap<UserId, Vec<(ConnectionId, Outbox)>>>,
}

impl Registry {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<(ConnectionId, Outbox)>>> {
        self.by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists a connection under its session until [`Registry::remove`].
    pub fn add(&self, sid: &str, conn: ConnectionId, outbox: Outbox) {
        self.map()
            .entry(sid.to_owned())
            .or_default()
            .push((conn, outbox));
    }

    pub fn remove(&self, sid: &str, conn: ConnectionId) {
        let mut map = self.map();
        if let Some(conns) = map.get_mut(sid) {
            conns.retain(|(held, _)| *held != conn);
            if conns.is_empty() {
                map.remove(sid);
            }
        }
    }

    /// Lists a connection under its user until [`Registry::remove_user`].
    pub fn add_user(&self, user: &UserId, conn: ConnectionId, outbox: Outbox) {
        let mut map = self.by_user.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(user.clone()).or_default().push((conn, outbox));
    }

    pub fn remove_user(&self, user: &UserId, conn: ConnectionId) {
        let mut map = self.by_user.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(conns) = map.get_mut(user) {
            conns.retain(|(held, _)| *held != conn);
            if conns.is_empty() {
                map.remove(user);
            }
        }
    }

    /// Queues `frame` on every connection of `user` on this node.
    pub fn send_to_user(&self, user: &UserId, frame: &Frame) {
        let map = self.by_user.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, outbox) in map.get(user).into_iter().flatten() {
            outbox.push(frame.clone());
        }
    }

    /// Asks every connection of `user` on this node to close with `code`.
    pub fn close_user(&self, user: &UserId, code: u16) {
        let map = self.by_user.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, outbox) in map.get(user).into_iter().flatten() {
            outbox.close_with(code);
        }
    }

    /// Asks every connection on this node to close with `code` (the server is stopping).
    pub fn close_all(&self, code: u16) {
        let map = self.by_user.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, outbox) in map.values().flatten() {
            outbox.close_with(code);
        }
    }

    /// Asks every connection of session `sid` to close with `code`.
    pub fn close_session(&self, sid: &str, code: u16) {
        let conns = self.map().remove(sid).unwrap_or_default();
        for (_, outbox) in conns {
            outbox.close_with(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::outbox;

    #[test]
    fn closing_a_session_closes_its_connections_only() {
        let registry = Registry::default();
        let (mine, my_mailbox) = outbox::outbox();
        let (other, other_mailbox) = outbox::outbox();
        registry.add("a", ConnectionId(1), mine);
        registry.add("b", ConnectionId(2), other);
        registry.close_session("a", 4003);
        assert_eq!(my_mailbox.cut_code(), Some(4003));
        assert_eq!(other_mailbox.cut_code(), None);
        registry.remove("b", ConnectionId(2));
        registry.close_session("b", 4003);
        assert_eq!(other_mailbox.cut_code(), None);
    }

    #[test]
    fn closing_a_user_closes_all_their_connections_only() {
        let registry = Registry::default();
        let (ann, bob) = (UserId::generate(), UserId::generate());
        let (tab_one, one) = outbox::outbox();
        let (tab_two, two) = outbox::outbox();
        let (bobs, bob_mailbox) = outbox::outbox();
        registry.add_user(&ann, ConnectionId(1), tab_one);
        registry.add_user(&ann, ConnectionId(2), tab_two);
        registry.add_user(&bob, ConnectionId(3), bobs);
        registry.close_user(&ann, 4005);
        assert_eq!((one.cut_code(), two.cut_code()), (Some(4005), Some(4005)));
        assert_eq!(bob_mailbox.cut_code(), None);
    }
}
