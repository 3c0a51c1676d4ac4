//! Who is in which room on this node, presence counted per user (across nodes when there are
//! several), and the fan-out of committed messages to local connections.
//!
//! Locking: one std `Mutex` for the room map (held only to find, create or drop a room) and one
//! per room (held for a fan-out or a membership change). Always map before room, never the
//! other way; neither is ever held across an `.await`. Frames are encoded before the room lock
//! is taken, so the lock covers only refcount pushes into bounded queues.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc;

use super::elsewhere::Elsewhere;
use super::lobby::Lobby;
use super::outbox::Outbox;
use super::recent::Recent;
use crate::broker::{Deliver, NodeId, PresenceChange, Published};
use crate::domain::{ConnectionId, Message, RoomName, User, UserId};
use crate::protocol::server::{self, Frame, Joined, RoomCount};
use crate::store::Page;

/// Live messages a joining connection may collect while its history is being read; past this
/// the join is cut off as too slow (it resumes with `since`).
const PENDING_CAP: usize = 4096;

/// Where this node's presence changes go when other nodes must hear of them. Unbounded because
/// the hub must not wait under a lock; it carries one entry per join or leave, bounded in
/// practice by the connection rate.
pub type Announcer = mpsc::UnboundedSender<PresenceChange>;

#[derive(Default)]
pub struct Hub {
    rooms: Mutex<HashMap<RoomName, Arc<Mutex<Room>>>>,
    pub lobby: Lobby,
    announcer: Option<Announcer>,
    elsewhere: Elsewhere,
}

#[derive(Default)]
struct Room {
    subscribers: HashMap<ConnectionId, Subscriber>,
    /// Distinct users present: with a connection here, or on another node.
    members: HashMap<UserId, Member>,
    /// The highest seq fanned out here: a later one must be exactly the next.
    last_seq: Option<u64>,
    /// The newest messages, so that most joins need no store read.
    recent: Recent,
    /// Until the first view of other nodes' members is merged, which (node, user) pairs live
    /// events have already settled: those are newer than that view.
    settled: Option<HashSet<(NodeId, UserId)>>,
}

struct Member {
    user: User,
    /// This node's connections of the user in this room.
    connections: u32,
    /// Other nodes where the user is in this room.
    remote: HashSet<NodeId>,
}

impl Member {
    fn present(&self) -> bool {
        self.connections > 0 || !self.remote.is_empty()
    }
}

struct Subscriber {
    user: UserId,
    outbox: Outbox,
    state: Delivery,
}

enum Delivery {
    /// Joined, history not yet read: live messages wait here so none slips between the
    /// history read and the first live frame.
    Pending(Vec<Arc<Message>>),
    /// Receiving live messages with a seq above what `joined` already carried.
    Live { delivered_up_to: u64 },
}

