//! The rooms this node hosts: who subscribes to each, each room's log of newest messages and
//! its presence, and the fan-out of committed messages to local connections.
//!
//! Fan-out appends a message to its room's log once; each member only holds a cursor (the last
//! seq it took) and is told once that the room has something for it. Members take frames from
//! the log at the pace they write; one that falls behind the log's oldest entry reads the
//! store. So a room never waits for its slowest member, a reader that keeps reading gets
//! everything, and the backlog is held once per room, not once per member.
//!
//! Locking: one std `Mutex` for the room map (held only to find, create or drop a room) and one
//! per room (held for a fan-out, a take, or a membership change). Always map before room, never
//! the other way; neither is ever held across an `.await`; the per-user room counts are locked
//! last. Frames are encoded before the room lock is taken, so the lock covers only refcounts
//! and cursors.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::access::Access;
use super::lobby::Lobby;
use super::log::{Entry, Log, LogBudget};
use super::outbox::Outbox;
use super::presence::{Elsewhere, RoomPresence, TICK};
use super::registry::Registry;
use crate::broker::{Announce, Control, Deliver, NodeId, PresenceChange, Published, Removal};
use crate::domain::{ConnectionId, Event, Message, RoomName, User, UserId};
use crate::protocol::server::{self, Frame, Joined, RoomCount};
use crate::store::Page;

/// A user's `typing` in a room goes out at most this often.
pub const TYPING_EVERY: Duration = Duration::from_secs(2);

/// Members listed in `joined`; the rest are paged with `members`.
pub const JOINED_MEMBERS: usize = 100;
/// Above this many members a room's `presence` frames carry only the count. Listing every
/// arrival to every member costs bytes in the square of the room's size (filling a room of
/// 10,000 would write about 4 GB of presence); past this size the members panel pages with
/// `members` instead.
pub const LISTED_PRESENCE_MAX: usize = 1000;

#[derive(Default)]
pub struct Hub {
    rooms: Mutex<HashMap<RoomName, Arc<Mutex<Room>>>>,
    pub lobby: Lobby,
    /// Who may read each room (cached; dropped on `Control::AccessChanged`).
    pub access: Access,
    /// Where this node's presence changes go for other nodes (the broker's port), once wired.
    announcer: OnceLock<Arc<dyn Announce>>,
    elsewhere: Elsewhere,
    /// Rooms with presence changes for the next tick.
    presence_dirty: Mutex<HashSet<RoomName>>,
    presence_ready: Notify,
    /// How many rooms each user is in on this node (across their connections), and the most
    /// they may be in (`--max-rooms-per-user`; no limit until set). Locked after a room's lock.
    rooms_per_user: Mutex<HashMap<UserId, usize>>,
    max_rooms_per_user: OnceLock<usize>,
    /// This node's connections by session.
    pub connections: Registry,
    /// What all the rooms' logs hold together, and may.
    logs: Arc<LogBudget>,
}

/// A user is already in as many rooms as they may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyRooms(pub usize);

struct Room {
    subscribers: HashMap<ConnectionId, Subscriber>,
    presence: RoomPresence,
    /// The newest messages, encoded once: every member's backlog.
    log: Log,
    /// The highest seq fanned out here: a message at or below it was heard twice.
    last_seq: Option<u64>,
    /// When each user's last `typing` here went out (throttling; entries older than
    /// [`TYPING_EVERY`] are dropped as new ones come).
    typing: HashMap<UserId, Instant>,
}

struct Subscriber {
    user: UserId,
    outbox: Outbox,
    /// The last seq this connection has taken; `None` until `joined` was sent (until then it
    /// receives nothing of the room, so nothing can overtake `joined`).
    cursor: Option<u64>,
    /// Its outbox already lists this room as having messages for it.
    notified: bool,
    /// The presence version its `joined` member list showed.
    presence_seen: u64,
}

impl Subscriber {
    /// Tells the connection the room has messages for it, once until it has taken them.
    fn notify(&mut self, room: &RoomName) {
        if self.cursor.is_some() && !self.notified {
            self.notified = true;
            self.outbox.room_ready(room);
        }
    }
}

/// What a connection's take from a room's log found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Everything up to the room's newest message is taken.
    Done,
    /// The byte budget ran out first: take again.
    More,
    /// The connection is behind the log: read the messages after this seq from the store,
    /// then call [`Hub::advance`].
    Behind(u64),
    /// The connection is not (or no longer) in the room.
    Gone,
}

