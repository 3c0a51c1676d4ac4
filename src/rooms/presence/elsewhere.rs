//! Who is in which room on *other* nodes, for every room, hosted here or not. Rooms this node
//! hosts keep their own member lists (for presence frames); this map exists so that the lobby
//! can count rooms whose members are all on other nodes.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::broker::NodeId;
use crate::domain::{RoomName, UserId};

#[derive(Default)]
pub struct Elsewhere {
    rooms: Mutex<HashMap<RoomName, HashMap<UserId, HashSet<NodeId>>>>,
}

impl Elsewhere {
    fn rooms(&self) -> MutexGuard<'_, HashMap<RoomName, HashMap<UserId, HashSet<NodeId>>>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one node's change; true if the room's count of people changed.
    pub fn set(&self, room: &RoomName, node: &NodeId, user: &UserId, present: bool) -> bool {
        let mut rooms = self.rooms();
        let users = rooms.entry(room.clone()).or_default();
        let before = users.len();
        if present {
            users.entry(user.clone()).or_default().insert(node.clone());
        } else if let Some(nodes) = users.get_mut(user) {
            nodes.remove(node);
            if nodes.is_empty() {
                users.remove(user);
            }
        }
        let changed = users.len() != before;
        if users.is_empty() {
            rooms.remove(room);
        }
        changed
    }

    /// Forgets a node; returns the rooms whose counts changed.
    pub fn node_gone(&self, node: &NodeId) -> Vec<RoomName> {
        let mut rooms = self.rooms();
        let mut changed = Vec::new();
        rooms.retain(|room, users| {
            let before = users.len();
            users.retain(|_, nodes| {
                nodes.remove(node);
                !nodes.is_empty()
            });
            if users.len() != before {
                changed.push(room.clone());
            }
            !users.is_empty()
        });
        changed
    }

    /// Replaces everything with a full read; returns the rooms whose counts changed.
    pub fn replace(&self, entries: Vec<(RoomName, NodeId, UserId)>) -> Vec<RoomName> {
        let mut fresh: HashMap<RoomName, HashMap<UserId, HashSet<NodeId>>> = HashMap::new();
        for (room, node, user) in entries {
            fresh
                .entry(room)
                .or_default()
                .entry(user)
                .or_default()
                .insert(node);
        }
        let mut rooms = self.rooms();
        let mut changed: Vec<RoomName> = rooms
            .iter()
            .filter(|(room, users)| fresh.get(*room).map_or(0, HashMap::len) != users.len())
            .map(|(room, _)| room.clone())
            .collect();
        changed.extend(
            fresh
                .keys()
                .filter(|room| !rooms.contains_key(*room))
                .cloned(),
        );
        *rooms = fresh;
        changed
    }

    pub fn count(&self, room: &RoomName) -> usize {
        self.rooms().get(room).map_or(0, HashMap::len)
    }

    pub fn counts(&self) -> Vec<(RoomName, usize)> {
        self.rooms()
            .iter()
            .map(|(room, users)| (room.clone(), users.len()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_people_across_nodes_once() {
        let elsewhere = Elsewhere::default();
        let room = RoomName::parse("r").unwrap();
        let (a, b): (NodeId, NodeId) = ("a".into(), "b".into());
        let ann = UserId::from_trusted("ann".into());
        assert!(elsewhere.set(&room, &a, &ann, true));
        assert!(
            !elsewhere.set(&room, &b, &ann, true),
            "same person on a second node"
        );
        assert_eq!(elsewhere.count(&room), 1);
        assert!(!elsewhere.set(&room, &a, &ann, false));
        assert_eq!(elsewhere.node_gone(&b), vec![room.clone()]);
        assert_eq!(elsewhere.count(&room), 0);
    }
}