/// A poisoned lock means a panic mid-update elsewhere; the maps stay structurally sound, so
/// carry on rather than take every other user down too.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// A hub whose presence changes are also sent to other nodes through `announcer`.
    pub fn clustered(announcer: Announcer) -> Self {
        Self {
            announcer: Some(announcer),
            ..Self::default()
        }
    }

    fn room(&self, room: &RoomName) -> Option<Arc<Mutex<Room>>> {
        lock(&self.rooms).get(room).cloned()
    }

    /// Adds a connection to a room. It receives nothing of the room until [`Hub::activate`].
    /// Subscribing before reading history is what makes the join race-free.
    pub fn subscribe(&self, room: &RoomName, conn: ConnectionId, user: &User, outbox: Outbox) {
        let cell = lock(&self.rooms)
            .entry(room.clone())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Room {
                    settled: Some(HashSet::new()),
                    ..Room::default()
                }))
            })
            .clone();
        let mut state = lock(&cell);
        state.subscribers.insert(
            conn,
            Subscriber {
                user: user.id.clone(),
                outbox,
                state: Delivery::Pending(Vec::new()),
            },
        );
        let member = state.member(user);
        let was_present = member.present();
        member.connections += 1;
        if member.connections == 1 {
            self.announce(room, user, true);
        }
        if !was_present {
            let frame = server::presence(room, std::slice::from_ref(user), &[]);
            state.broadcast_live(&frame);
            self.lobby.changed(room);
        }
    }

    /// Sends `joined` (history plus whatever arrived meanwhile) and switches the connection to
    /// live delivery, atomically with respect to fan-out. Returns false if the connection left
    /// in the meantime.
    pub fn activate(
        &self,
        room: &RoomName,
        conn: ConnectionId,
        viewer: &UserId,
        page: Page,
        since: Option<u64>,
    ) -> bool {
        let Some(cell) = self.room(room) else {
            return false;
        };
        let mut state = lock(&cell);
        let seed = since.is_none();
        state.activate(room, conn, viewer, page, since, seed)
    }

    /// Like [`Hub::activate`], with the history taken from the room's recent messages when they
    /// cover what the join asks for. Returns false if they do not: read the store instead.
    pub fn activate_from_recent(
        &self,
        room: &RoomName,
        conn: ConnectionId,
        viewer: &UserId,
        since: Option<u64>,
    ) -> bool {
        let Some(cell) = self.room(room) else {
            return false;
        };
        let mut state = lock(&cell);
        let Some(page) = state.recent.page(since) else {
            return false;
        };
        state.activate(room, conn, viewer, page, since, false)
    }

    /// Removes a connection from a room; if it was its user's last one there, the user leaves.
    pub fn unsubscribe(&self, room: &RoomName, conn: ConnectionId) {
        let mut rooms = lock(&self.rooms);
        let Some(cell) = rooms.get(room).cloned() else {
            return;
        };
        let mut state = lock(&cell);
        let Some(subscriber) = state.subscribers.remove(&conn) else {
            return;
        };
        if let Entry::Occupied(mut member) = state.members.entry(subscriber.user) {
            member.get_mut().connections -= 1;
            if member.get().connections == 0 {
                self.announce(room, &member.get().user, false);
                if !member.get().present() {
                    let gone = member.remove().user;
                    let frame = server::presence(room, &[], std::slice::from_ref(&gone));
                    state.broadcast_live(&frame);
                    self.lobby.changed(room);
                }
            }
        }
        if state.subscribers.is_empty() {
            drop(state);
            rooms.remove(room);
        }
    }

    /// Merges the first view of other nodes' members of a room this node just started hosting.
    /// Anything a live event already settled is newer than the view and wins.
    pub fn merge_remote(&self, room: &RoomName, members: Vec<(NodeId, User)>) {
        let Some(cell) = self.room(room) else {
            return;
        };
        let mut state = lock(&cell);
        let Some(settled) = state.settled.take() else {
            return; // merged already, by an earlier join
        };
        for (node, user) in members {
            if !settled.contains(&(node.clone(), user.id.clone())) {
                self.apply_remote(room, &mut state, &node, &user, true);
            }
        }
    }

    fn announce(&self, room: &RoomName, user: &User, present: bool) {
        if let Some(announcer) = &self.announcer {
            let _ = announcer.send(PresenceChange {
                room: room.clone(),
                user: user.clone(),
                present,
            });
        }
    }

    fn apply_remote(
        &self,
        room: &RoomName,
        state: &mut Room,
        node: &NodeId,
        user: &User,
        present: bool,
    ) {
        let member = state.member(user);
        let was_present = member.present();
        if present {
            member.remote.insert(node.clone());
        } else {
            member.remote.remove(node);
        }
        let now_present = member.present();
        if !now_present {
            state.members.remove(&user.id);
        }
        if was_present != now_present {
            let frame = if now_present {
                server::presence(room, std::slice::from_ref(user), &[])
            } else {
                server::presence(room, &[], std::slice::from_ref(user))
            };
            state.broadcast_live(&frame);
            self.lobby.changed(room);
        }
    }

    /// How many people are in `room` right now (on every node).
    pub fn online(&self, room: &RoomName) -> u32 {
        match self.room(room) {
            Some(cell) => count(lock(&cell).members.len()),
            None => count(self.elsewhere.count(room)),
        }
    }

    /// Every room this node hosts with someone in it, with its count.
    pub fn occupied_rooms(&self) -> Vec<RoomCount> {
        let cells: Vec<_> = lock(&self.rooms)
            .iter()
            .map(|(name, cell)| (name.clone(), cell.clone()))
            .collect();
        cells
            .into_iter()
            .map(|(name, cell)| RoomCount {
                name,
                online: count(lock(&cell).members.len()),
            })
            .filter(|room| room.online > 0)
            .chain(
                self.elsewhere
                    .counts()
                    .into_iter()
                    .filter(|(room, _)| self.room(room).is_none())
                    .map(|(name, online)| RoomCount {
                        name,
                        online: count(online),
                    }),
            )
            .collect()
    }

    /// A room this node does not host changed its count: only the lobby cares.
    fn lobby_changed_elsewhere(&self, rooms: impl IntoIterator<Item = RoomName>) {
        for room in rooms {
            if self.room(&room).is_none() {
                self.lobby.changed(&room);
            }
        }
    }

    fn all_rooms(&self) -> Vec<(RoomName, Arc<Mutex<Room>>)> {
        lock(&self.rooms)
            .iter()
            .map(|(name, cell)| (name.clone(), cell.clone()))
            .collect()
    }
}

