//! A room's newest messages in memory: each stored message once, with its WebSocket frame
//! encoded once for everyone (plus once with `client_id` for the sending connection), in seq
//! order with no hole, bounded in bytes.
//!
//! This is where a room's backlog lives. Members keep only a cursor (the last seq they took);
//! a member that falls behind the log's oldest entry reads its next page from the store, which
//! has every committed message, so trimming the log never loses anything. Joins and short
//! resumes that the log covers are answered from it without a store read.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::domain::{ConnectionId, Event, Message, REACTION_USERS_LISTED, Reaction, User};
use crate::protocol::server::{self, Frame};
use crate::protocol::{JOIN_PAGE, RESUME_CAP};

/// Bytes a room's log may hold (frames and texts). A busy room keeps about this much of its
/// newest traffic; a member further behind reads the store.
pub const LOG_BYTES: usize = 1024 * 1024;
/// Messages older than this (by their `ts`) are dropped once more than [`LOG_MIN_ENTRIES`] are
/// held: a reader a minute behind reads the store anyway, and without an age bound a quiet
/// room's log would grow for an hour towards [`LOG_BYTES`], so a server's memory would keep
/// climbing long after its load stopped changing.
pub const LOG_KEEP_MS: i64 = 60_000;
/// Messages always kept, whatever their age: a plain join (50) and short resumes.
pub const LOG_MIN_ENTRIES: usize = 64;
/// Bytes all the rooms' logs of a server may hold together. Past it, a room that grows gives up
/// its oldest messages (never its newest [`LOG_MIN_ENTRIES`]) until all are back under it. The
/// per-room bounds alone let memory grow with the number of busy rooms: 1,000 rooms at 10
/// messages/s each held their last minute, heading for 1 GB.
pub const ALL_LOGS_BYTES: usize = 64 * 1024 * 1024;

/// What every log of one hub holds, together: shared by the logs, each adding and taking
/// away its own bytes.
#[derive(Debug)]
pub struct LogBudget {
    held: AtomicUsize,
    limit: usize,
}

impl LogBudget {
    pub fn new(limit: usize) -> Self {
        Self {
            held: AtomicUsize::new(0),
            limit,
        }
    }

    /// Bytes held by all the logs sharing this budget.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn over(&self) -> bool {
        self.held() > self.limit
    }
}

impl Default for LogBudget {
    fn default() -> Self {
        Self::new(ALL_LOGS_BYTES)
    }
}

/// What an entry costs beyond its frames and text: the message's other fields and the deque slot.
const ENTRY_OVERHEAD: usize = 160;

pub struct Entry {
    pub message: Arc<Message>,
    /// When the message entered a log: on its fan-out, just after its commit. Delivery latency
    /// (`confab_delivery_seconds`) is counted from here.
    pub logged: Instant,
    /// The frame every member gets.
    pub frame: Frame,
    /// The sending connection's copy, with `client_id`, if it is on this node.
    pub own: Option<(ConnectionId, Frame)>,
}

impl Entry {
    pub fn new(message: Arc<Message>, origin: Option<ConnectionId>) -> Self {
        let frame = server::message(&message, false);
        let own = origin.map(|origin| (origin, server::message(&message, true)));
        Self {
            message,
            logged: Instant::now(),
            frame,
            own,
        }
    }

    /// The frame for `conn`: its own copy if it sent the message.
    pub fn frame_for(&self, conn: ConnectionId) -> &Frame {
        match &self.own {
            Some((origin, own)) if *origin == conn => own,
            _ => &self.frame,
        }
    }

    fn cost(&self) -> usize {
        self.frame.len()
            + self.own.as_ref().map_or(0, |(_, own)| own.len())
            + self.message.text.len()
            + ENTRY_OVERHEAD
    }
}

/// A contiguous run of a room's newest messages, `first_seq()..=last_seq()`.
#[derive(Default)]
pub struct Log {
    entries: VecDeque<Entry>,
    bytes: usize,
    /// Shared with the other rooms' logs; kept equal to the sum of their `bytes`.
    budget: Arc<LogBudget>,
    /// The newest seq the room is known to have (0: known empty; `None`: not known yet). The
    /// log covers everything after `first_seq() - 1` up to it, even when it holds no entry,
    /// so that joins of a quiet or empty room need no store read either.
    end: Option<u64>,
}