/// A poisoned lock means a panic mid-update elsewhere; the maps stay structurally sound, so
/// carry on rather than take every other user down too.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// Sends this node's presence changes to other nodes through `announcer` from now on. The
    /// broker is built after the hub (it delivers into it), so this is wired afterwards.
    pub fn announce_to(&self, announcer: Arc<dyn Announce>) {
        let _ = self.announcer.set(announcer);
    }

    fn room(&self, room: &RoomName) -> Option<Arc<Mutex<Room>>> {
        lock(&self.rooms).get(room).cloned()
    }

    /// Limits how many rooms one user may be in at once, across their connections.
    pub fn limit_rooms_per_user(&self, max: usize) {
        let _ = self.max_rooms_per_user.set(max);
    }

    /// Adds a connection to a room. It receives nothing of the room until [`Hub::activate`].
    /// Subscribing before reading history is what makes the join race-free. Refused, with
    /// nothing changed, when it would put the user in more rooms than they may be in.
    pub fn subscribe(
        &self,
        room: &RoomName,
        conn: ConnectionId,
        user: &User,
        outbox: Outbox,
    ) -> Result<(), TooManyRooms> {
        let mut rooms = lock(&self.rooms);
        let already_in = rooms
            .get(room)
            .is_some_and(|cell| lock(cell).presence.has_local(&user.id));
        if !already_in {
            let max = self.max_rooms_per_user.get().copied().unwrap_or(usize::MAX);
            let mut counts = lock(&self.rooms_per_user);
            let count = counts.entry(user.id.clone()).or_default();
            if *count >= max {
                if *count == 0 {
                    counts.remove(&user.id);
                }
                return Err(TooManyRooms(max));
            }
            *count += 1;
        }
        let cell = rooms
            .entry(room.clone())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Room {
                    subscribers: HashMap::new(),
                    presence: RoomPresence::fresh(),
                    log: Log::within(self.logs.clone()),
                    last_seq: None,
                    typing: HashMap::new(),
                }))
            })
            .clone();
        drop(rooms);
        let mut state = lock(&cell);
        state.subscribers.insert(
            conn,
            Subscriber {
                user: user.id.clone(),
                outbox,
                cursor: None,
                notified: false,
                presence_seen: 0,
            },
        );
        let transition = state.presence.connect(user);
        if transition.local {
            self.announce(room, user, true);
        }
        if transition.changed {
            self.presence_changed(room);
        }
        Ok(())
    }

    /// Sends `joined` (the history read, plus whatever the log has after it) and starts live
    /// delivery from there. Returns false if the connection left in the meantime. `since` is
    /// the client's cursor; `reset` says that cursor was from the future and was dropped.
    pub fn activate(&self, join: Activation<'_>, page: Page) -> bool {
        let Some(cell) = self.room(join.room) else {
            return false;
        };
        let mut state = lock(&cell);
        if join.since.is_none() && !join.reset {
            state.seed(&page);
        }
        state.activate(join, History::Read(page))
    }

    /// Like [`Hub::activate`], with the history taken from the room's log when it covers what
    /// the join asks for. Returns false if it does not: read the store instead.
    pub fn activate_from_log(&self, join: Activation<'_>) -> bool {
        let Some(cell) = self.room(join.room) else {
            return false;
        };
        let mut state = lock(&cell);
        let Some(from) = state.log.join_start(join.since) else {
            return false;
        };
        state.activate(join, History::FromLog(from))
    }

    /// Moves `conn`'s next frames of `room` into `out`, up to about `budget` bytes. Sets
    /// `oldest`, if it is not set yet, to when the first message taken entered the log (for
    /// the delivery-latency metric).
    pub fn take(
        &self,
        room: &RoomName,
        conn: ConnectionId,
        budget: usize,
        out: &mut VecDeque<Bytes>,
        oldest: &mut Option<std::time::Instant>,
    ) -> (Take, usize) {
        let Some(cell) = self.room(room) else {
            return (Take::Gone, 0);
        };
        let mut state = lock(&cell);
        let Room {
            subscribers, log, ..
        } = &mut *state;
        let Some(subscriber) = subscribers.get_mut(&conn) else {
            return (Take::Gone, 0);
        };
        let Some(cursor) = subscriber.cursor else {
            return (Take::Gone, 0);
        };
        if !log.covers(cursor) {
            return (Take::Behind(cursor), 0);
        }
        let mut taken = 0;
        let mut last = cursor;
        for entry in log.after(cursor) {
            if taken >= budget {
                break;
            }
            oldest.get_or_insert(entry.logged);
            let frame = entry.frame_for(conn);
            taken += frame.len();
            out.push_back(frame.wire().clone());
            last = entry.message.seq;
        }
        subscriber.cursor = Some(last);
        if log.last_seq().is_none_or(|newest| last >= newest) {
            subscriber.notified = false;
            (Take::Done, taken)
        } else {
            (Take::More, taken)
        }
    }

    /// After a connection read `from + 1 ..= to` from the store itself: moves its cursor on,
    /// unless it left or moved meanwhile. Returns false if the connection is not in the room.
    pub fn advance(&self, room: &RoomName, conn: ConnectionId, from: u64, to: u64) -> bool {
        let Some(cell) = self.room(room) else {
            return false;
        };
        let mut state = lock(&cell);
        match state.subscribers.get_mut(&conn) {
            Some(subscriber) if subscriber.cursor == Some(from) => {
                subscriber.cursor = Some(to);
                true
            }
            Some(_) => true,
            None => false,
        }
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
        let user = state.presence.user(&subscriber.user).cloned();
        let transition = state.presence.disconnect(&subscriber.user);
        if transition.local {
            if let Some(user) = &user {
                self.announce(room, user, false);
            }
            let mut counts = lock(&self.rooms_per_user);
            if let Some(count) = counts.get_mut(&subscriber.user) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&subscriber.user);
                }
            }
        }
        if transition.changed {
            self.presence_changed(room);
        }
        if state.subscribers.is_empty() {
            drop(state);
            rooms.remove(room);
        }
    }

    /// The newest seq this node knows `room` to have (from its log), if it hosts the room.
    pub fn known_last_seq(&self, room: &RoomName) -> Option<u64> {
        let cell = self.room(room)?;
        let state = lock(&cell);
        state.log.last_seq().or(state.last_seq)
    }

    /// The last seq `conn` has been given in `room` (right after a join: `joined.last_seq`).
    pub fn cursor(&self, room: &RoomName, conn: ConnectionId) -> Option<u64> {
        let cell = self.room(room)?;
        let state = lock(&cell);
        state.subscribers.get(&conn)?.cursor
    }

    /// Whether `user`'s `typing` in `room` should go out now: at most once per
    /// [`TYPING_EVERY`] per user and room; the rest are dropped (typing is lossy by design).
    pub fn typing_due(&self, room: &RoomName, user: &UserId) -> bool {
        let Some(cell) = self.room(room) else {
            return false;
        };
        let mut state = lock(&cell);
        let now = Instant::now();
        state
            .typing
            .retain(|_, at| now.duration_since(*at) < TYPING_EVERY);
        if state.typing.contains_key(user) {
            return false;
        }
        state.typing.insert(user.clone(), now);
        true
    }

    /// Tells this node's other members of `room` that `user` is typing: never the user's own
    /// connections, and never queued behind a backlog.
    fn show_typing(&self, room: &RoomName, user: &User) {
        let Some(cell) = self.room(room) else {
            return;
        };
        let frame = server::typing(room, user);
        let state = lock(&cell);
        for subscriber in state.subscribers.values() {
            if subscriber.user != user.id && subscriber.cursor.is_some() {
                subscriber.outbox.push_lossy(frame.clone());
            }
        }
    }

    /// Takes every connection of `user` out of `room` (a kick or a ban): each is told
    /// `removed`, receives nothing more from the room, and its session forgets the room.
    pub fn remove_user(&self, room: &RoomName, user: &UserId, reason: Removal) {
        let Some(cell) = self.room(room) else {
            return;
        };
        let conns: Vec<(ConnectionId, Outbox)> = lock(&cell)
            .subscribers
            .iter()
            .filter(|(_, subscriber)| subscriber.user == *user)
            .map(|(conn, subscriber)| (*conn, subscriber.outbox.clone()))
            .collect();
        if conns.is_empty() {
            return;
        }
        let frame = server::removed(room, reason.as_str());
        for (conn, outbox) in conns {
            outbox.evict(room);
            self.unsubscribe(room, conn);
            outbox.push(frame.clone());
        }
    }

    /// Merges the first view of other nodes' members of a room this node just started hosting.
    /// Anything a live event already settled is newer than the view and wins.
    pub fn merge_remote(&self, room: &RoomName, members: Vec<(NodeId, User)>) {
        let Some(cell) = self.room(room) else {
            return;
        };
        if lock(&cell).presence.merge_remote(members) {
            self.presence_changed(room);
        }
    }

    /// The `members` frame for up to `limit` members of `room` with an id above `after`;
    /// `None` if this node does not host the room. Encoded under the room's lock, from
    /// borrowed members.
    pub fn members(&self, room: &RoomName, after: Option<&UserId>, limit: usize) -> Option<Frame> {
        let cell = self.room(room)?;
        let state = lock(&cell);
        let (users, more) = state.presence.listed_page(after, limit);
        Some(server::members(room, &users, state.presence.count(), more))
    }

    /// Up to `limit` members of `room` in id order, and whether there are more; `None` if
    /// this node does not host the room (the admin view).
    pub fn member_page(&self, room: &RoomName, limit: usize) -> Option<(Vec<User>, bool)> {
        let cell = self.room(room)?;
        let state = lock(&cell);
        let (users, more) = state.presence.page(None, limit);
        Some((users.into_iter().cloned().collect(), more))
    }

    fn announce(&self, room: &RoomName, user: &User, present: bool) {
        if let Some(announcer) = self.announcer.get() {
            announcer.announce(PresenceChange {
                room: room.clone(),
                user: user.clone(),
                present,
            });
        }
    }

    /// The room's presence changed: its next tick sends a `presence` frame, and the lobby
    /// shows the new count.
    fn presence_changed(&self, room: &RoomName) {
        let mut dirty = lock(&self.presence_dirty);
        if dirty.insert(room.clone()) && dirty.len() == 1 {
            self.presence_ready.notify_one();
        }
        drop(dirty);
        self.lobby.changed(room);
    }

    /// Sends each room's coalesced presence changes, one frame per room per [`TICK`], until
    /// shutdown.
    pub async fn run_presence(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = self.presence_ready.notified() => {}
                () = shutdown.cancelled() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                () = shutdown.cancelled() => return,
            }
            let dirty = std::mem::take(&mut *lock(&self.presence_dirty));
            for room in dirty {
                self.flush_presence(&room);
            }
        }
    }

    fn flush_presence(&self, room: &RoomName) {
        let Some(cell) = self.room(room) else {
            return;
        };
        let (tick, count) = {
            let mut state = lock(&cell);
            let Some(tick) = state.presence.take_changes() else {
                return;
            };
            (tick, state.presence.count())
        };
        // Encoded outside the room's lock; members that join meanwhile hear a change their
        // list already shows, which presence diffs tolerate (they are idempotent).
        let partial = count > LISTED_PRESENCE_MAX;
        let (arrived, departed) = tick.shared();
        let shared = (!arrived.is_empty() || !departed.is_empty())
            .then(|| server::presence(room, &arrived, &departed, count, partial));
        let state = lock(&cell);
        for subscriber in state.subscribers.values() {
            if subscriber.cursor.is_none() {
                continue; // its `joined` will carry the member list
            }
            if subscriber.presence_seen <= tick.since {
                if let Some(frame) = &shared {
                    subscriber.outbox.push(frame.clone());
                }
                continue;
            }
            // Joined within this tick: only what its member list did not show yet.
            let (arrived, departed) = tick.newer_than(subscriber.presence_seen);
            if !arrived.is_empty() || !departed.is_empty() {
                subscriber
                    .outbox
                    .push(server::presence(room, &arrived, &departed, count, partial));
            }
        }
    }

    /// How many people are in `room` right now (on every node).
    pub fn online(&self, room: &RoomName) -> u32 {
        match self.room(room) {
            Some(cell) => count(lock(&cell).presence.count()),
            None => count(self.elsewhere.count(room)),
        }
    }

    /// The lobby's ranked list of public rooms (see [`Lobby::snapshot`]).
    pub async fn lobby_snapshot(
        &self,
        store: &dyn crate::store::Store,
    ) -> Result<Vec<RoomCount>, crate::store::StoreError> {
        let mut occupied = self.occupied_rooms();
        let names = occupied.iter().map(|room| room.name.clone()).collect();
        let public: HashSet<RoomName> = self
            .access
            .public_only(store, names)
            .await
            .into_iter()
            .collect();
        occupied.retain(|room| public.contains(&room.name));
        self.lobby.snapshot(occupied, store).await
    }

    /// The room list `viewer` sees: the lobby's public rooms, then the private rooms they
    /// are a member of (marked private; these get no live updates, which are shared frames).
    pub async fn lobby_for(
        &self,
        store: &dyn crate::store::Store,
        viewer: Option<&UserId>,
    ) -> Result<Vec<RoomCount>, crate::store::StoreError> {
        let mut rooms = self.lobby_snapshot(store).await?;
        if let Some(viewer) = viewer {
            let own = store
                .private_rooms_of(viewer, super::lobby::SNAPSHOT_ROOMS)
                .await?;
            rooms.extend(own.into_iter().map(|name| RoomCount {
                online: self.online(&name),
                name,
                private: true,
                unread: None,
                mentions: None,
            }));
        }
        Ok(rooms)
    }

    /// Every room this node hosts with someone in it, with its count.
    pub fn occupied_rooms(&self) -> Vec<RoomCount> {
        self.all_rooms()
            .into_iter()
            .map(|(name, cell)| RoomCount {
                name,
                online: count(lock(&cell).presence.count()),
                private: false,
                unread: None,
                mentions: None,
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
                        private: false,
                        unread: None,
                        mentions: None,
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

    /// Bytes all the rooms' logs hold together (at most about [`super::log::ALL_LOGS_BYTES`]
    /// beyond each room's newest messages).
    pub fn log_bytes(&self) -> usize {
        self.logs.held()
    }

    fn all_rooms(&self) -> Vec<(RoomName, Arc<Mutex<Room>>)> {
        lock(&self.rooms)
            .iter()
            .map(|(name, cell)| (name.clone(), cell.clone()))
            .collect()
    }
}

/// Who joins what, for [`Hub::activate`].
#[derive(Clone, Copy)]
pub struct Activation<'a> {
    pub room: &'a RoomName,
    pub conn: ConnectionId,
    pub viewer: &'a UserId,
    pub since: Option<u64>,
    /// The client's `since` was above the room's last seq: `joined` says `reset: true`.
    pub reset: bool,
    /// The user's read marker, if they have one; `joined` otherwise says the room's last seq
    /// (nothing old is unread on a first join).
    pub read_seq: Option<u64>,
}

fn count(members: usize) -> u32 {
    u32::try_from(members).unwrap_or(u32::MAX)
}

impl Room {
    /// Starts an empty log from a join's page of the room's newest messages, if nothing newer
    /// has been fanned out here since.
    fn seed(&mut self, page: &Page) {
        let Some(end) = page.end_seq() else {
            return;
        };
        if self.last_seq.is_none_or(|last| end >= last) {
            self.log.seed(&page.messages, end);
        }
    }

    fn activate(&mut self, join: Activation<'_>, history: History) -> bool {
        let (members, more) = self.presence.listed_page(None, JOINED_MEMBERS);
        let member_count = self.presence.count();
        let presence_seen = self.presence.version();
        let Room {
            subscribers, log, ..
        } = self;
        let Some(subscriber) = subscribers.get_mut(&join.conn) else {
            return false;
        };
        // Borrowed, not cloned: most joins are served straight from the log.
        let (mut messages, read_up_to): (Vec<&Message>, u64) = match &history {
            History::Read(page) => (
                page.messages.iter().collect(),
                page.end_seq().unwrap_or(0).max(join.since.unwrap_or(0)),
            ),
            History::FromLog(from) => (Vec::new(), from - 1),
        };
        let mut cursor = read_up_to;
        if join.since.is_some() || matches!(history, History::FromLog(_)) {
            // What committed after the read (a resume lists events too), or the log's part:
            // from the log when it reaches back that far, else the connection starts behind
            // and its next take reads the store.
            if log.covers(read_up_to) {
                let plain = join.since.is_none();
                for entry in log.after(read_up_to) {
                    // A plain join lists messages as they are now; the log's entries already
                    // show what later events did to them.
                    if !plain || entry.message.event == Event::Message {
                        messages.push(&entry.message);
                    }
                    cursor = entry.message.seq;
                }
            }
        }
        // A plain join read from the store lists only the page; anything committed since comes
        // after `joined` as live frames (events included), from the cursor at the read.
        // The store's page knows the oldest stored message (retention may have purged the
        // room's first ones); a join served from the log alone does not, and says "more" for
        // anything after seq 1 (a `history` then answers an empty page, `has_more: false`).
        let has_more = match (&history, messages.first()) {
            (_, None) => false,
            (History::Read(page), Some(first))
                if page.messages.first().map(|m| m.seq) == Some(first.seq) =>
            {
                page.has_more
            }
            (_, Some(first)) => first.seq > 1,
        };
        let truncated = join
            .since
            .is_some_and(|since| messages.first().is_some_and(|first| first.seq > since + 1));
        let frame = server::joined(&Joined {
            room: join.room,
            members: &members,
            member_count,
            more_members: more,
            messages: &messages,
            viewer: join.viewer,
            last_seq: cursor,
            has_more,
            truncated,
            reset: join.reset,
            read_seq: join.read_seq.unwrap_or(cursor),
        });
        subscriber.outbox.push(frame);
        subscriber.cursor = Some(cursor);
        subscriber.presence_seen = presence_seen;
        if log.last_seq().is_some_and(|newest| newest > cursor) {
            subscriber.notify(join.room);
        }
        true
    }
}

/// Where a join's history comes from.
enum History {
    /// Read from the store (then topped up from the log).
    Read(Page),
    /// The log's messages from this seq on.
    FromLog(u64),
}

impl Deliver for Hub {
    fn deliver(&self, published: Published) {
        let Some(cell) = self.room(&published.message.room) else {
            return; // nobody here is in that room
        };
        let room = published.message.room.clone();
        let entry = Entry::new(published.message, published.origin);
        let seq = entry.message.seq;
        let mut state = lock(&cell);
        match state.last_seq {
            Some(last) if seq <= last => {
                tracing::debug!(room = %room, seq, last, "dropping a message heard twice");
                return;
            }
            Some(last) if seq > last + 1 => {
                // A hole in the stream: a node died between its commit and its publish, or the
                // broker dropped out. The log starts afresh; members whose cursor is before the
                // hole read the missing messages from the store, which has them all.
                tracing::warn!(room = %room, last, next = seq, "gap in a room's stream");
            }
            _ => {}
        }
        state.last_seq = Some(seq);
        state.log.apply(&entry.message);
        state.log.push(entry);
        for subscriber in state.subscribers.values_mut() {
            subscriber.notify(&room);
        }
    }

    fn remote_presence(&self, node: &NodeId, room: &RoomName, user: &User, present: bool) {
        if self.elsewhere.set(room, node, &user.id, present) {
            self.lobby_changed_elsewhere([room.clone()]);
        }
        let Some(cell) = self.room(room) else {
            return; // not hosted here; read in full when it is
        };
        if lock(&cell).presence.remote(node, user, present) {
            self.presence_changed(room);
        }
    }

    fn replace_remote(&self, room: &RoomName, members: Vec<(NodeId, User)>) {
        let Some(cell) = self.room(room) else {
            return;
        };
        if lock(&cell).presence.replace_remote(members) {
            self.presence_changed(room);
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
            if lock(&cell).presence.node_gone(node) {
                self.presence_changed(&room);
            }
        }
    }

    fn control(&self, control: &Control) {
        match control {
            Control::SessionEnded { sid } => {
                self.connections
                    .close_session(sid, crate::protocol::close::SESSION_REVOKED);
            }
            Control::UserClosed { user, code } => self.connections.close_user(user, *code),
            Control::Removed { room, user, reason } => self.remove_user(room, user, *reason),
            Control::AccessChanged { room } => self.access.forget(room),
            Control::Typing { room, user } => self.show_typing(room, user),
            Control::ReadMarker { user, room, seq } => {
                self.connections
                    .send_to_user(user, &server::read_marker(room, *seq));
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
                let users = lock(&cell).presence.local_users();
                (room, users)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DisplayName;
    use crate::rooms::outbox::{Mailbox, outbox};
    use serde_json::Value;

    fn user(name: &str) -> User {
        User {
            id: UserId::from_trusted(format!("id-{name}")),
            name: DisplayName::parse(name).unwrap(),
            guest: true,
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
            event: Event::Message,
            deleted: false,
            edited_at: None,
            reply_to: None,
            reactions: Vec::new(),
        })
    }

    fn publish(hub: &Hub, seq: u64, origin: Option<ConnectionId>) {
        hub.deliver(Published {
            message: message(seq),
            origin,
        });
    }

    /// Everything the connection would write now: its mailbox, then its rooms' logs.
    fn drain(hub: &Hub, conn: ConnectionId, mailbox: &Mailbox) -> Vec<Value> {
        let mut wire = VecDeque::new();
        mailbox.take_frames(&mut wire, usize::MAX);
        let mut rooms = Vec::new();
        mailbox.take_rooms(&mut rooms);
        for room in rooms {
            while let (Take::More, _) = hub.take(&room, conn, usize::MAX, &mut wire, &mut None) {}
        }
        wire.iter()
            .map(|frame| {
                let header = match frame[1] {
                    126 => 4,
                    127 => 10,
                    _ => 2,
                };
                serde_json::from_slice(&frame[header..]).unwrap()
            })
            .collect()
    }

    fn join(conn: ConnectionId, who: &str) -> (Activation<'static>, UserId) {
        let viewer: &'static UserId = Box::leak(Box::new(user(who).id));
        let room: &'static RoomName = Box::leak(Box::new(room()));
        (
            Activation {
                room,
                conn,
                viewer,
                since: None,
                reset: false,
                read_seq: None,
            },
            viewer.clone(),
        )
    }

    fn page(seqs: std::ops::RangeInclusive<u64>) -> Page {
        Page::from_newest_first(seqs.rev().map(|seq| (*message(seq)).clone()).collect())
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
    fn messages_committed_during_a_join_arrive_once_after_joined() {
        let hub = Hub::default();
        let (outbox, mailbox) = outbox();
        let conn = ConnectionId(1);
        hub.subscribe(&room(), conn, &user("ann"), outbox).unwrap();
        // 3 and 4 commit while history is read; the read saw 1..=3.
        publish(&hub, 3, None);
        publish(&hub, 4, None);
        assert!(
            drain(&hub, conn, &mailbox).is_empty(),
            "nothing before joined"
        );
        assert!(hub.activate(join(conn, "ann").0, page(1..=3)));
        publish(&hub, 4, None); // a late duplicate must not repeat
        publish(&hub, 5, None);
        let frames = drain(&hub, conn, &mailbox);
        assert_eq!(frames[0]["type"], "joined");
        // A plain join lists what it read; what committed since follows as live frames.
        assert_eq!(seqs_of(&frames[0]), [1, 2, 3]);
        assert_eq!(frames[0]["last_seq"], 3);
        let live: Vec<&Value> = frames[1..].iter().collect();
        assert_eq!(live.len(), 2, "{frames:?}");
        assert_eq!(
            (live[0]["seq"].as_u64(), live[1]["seq"].as_u64()),
            (Some(4), Some(5))
        );
    }

    #[test]
    fn only_the_sending_connection_gets_the_client_id() {
        let hub = Hub::default();
        let (a, a_box) = outbox();
        let (b, b_box) = outbox();
        for (conn, outbox, who) in [(ConnectionId(1), a, "ann"), (ConnectionId(2), b, "ben")] {
            hub.subscribe(&room(), conn, &user(who), outbox).unwrap();
            hub.activate(join(conn, who).0, Page::default());
        }
        drain(&hub, ConnectionId(1), &a_box);
        drain(&hub, ConnectionId(2), &b_box);
        publish(&hub, 1, Some(ConnectionId(1)));
        assert_eq!(drain(&hub, ConnectionId(1), &a_box)[0]["client_id"], "c1");
        assert!(
            drain(&hub, ConnectionId(2), &b_box)[0]
                .get("client_id")
                .is_none()
        );
    }

    // The paused clock runs the tick deterministically: sleeps advance it instantly.
    #[tokio::test(start_paused = true)]
    async fn presence_counts_people_not_connections_and_is_coalesced() {
        let hub = Arc::new(Hub::default());
        let stop = CancellationToken::new();
        let ticker = tokio::spawn(hub.clone().run_presence(stop.clone()));
        let (watch, watch_box) = outbox();
        hub.subscribe(&room(), ConnectionId(9), &user("ben"), watch)
            .unwrap();
        hub.activate(join(ConnectionId(9), "ben").0, Page::default());
        tokio::time::sleep(TICK * 3).await; // ben's own arrival goes out on its own tick
        drain(&hub, ConnectionId(9), &watch_box);

        let (tab1, _box1) = outbox();
        let (tab2, _box2) = outbox();
        let (cat, _box3) = outbox();
        hub.subscribe(&room(), ConnectionId(1), &user("ann"), tab1)
            .unwrap();
        hub.subscribe(&room(), ConnectionId(2), &user("ann"), tab2)
            .unwrap();
        hub.subscribe(&room(), ConnectionId(3), &user("cat"), cat)
            .unwrap();
        assert_eq!(hub.online(&room()), 3);
        tokio::time::sleep(TICK * 3).await;
        let frames = drain(&hub, ConnectionId(9), &watch_box);
        assert_eq!(
            frames.len(),
            1,
            "one frame for a tick's changes: {frames:?}"
        );
        let names: Vec<&str> = frames[0]["joined"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["ann", "cat"]);
        assert_eq!(frames[0]["member_count"], 3);

        hub.unsubscribe(&room(), ConnectionId(1));
        hub.unsubscribe(&room(), ConnectionId(2));
        tokio::time::sleep(TICK * 3).await;
        let frames = drain(&hub, ConnectionId(9), &watch_box);
        assert_eq!(frames[0]["left"][0]["name"], "ann");
        assert_eq!(hub.online(&room()), 2);
        stop.cancel();
        ticker.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_big_rooms_presence_carries_only_the_count() {
        let hub = Arc::new(Hub::default());
        let stop = CancellationToken::new();
        let ticker = tokio::spawn(hub.clone().run_presence(stop.clone()));
        let (watch, watch_box) = outbox();
        hub.subscribe(&room(), ConnectionId(0), &user("watcher"), watch)
            .unwrap();
        hub.activate(join(ConnectionId(0), "watcher").0, Page::default());
        let mut boxes = Vec::new();
        for i in 1..=LISTED_PRESENCE_MAX as u64 {
            let (outbox, mailbox) = outbox();
            hub.subscribe(&room(), ConnectionId(i), &user(&format!("u{i}")), outbox)
                .unwrap();
            boxes.push(mailbox);
        }
        tokio::time::sleep(TICK * 3).await;
        let frames = drain(&hub, ConnectionId(0), &watch_box);
        let last = frames.last().unwrap();
        assert_eq!(last["member_count"], LISTED_PRESENCE_MAX + 1);
        assert_eq!(last["partial"], true);
        assert!(last["joined"].as_array().unwrap().is_empty());
        stop.cancel();
        ticker.await.unwrap();
    }

    #[test]
    fn a_member_far_behind_is_sent_to_the_store_and_others_are_not_held_back() {
        let hub = Hub::default();
        let (slow, slow_box) = outbox();
        let (fast, fast_box) = outbox();
        hub.subscribe(&room(), ConnectionId(1), &user("slow"), slow)
            .unwrap();
        hub.activate(join(ConnectionId(1), "slow").0, Page::default());
        hub.subscribe(&room(), ConnectionId(2), &user("fast"), fast)
            .unwrap();
        hub.activate(join(ConnectionId(2), "fast").0, Page::default());
        drain(&hub, ConnectionId(1), &slow_box);
        drain(&hub, ConnectionId(2), &fast_box);
        let text = "x".repeat(3900);
        for seq in 1..=2000 {
            let mut message = (*message(seq)).clone();
            message.text.clone_from(&text);
            hub.deliver(Published {
                message: Arc::new(message),
                origin: None,
            });
            if seq % 100 == 0 {
                let got = drain(&hub, ConnectionId(2), &fast_box);
                assert_eq!(got.last().unwrap()["seq"], seq, "the fast one keeps up");
            }
        }
        let mut wire = VecDeque::new();
        let (take, _) = hub.take(&room(), ConnectionId(1), usize::MAX, &mut wire, &mut None);
        assert_eq!(take, Take::Behind(0), "the slow one reads the store");
        assert!(hub.advance(&room(), ConnectionId(1), 0, 1990));
        let (take, _) = hub.take(&room(), ConnectionId(1), usize::MAX, &mut wire, &mut None);
        assert_eq!(take, Take::Done);
        assert_eq!(wire.len(), 10, "then the rest from the log");
    }

    #[test]
    fn joins_are_served_from_the_log_once_it_reaches_back_far_enough() {
        let hub = Hub::default();
        let (first, _first_box) = outbox();
        hub.subscribe(&room(), ConnectionId(1), &user("ann"), first)
            .unwrap();
        // Nothing known yet: the first join must read the store.
        assert!(!hub.activate_from_log(join(ConnectionId(1), "ann").0));
        hub.activate(join(ConnectionId(1), "ann").0, page(1..=3));
        publish(&hub, 4, None);
        publish(&hub, 5, None);

        let (second, second_box) = outbox();
        hub.subscribe(&room(), ConnectionId(2), &user("ben"), second)
            .unwrap();
        let mut resume = join(ConnectionId(2), "ben").0;
        resume.since = Some(2);
        assert!(hub.activate_from_log(resume));
        let joined = &drain(&hub, ConnectionId(2), &second_box)[0];
        assert_eq!(seqs_of(joined), [3, 4, 5]);
        assert_eq!(joined["last_seq"], 5);
        publish(&hub, 6, None);
        let live = drain(&hub, ConnectionId(2), &second_box);
        assert_eq!(live.len(), 1);
        assert_eq!(live[0]["seq"], 6, "live after a join from the log");
    }

    #[test]
    fn joined_lists_the_first_hundred_members_and_the_count() {
        let hub = Hub::default();
        let mut boxes = Vec::new();
        for i in 0..150 {
            let (outbox, mailbox) = outbox();
            hub.subscribe(&room(), ConnectionId(i), &user(&format!("u{i:03}")), outbox)
                .unwrap();
            boxes.push(mailbox);
        }
        hub.activate(join(ConnectionId(0), "u000").0, Page::default());
        let joined = &drain(&hub, ConnectionId(0), &boxes[0])[0];
        assert_eq!(joined["members"].as_array().unwrap().len(), JOINED_MEMBERS);
        assert_eq!(joined["member_count"], 150);
        let frame = hub.members(&room(), Some(&user("u099").id), 100).unwrap();
        let rest: Value = serde_json::from_str(frame.json()).unwrap();
        assert_eq!(rest["members"].as_array().unwrap().len(), 50);
        assert_eq!(rest["has_more"], false);
        assert_eq!(rest["member_count"], 150);
    }

    #[test]
    fn an_empty_room_is_forgotten() {
        let hub = Hub::default();
        let (outbox, _mailbox) = outbox();
        hub.subscribe(&room(), ConnectionId(1), &user("ann"), outbox)
            .unwrap();
        assert_eq!(hub.occupied_rooms().len(), 1);
        hub.unsubscribe(&room(), ConnectionId(1));
        assert!(hub.occupied_rooms().is_empty());
        assert!(lock(&hub.rooms).is_empty());
    }
}