fn count(members: usize) -> u32 {
    u32::try_from(members).unwrap_or(u32::MAX)
}

impl Room {
    /// Sends `joined` and switches `conn` to live delivery; see [`Hub::activate`]. `seed`: the
    /// page is the room's newest messages, fit to start the recent-message cache with.
    fn activate(
        &mut self,
        room: &RoomName,
        conn: ConnectionId,
        viewer: &UserId,
        mut page: Page,
        since: Option<u64>,
        seed: bool,
    ) -> bool {
        let members = self.present_members();
        let Some(subscriber) = self.subscribers.get_mut(&conn) else {
            return false;
        };
        let read_up_to = page.last_seq().unwrap_or(0).max(since.unwrap_or(0));
        let pending = match std::mem::replace(
            &mut subscriber.state,
            Delivery::Live {
                delivered_up_to: read_up_to,
            },
        ) {
            Delivery::Pending(pending) => pending,
            Delivery::Live { .. } => Vec::new(),
        };
        // Messages committed after the history read: the read may also have seen some of them.
        let mut expected = read_up_to + 1;
        for message in pending.iter().filter(|m| m.seq > read_up_to) {
            if message.seq != expected {
                // A hole between the read and the live stream: resume and let the store fill it.
                subscriber.outbox.resync();
                return true;
            }
            page.messages.push((**message).clone());
            expected += 1;
        }
        let last_seq = expected - 1;
        subscriber.state = Delivery::Live {
            delivered_up_to: last_seq,
        };
        let truncated = since.is_some_and(|since| {
            page.messages
                .first()
                .is_some_and(|first| first.seq > since + 1)
        });
        let frame = server::joined(&Joined {
            room,
            members: &members,
            messages: &page.messages,
            viewer,
            last_seq,
            has_more: page.has_more,
            truncated,
        });
        subscriber.outbox.push(frame);
        if seed {
            self.recent.seed(&page.messages, last_seq);
        }
        true
    }

    fn member(&mut self, user: &User) -> &mut Member {
        self.members
            .entry(user.id.clone())
            .or_insert_with(|| Member {
                user: user.clone(),
                connections: 0,
                remote: HashSet::new(),
            })
    }

    /// Presence goes to live subscribers only: a pending one gets the member list in `joined`.
    fn broadcast_live(&self, frame: &Frame) {
        for subscriber in self.subscribers.values() {
            if matches!(subscriber.state, Delivery::Live { .. }) {
                subscriber.outbox.push(frame.clone());
            }
        }
    }

    fn present_members(&self) -> Vec<User> {
        self.members.values().map(|m| m.user.clone()).collect()
    }
}