impl Drop for Log {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl Log {
    /// An empty log whose bytes count against `budget` too.
    pub fn within(budget: Arc<LogBudget>) -> Self {
        Self {
            entries: VecDeque::new(),
            bytes: 0,
            budget,
            end: None,
        }
    }

    fn gained(&mut self, bytes: usize) {
        self.bytes += bytes;
        self.budget.held.fetch_add(bytes, Ordering::Relaxed);
    }

    fn lost(&mut self, bytes: usize) {
        self.bytes -= bytes;
        self.budget.held.fetch_sub(bytes, Ordering::Relaxed);
    }

    fn forget_all(&mut self) {
        self.entries.clear();
        self.lost(self.bytes);
    }

    /// The oldest seq held, if any.
    pub fn first_seq(&self) -> Option<u64> {
        match self.entries.front() {
            Some(entry) => Some(entry.message.seq),
            None => self.end.map(|end| end + 1),
        }
    }

    /// The newest seq the room is known to have.
    pub fn last_seq(&self) -> Option<u64> {
        self.end
    }

    /// Appends the next message. One the log already holds (seeded from a join's read before
    /// its fan-out arrived) is skipped; one that does not follow the newest starts the log
    /// afresh (the missing ones are in the store; members behind read them there).
    pub fn push(&mut self, entry: Entry) {
        match self.end {
            Some(last) if entry.message.seq <= last => return,
            Some(last) if entry.message.seq != last + 1 => self.forget_all(),
            _ => {}
        }
        self.end = Some(entry.message.seq);
        self.gained(entry.cost());
        self.entries.push_back(entry);
        let newest_ts = self.entries.back().map_or(0, |e| e.message.ts);
        while let Some(oldest) = self.entries.front() {
            let too_big = self.bytes > LOG_BYTES && self.entries.len() > 1;
            // The busy rooms are the ones pushing, so they are the ones trimmed when all the
            // logs together are over budget; a quiet room keeps its minute.
            let beyond_minimum = self.entries.len() > LOG_MIN_ENTRIES;
            let too_old =
                beyond_minimum && oldest.message.ts < newest_ts.saturating_sub(LOG_KEEP_MS);
            let server_full = beyond_minimum && self.budget.over();
            if !(too_big || too_old || server_full) {
                break;
            }
            if let Some(old) = self.entries.pop_front() {
                self.lost(old.cost());
            }
        }
    }

    /// Starts a log that knows nothing yet from a join's page of the room's newest messages,
    /// read when the room's last seq was `end`. Only a page that is the whole tail of the
    /// stream (no event between or after its messages) can start it: the log must hold every
    /// item from its first to `end`.
    pub fn seed(&mut self, newest: &[Message], end: u64) {
        if self.end.is_some() {
            return;
        }
        let contiguous = newest.windows(2).all(|pair| pair[1].seq == pair[0].seq + 1);
        let reaches_end = newest.last().map_or(0, |m| m.seq) == end;
        if !(contiguous && reaches_end) {
            return;
        }
        if newest.is_empty() {
            self.end = Some(0);
        }
        for message in newest {
            self.push(Entry::new(Arc::new(message.clone()), None));
        }
    }

    /// Applies what an event does to its target, if the log holds it, so that plain joins
    /// served from the log show the room as it is now. Where the new state cannot be known
    /// here (a reaction taken back by someone listed among an emoji's first ten, when more
    /// reacted), the log starts afresh: joins and laggards read the store, which knows.
    pub fn apply(&mut self, event: &Message) {
        let Some(target) = event.event.target() else {
            return;
        };
        let Some(first) = self.first_seq() else {
            return;
        };
        let Some(at) = target
            .checked_sub(first)
            .and_then(|at| usize::try_from(at).ok())
        else {
            return;
        };
        let Some(entry) = self.entries.get_mut(at) else {
            return;
        };
        let mut message = (*entry.message).clone();
        let exact = match event.event {
            Event::Message => true,
            Event::Deleted { .. } => {
                message.deleted = true;
                message.text.clear();
                message.reactions.clear();
                true
            }
            Event::Edited { .. } => {
                message.text.clone_from(&event.text);
                message.edited_at = Some(event.ts);
                true
            }
            Event::Reaction { added, .. } => react(&mut message, &event.text, &event.user, added),
        };
        if !exact {
            self.forget_all();
            self.end = None;
            return;
        }
        let before = entry.cost();
        let origin = entry.own.as_ref().map(|(origin, _)| *origin);
        *entry = Entry::new(Arc::new(message), origin);
        let after = entry.cost();
        self.lost(before);
        self.gained(after);
    }

    /// Entries with a seq above `after`, oldest first. Empty if the log does not reach back
    /// that far (check [`Log::covers`] first) or holds nothing newer.
    pub fn after(&self, after: u64) -> impl Iterator<Item = &Entry> {
        let skip = match self.first_seq() {
            Some(first) if after >= first => {
                usize::try_from(after + 1 - first).unwrap_or(usize::MAX)
            }
            _ => 0,
        };
        self.entries.iter().skip(skip)
    }

    /// Whether everything after `after` up to the newest message is in the log.
    pub fn covers(&self, after: u64) -> bool {
        match self.first_seq() {
            Some(first) => after + 1 >= first,
            None => true,
        }
    }

    /// The first seq a join asks for, if the log holds everything from there to the newest
    /// item. `None`: read the store. A join without `since` asks for the newest
    /// [`JOIN_PAGE`] messages (events do not count: it shows none).
    pub fn join_start(&self, since: Option<u64>) -> Option<u64> {
        let first = self.first_seq()?;
        let end = self.last_seq()? + 1; // one past the newest
        let from = match since {
            None => {
                let page = usize::try_from(JOIN_PAGE).unwrap_or(usize::MAX);
                let mut messages = self
                    .entries
                    .iter()
                    .rev()
                    .filter(|entry| entry.message.event == Event::Message);
                match messages.nth(page - 1) {
                    Some(entry) => entry.message.seq,
                    // Fewer than a page held: enough only if the log starts at the room's start.
                    None if first <= 1 => 1,
                    None => return None,
                }
            }
            Some(since) if since >= end => return None, // a cursor from the future: ask the store
            Some(since) if end - (since + 1) > u64::from(RESUME_CAP) => end - u64::from(RESUME_CAP),
            Some(since) => since + 1,
        };
        (from >= first).then_some(from)
    }
}

/// Applies one reaction to a message's summary; false if the result cannot be known exactly.
fn react(message: &mut Message, emoji: &str, user: &User, added: bool) -> bool {
    let found = message.reactions.iter().position(|r| r.emoji == emoji);
    match (found, added) {
        (Some(at), true) => {
            let reaction = &mut message.reactions[at];
            reaction.count += 1;
            if reaction.users.len() < REACTION_USERS_LISTED {
                reaction.users.push(user.clone());
            }
            true
        }
        (None, true) => {
            message.reactions.push(Reaction {
                emoji: emoji.to_owned(),
                count: 1,
                users: vec![user.clone()],
            });
            true
        }
        (Some(at), false) => {
            let reaction = &mut message.reactions[at];
            reaction.count = reaction.count.saturating_sub(1);
            let listed = reaction.users.iter().position(|u| u.id == user.id);
            if let Some(listed) = listed {
                reaction.users.remove(listed);
            }
            let unlisted_left = reaction.count as usize > reaction.users.len();
            if reaction.count == 0 {
                message.reactions.remove(at);
            }
            // Someone beyond the first ten would now be listed: who is known to the store only.
            !(listed.is_some() && unlisted_left)
        }
        (None, false) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DisplayName, RoomName, User, UserId};

    fn message(seq: u64, text_len: usize) -> Arc<Message> {
        Arc::new(Message {
            room: RoomName::parse("r").unwrap(),
            seq,
            id: format!("m{seq}"),
            ts: 0,
            user: User {
                id: UserId::from_trusted("u".into()),
                name: DisplayName::parse("ann").unwrap(),
                guest: true,
            },
            text: "x".repeat(text_len),
            client_id: format!("c{seq}"),
            event: Event::Message,
            deleted: false,
            edited_at: None,
            reply_to: None,
            reactions: Vec::new(),
        })
    }

    #[test]
    fn the_log_is_bounded_in_bytes_and_keeps_the_newest() {
        let mut log = Log::default();
        for seq in 1..=1000 {
            log.push(Entry::new(message(seq, 3900), None));
        }
        assert!(log.bytes <= LOG_BYTES);
        assert_eq!(log.last_seq(), Some(1000));
        let first = log.first_seq().unwrap();
        assert!(first > 1 && first < 1000);
        assert!(!log.covers(first - 2));
        assert!(log.covers(first - 1));
        let seqs: Vec<u64> = log.after(first + 5).map(|e| e.message.seq).collect();
        assert_eq!(seqs, (first + 6..=1000).collect::<Vec<_>>());
    }

    #[test]
    fn over_the_shared_budget_the_room_that_grows_gives_up_its_oldest_never_below_sixty_four() {
        let budget = Arc::new(LogBudget::new(400 * 1024));
        let mut quiet = Log::within(budget.clone());
        for seq in 1..=100 {
            quiet.push(Entry::new(message(seq, 1000), None));
        }
        assert_eq!(quiet.first_seq(), Some(1), "under budget: all of it");
        let mut busy = Log::within(budget.clone());
        for seq in 1..=500 {
            busy.push(Entry::new(message(seq, 1000), None));
        }
        assert_eq!(busy.last_seq(), Some(500));
        assert!(
            busy.entries.len() >= LOG_MIN_ENTRIES && busy.entries.len() < 100,
            "the pushing room gives up its oldest, down to no fewer than 64: {}",
            busy.entries.len()
        );
        assert!(budget.held() <= 400 * 1024, "back under budget");
        assert_eq!(
            quiet.first_seq(),
            Some(1),
            "the quiet room keeps what it had"
        );
        assert_eq!(budget.held(), quiet.bytes + busy.bytes);
        drop(busy);
        assert_eq!(
            budget.held(),
            quiet.bytes,
            "a room that goes gives its bytes back"
        );
    }

    #[test]
    fn old_messages_go_once_the_newest_sixty_four_are_kept() {
        let mut log = Log::default();
        for seq in 1..=200 {
            let mut message = (*message(seq, 10)).clone();
            message.ts = i64::try_from(seq).unwrap() * 500; // two a second
            log.push(Entry::new(Arc::new(message), None));
        }
        // The newest minute (seqs 80..=200), which is more than the 64 always kept.
        assert_eq!((log.first_seq(), log.last_seq()), (Some(80), Some(200)));
        let mut log = Log::default();
        for seq in 1..=100 {
            let mut message = (*message(seq, 10)).clone();
            message.ts = i64::try_from(seq).unwrap() * 60_000; // one a minute
            log.push(Entry::new(Arc::new(message), None));
        }
        assert_eq!(log.first_seq(), Some(37), "64 kept however old");
    }

    #[test]
    fn a_message_already_held_is_not_appended_twice() {
        let mut log = Log::default();
        for seq in 1..=3 {
            log.push(Entry::new(message(seq, 1), None));
        }
        log.push(Entry::new(message(2, 1), None));
        assert_eq!((log.first_seq(), log.last_seq()), (Some(1), Some(3)));
    }

    #[test]
    fn a_hole_starts_the_log_afresh() {
        let mut log = Log::default();
        log.push(Entry::new(message(1, 1), None));
        log.push(Entry::new(message(3, 1), None));
        assert_eq!(log.first_seq(), Some(3));
        assert!(
            log.join_start(Some(1)).is_none(),
            "seq 2 must come from the store"
        );
    }

    #[test]
    fn joins_are_served_when_the_log_reaches_back_far_enough() {
        let mut log = Log::default();
        for seq in 41..=100 {
            log.push(Entry::new(message(seq, 1), None));
        }
        assert_eq!(log.join_start(None), Some(51), "the newest 50");
        assert_eq!(log.join_start(Some(90)), Some(91));
        assert_eq!(log.join_start(Some(10)), None);
        assert_eq!(log.join_start(Some(100)), Some(101), "nothing new");
        assert_eq!(log.join_start(Some(150)), None);
    }

    #[test]
    fn only_the_sender_gets_its_own_copy() {
        let entry = Entry::new(message(1, 1), Some(ConnectionId(7)));
        assert!(
            entry
                .frame_for(ConnectionId(7))
                .json()
                .contains("client_id")
        );
        assert!(
            !entry
                .frame_for(ConnectionId(8))
                .json()
                .contains("client_id")
        );
    }
}