impl Deliver for Hub {
    fn deliver(&self, published: Published) {
        let Some(cell) = self.room(&published.message.room) else {
            return; // nobody here is in that room
        };
        let message = published.message;
        let shared = server::message(&message, false);
        let for_sender = published
            .origin
            .map(|origin| (origin, server::message(&message, true)));
        let mut state = lock(&cell);
        match state.last_seq {
            Some(last) if message.seq <= last => {
                tracing::debug!(room = %message.room, seq = message.seq, last, "dropping a message heard twice");
                return;
            }
            Some(last) if message.seq > last + 1 => {
                // A hole in the stream: a node died between its commit and its publish, or the
                // broker dropped out. Live readers resume with `since`; the store has it all.
                tracing::warn!(room = %message.room, last, next = message.seq, "gap in a room's stream");
                state.recent = Recent::default();
                for subscriber in state.subscribers.values() {
                    if matches!(subscriber.state, Delivery::Live { .. }) {
                        subscriber.outbox.resync();
                    }
                }
            }
            _ => {}
        }
        state.last_seq = Some(message.seq);
        state.recent.push(&message);
        for (conn, subscriber) in &mut state.subscribers {
            match &mut subscriber.state {
                Delivery::Live { delivered_up_to } => {
                    if message.seq <= *delivered_up_to {
                        continue; // already carried by this connection's `joined`
                    }
                    *delivered_up_to = message.seq;
                    let frame = match &for_sender {
                        Some((origin, frame)) if origin == conn => frame.clone(),
                        _ => shared.clone(),
                    };
                    subscriber.outbox.push(frame);
                }
                Delivery::Pending(pending) => {
                    if pending.len() >= PENDING_CAP {
                        subscriber.outbox.cut_off();
                    } else {
                        pending.push(message.clone());
                    }
                }
            }
        }
    }

    fn remote_presence(&self, node: &NodeId, room: &RoomName, user: &User, present: bool) {
        if self.elsewhere.set(room, node, &user.id, present) {
            self.lobby_changed_elsewhere([room.clone()]);
        }
        let Some(cell) = self.room(room) else {
            return; // not hosted here; read in full when it is
        };
        let mut state = lock(&cell);
        if let Some(settled) = &mut state.settled {
            settled.insert((node.clone(), user.id.clone()));
        }
        self.apply_remote(room, &mut state, node, user, present);
    }

    fn replace_remote(&self, room: &RoomName, members: Vec<(NodeId, User)>) {
        let Some(cell) = self.room(room) else {
            return;
        };
        let mut state = lock(&cell);
        state.settled = None;
        let wanted: HashSet<(NodeId, UserId)> = members
            .iter()
            .map(|(node, user)| (node.clone(), user.id.clone()))
            .collect();
        let stale: Vec<(NodeId, User)> = state
            .members
            .values()
            .flat_map(|m| m.remote.iter().map(|node| (node.clone(), m.user.clone())))
            .filter(|(node, user)| !wanted.contains(&(node.clone(), user.id.clone())))
            .collect();
        for (node, user) in stale {
            self.apply_remote(room, &mut state, &node, &user, false);
        }
        for (node, user) in members {
            self.apply_remote(room, &mut state, &node, &user, true);
        }
    }

    fn replace_elsewhere(&self, entries: Vec<(RoomName, NodeId, UserId)>) {
        let changed = self.elsewhere.replace(entries);
        self.lobby_changed_elsewhere(changed);
    }

    fn node_gone(&self, node: &NodeId) {
        let changed = self.elsewhere.node_gone(node);
        self.lobby_changed_elsewhere(changed);
        for (room, cell) in self.all_rooms() {
            let mut state = lock(&cell);
            let gone: Vec<User> = state
                .members
                .values()
                .filter(|m| m.remote.contains(node))
                .map(|m| m.user.clone())
                .collect();
            for user in gone {
                self.apply_remote(&room, &mut state, node, &user, false);
            }
        }
    }

    fn hosted_seqs(&self) -> Vec<(RoomName, Option<u64>)> {
        self.all_rooms()
            .into_iter()
            .map(|(room, cell)| (room, lock(&cell).last_seq))
            .collect()
    }

    fn local_presence(&self) -> Vec<(RoomName, Vec<User>)> {
        self.all_rooms()
            .into_iter()
            .map(|(room, cell)| {
                let state = lock(&cell);
                let users = state
                    .members
                    .values()
                    .filter(|m| m.connections > 0)
                    .map(|m| m.user.clone())
                    .collect();
                (room, users)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DisplayName;
    use crate::rooms::outbox::{OutboxReceiver, outbox};
    use serde_json::Value;

    fn user(name: &str) -> User {
        User {
            id: UserId::from_trusted(format!("id-{name}")),
            name: DisplayName::parse(name).unwrap(),
        }
    }

    fn room() -> RoomName {
        RoomName::parse("r").unwrap()
    }

    fn message(seq: u64) -> Arc<Message> {
        Arc::new(Message {
            room: room(),
            seq,
            id: format!("m{seq}"),
            ts: 0,
            user: user("ann"),
            text: format!("t{seq}"),
            client_id: format!("c{seq}"),
        })
    }

    fn publish(hub: &Hub, seq: u64, origin: Option<ConnectionId>) {
        hub.deliver(Published {
            message: message(seq),
            origin,
        });
    }

    fn drain(receiver: &mut OutboxReceiver) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Some(frame) = receiver.frames.try_recv() {
            frames.push(serde_json::from_str(frame.as_str()).unwrap());
        }
        frames
    }

    fn page(seqs: std::ops::RangeInclusive<u64>) -> Page {
        Page::from_newest_first(seqs.rev().map(|seq| (*message(seq)).clone()).collect())
    }

    #[test]
    fn messages_committed_during_a_join_arrive_once_after_joined() {
        let hub = Hub::default();
        let (outbox, mut receiver) = outbox(64);
        let conn = ConnectionId(1);
        hub.subscribe(&room(), conn, &user("ann"), outbox);
        // 3 and 4 commit while history is read; the read saw 1..=3.
        publish(&hub, 3, None);
        publish(&hub, 4, None);
        assert!(drain(&mut receiver).is_empty(), "nothing before joined");
        assert!(hub.activate(&room(), conn, &user("ann").id, page(1..=3), None));
        publish(&hub, 4, None); // a late duplicate must not repeat
        publish(&hub, 5, None);
        let frames = drain(&mut receiver);
        assert_eq!(frames[0]["type"], "joined");
        let seqs: Vec<u64> = frames[0]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert_eq!(frames[0]["last_seq"], 4);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1]["seq"], 5);
    }

    #[test]
    fn only_the_sending_connection_gets_the_client_id() {
        let hub = Hub::default();
        let (a, mut a_rx) = outbox(8);
        let (b, mut b_rx) = outbox(8);
        for (conn, outbox, who) in [(ConnectionId(1), a, "ann"), (ConnectionId(2), b, "ben")] {
            hub.subscribe(&room(), conn, &user(who), outbox);
            hub.activate(&room(), conn, &user(who).id, Page::default(), None);
        }
        drain(&mut a_rx);
        drain(&mut b_rx);
        publish(&hub, 1, Some(ConnectionId(1)));
        assert_eq!(drain(&mut a_rx)[0]["client_id"], "c1");
        assert!(drain(&mut b_rx)[0].get("client_id").is_none());
    }

    #[test]
    fn presence_counts_people_not_connections() {
        let hub = Hub::default();
        let (watch, mut watch_rx) = outbox(16);
        hub.subscribe(&room(), ConnectionId(9), &user("ben"), watch);
        hub.activate(
            &room(),
            ConnectionId(9),
            &user("ben").id,
            Page::default(),
            None,
        );
        drain(&mut watch_rx);

        let (tab1, _rx1) = outbox(16);
        let (tab2, _rx2) = outbox(16);
        hub.subscribe(&room(), ConnectionId(1), &user("ann"), tab1);
        hub.subscribe(&room(), ConnectionId(2), &user("ann"), tab2);
        let frames = drain(&mut watch_rx);
        assert_eq!(frames.len(), 1, "one join for two tabs: {frames:?}");
        assert_eq!(frames[0]["joined"][0]["name"], "ann");
        assert_eq!(hub.online(&room()), 2);

        hub.unsubscribe(&room(), ConnectionId(1));
        assert!(drain(&mut watch_rx).is_empty(), "ann still has a tab open");
        hub.unsubscribe(&room(), ConnectionId(2));
        let frames = drain(&mut watch_rx);
        assert_eq!(frames[0]["left"][0]["name"], "ann");
        assert_eq!(hub.online(&room()), 1);
    }

    #[test]
    fn a_full_queue_cuts_off_that_connection_only() {
        let hub = Hub::default();
        let (slow, slow_rx) = outbox(2);
        let (fast, mut fast_rx) = outbox(64);
        hub.subscribe(&room(), ConnectionId(1), &user("slow"), slow);
        hub.activate(
            &room(),
            ConnectionId(1),
            &user("slow").id,
            Page::default(),
            None,
        );
        hub.subscribe(&room(), ConnectionId(2), &user("fast"), fast);
        hub.activate(
            &room(),
            ConnectionId(2),
            &user("fast").id,
            Page::default(),
            None,
        );
        drain(&mut fast_rx);
        for seq in 1..=5 {
            publish(&hub, seq, None);
        }
        let fast_seqs: Vec<u64> = drain(&mut fast_rx)
            .iter()
            .map(|f| f["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(fast_seqs, [1, 2, 3, 4, 5]);
        // The slow one got what fit, then was cut off rather than skipped silently.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(1), slow_rx.cut.tripped())
                    .await
                    .expect("cut off");
            });
    }

    fn seqs_of(frame: &Value) -> Vec<u64> {
        frame["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn joins_are_served_from_recent_messages_once_a_join_has_read_the_newest_page() {
        let hub = Hub::default();
        let (first, _first_rx) = outbox(64);
        hub.subscribe(&room(), ConnectionId(1), &user("ann"), first);
        // Nothing known yet: the first join must read the store.
        assert!(!hub.activate_from_recent(&room(), ConnectionId(1), &user("ann").id, None));
        hub.activate(&room(), ConnectionId(1), &user("ann").id, page(1..=3), None);
        publish(&hub, 4, None);
        publish(&hub, 5, None);

        let (second, mut second_rx) = outbox(64);
        hub.subscribe(&room(), ConnectionId(2), &user("ben"), second);
        assert!(hub.activate_from_recent(&room(), ConnectionId(2), &user("ben").id, Some(2)));
        let joined = &drain(&mut second_rx)[0];
        assert_eq!(seqs_of(joined), [3, 4, 5]);
        assert_eq!(joined["last_seq"], 5);

        let (third, mut third_rx) = outbox(64);
        hub.subscribe(&room(), ConnectionId(3), &user("cat"), third);
        assert!(hub.activate_from_recent(&room(), ConnectionId(3), &user("cat").id, None));
        assert_eq!(seqs_of(&drain(&mut third_rx)[0]), [1, 2, 3, 4, 5]);
        publish(&hub, 6, None);
        let live: Vec<Value> = drain(&mut second_rx)
            .into_iter()
            .filter(|frame| frame["type"] == "message")
            .collect();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0]["seq"], 6, "live after a cached join");
    }

    #[test]
    fn a_hole_in_the_stream_empties_the_recent_messages() {
        let hub = Hub::default();
        let (first, _rx) = outbox(64);
        hub.subscribe(&room(), ConnectionId(1), &user("ann"), first);
        hub.activate(&room(), ConnectionId(1), &user("ann").id, page(1..=3), None);
        publish(&hub, 5, None); // 4 never came
        let (second, _rx2) = outbox(64);
        hub.subscribe(&room(), ConnectionId(2), &user("ben"), second);
        assert!(!hub.activate_from_recent(&room(), ConnectionId(2), &user("ben").id, Some(3)));
    }

    #[test]
    fn a_resume_older_than_the_recent_messages_reads_the_store() {
        let hub = Hub::default();
        let (first, _rx) = outbox(256);
        hub.subscribe(&room(), ConnectionId(1), &user("ann"), first);
        hub.activate(
            &room(),
            ConnectionId(1),
            &user("ann").id,
            page(1..=50),
            None,
        );
        for seq in 51..=100 {
            publish(&hub, seq, None);
        }
        let (second, _rx2) = outbox(64);
        hub.subscribe(&room(), ConnectionId(2), &user("ben"), second);
        assert!(!hub.activate_from_recent(&room(), ConnectionId(2), &user("ben").id, Some(10)));
        assert!(hub.activate_from_recent(&room(), ConnectionId(2), &user("ben").id, Some(90)));
    }

    #[test]
    fn an_empty_room_is_forgotten() {
        let hub = Hub::default();
        let (outbox, _rx) = outbox(4);
        hub.subscribe(&room(), ConnectionId(1), &user("ann"), outbox);
        assert_eq!(hub.occupied_rooms().len(), 1);
        hub.unsubscribe(&room(), ConnectionId(1));
        assert!(hub.occupied_rooms().is_empty());
        assert!(lock(&hub.rooms).is_empty());
    }
}
