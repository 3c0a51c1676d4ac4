//! A connection's mailbox: the frames meant for it alone (replies, `joined`, presence, lobby
//! updates), bounded in bytes, and the list of its rooms that have messages it has not taken
//! yet. Messages themselves never enter it: they stay in their room's log, encoded once, and
//! the connection takes them from there at the pace it writes (see `rooms::log`).
//!
//! A `VecDeque` behind a short `Mutex`, not a channel: an idle connection's frame queue is
//! freed (only the short list of rooms with messages is kept, so that deliveries do not
//! allocate), a busy one reuses its buffer, and the connection takes everything queued under
//! one lock.
//! Profiles of tokio's mpsc here showed block allocation and semaphore work on every frame.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;

use futures_util::task::AtomicWaker;

use crate::domain::RoomName;
use crate::protocol::close;
use crate::protocol::server::Frame;

/// Bytes of frames one connection may have waiting before it is cut off (4001). Its own
/// replies are held to [`REPLY_BUDGET`] by the session, which stops reading requests while more
/// than that waits; the rest of this room is for one large reply (a `history` page of long
/// messages is up to ~1.6 MB) plus presence and lobby updates, which are coalesced to at most
/// a few frames a second per room.
pub const CAPACITY: usize = 4 * 1024 * 1024;
/// While more than this waits in the mailbox, the connection reads no further requests: a
/// client that asks faster than it reads is answered only as fast as it reads.
pub const REPLY_BUDGET: usize = 256 * 1024;
/// Rooms-with-messages entries a mailbox keeps room for between deliveries.
const ROOMS_KEPT: usize = 4;
/// Lossy frames (typing) are dropped rather than queued when this much waits already.
const LOSSY_BOUND: usize = 16 * 1024;

struct Shared {
    state: Mutex<State>,
    /// Something arrived (a frame, a room with messages, a close request) since the
    /// connection last looked. A flag and a waker rather than a `Notify`: waiting on one costs
    /// the connection's task a waiter node, which every idle connection would carry.
    signalled: AtomicBool,
    waker: AtomicWaker,
    /// The close code to send; 0 while the connection is in good standing.
    cut_code: AtomicU16,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Frame>,
    bytes: usize,
    /// Rooms whose log has messages for this connection. Each room appears at most once: the
    /// room flags the subscriber as notified until it has taken everything.
    rooms: Vec<RoomName>,
    /// Rooms the connection was removed from (kicked, banned) that its session has not yet
    /// forgotten.
    evicted: Vec<RoomName>,
    /// The connection is gone: pushes are refused.
    closed: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn signal(&self) {
        self.signalled.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// The sending half, cloned into every room the connection is in and into the lobby.
#[derive(Clone)]
pub struct Outbox(Arc<Shared>);

/// The receiving half, owned by the connection's task.
pub struct Mailbox(Arc<Shared>);

pub fn outbox() -> (Outbox, Mailbox) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        signalled: AtomicBool::new(false),
        waker: AtomicWaker::new(),
        cut_code: AtomicU16::new(0),
    });
    (Outbox(shared.clone()), Mailbox(shared))
}

impl Outbox {
    /// Queues a frame without waiting. Returns false if the connection is gone, or if the
    /// frame would take it over [`CAPACITY`] (then it is cut off with 4001).
    pub fn push(&self, frame: Frame) -> bool {
        let was_empty = {
            let mut state = self.0.state();
            if state.closed {
                return false;
            }
            if state.bytes + frame.len() > CAPACITY {
                drop(state);
                self.cut_off();
                return false;
            }
            state.bytes += frame.len();
            state.frames.push_back(frame);
            state.frames.len() == 1
        };
        if was_empty {
            self.0.signal();
        }
        true
    }

    /// Queues a frame that may be lost (typing): only if little waits already, so it is never
    /// queued behind a backlog, and never a reason to cut the connection off.
    pub fn push_lossy(&self, frame: Frame) -> bool {
        let was_empty = {
            let mut state = self.0.state();
            if state.closed || state.bytes + frame.len() > LOSSY_BOUND {
                return false;
            }
            state.bytes += frame.len();
            state.frames.push_back(frame);
            state.frames.len() == 1
        };
        if was_empty {
            self.0.signal();
        }
        true
    }

    /// Tells the connection that `room`'s log has messages for it. The room calls this once
    /// until the connection has taken them all.
    pub fn room_ready(&self, room: &RoomName) {
        let mut state = self.0.state();
        if state.closed {
            return;
        }
        state.rooms.push(room.clone());
        drop(state);
        self.0.signal();
    }

    /// Records that the connection no longer belongs in `room`; its session forgets the room
    /// before it handles another request (see [`Outbox::take_evicted`]).
    pub fn evict(&self, room: &RoomName) {
        let mut state = self.0.state();
        if !state.closed {
            state.evicted.push(room.clone());
        }
    }

    /// Rooms the connection was removed from since the last call.
    pub fn take_evicted(&self) -> Vec<RoomName> {
        std::mem::take(&mut self.0.state().evicted)
    }

    /// Marks the connection as unable to keep up; it closes with 4001.
    pub fn cut_off(&self) {
        self.close_with(close::TOO_SLOW);
    }

    /// Asks the connection to close with `code`. The first request wins.
    pub fn close_with(&self, code: u16) {
        let first = self
            .0
            .cut_code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        if first.is_ok() {
            self.0.signal();
        }
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.0.state().bytes
    }
}

impl Mailbox {
    /// Resolves when something may have arrived since the last call.
    pub fn ready(&self) -> impl Future<Output = ()> + Send + '_ {
        std::future::poll_fn(|cx| {
            if self.0.signalled.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            self.0.waker.register(cx.waker());
            // A signal between the check and the registration found no waker to wake.
            if self.0.signalled.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// The close code someone asked for, if any.
    pub fn cut_code(&self) -> Option<u16> {
        match self.0.cut_code.load(Ordering::Acquire) {
            0 => None,
            code => Some(code),
        }
    }

    /// Moves waiting frames into `into` until about `budget` bytes were taken (at least one
    /// frame if any waits). Returns the bytes taken.
    pub fn take_frames(&self, into: &mut VecDeque<bytes::Bytes>, budget: usize) -> usize {
        let mut state = self.0.state();
        let mut taken = 0;
        while taken < budget {
            let Some(frame) = state.frames.pop_front() else {
                break;
            };
            taken += frame.len();
            into.push_back(frame.wire().clone());
        }
        state.bytes -= taken;
        if state.frames.is_empty() && state.frames.capacity() > 0 {
            // An idle connection keeps no buffer; the next frame allocates a small one.
            state.frames = VecDeque::new();
        }
        taken
    }

    /// Rooms that signalled messages since the last call, appended to `into`.
    pub fn take_rooms(&self, into: &mut Vec<RoomName>) {
        let mut state = self.0.state();
        // Moved, not swapped: the mailbox keeps its small list, so a room announcing messages
        // (on the writer's thread) does not allocate one that the connection's thread then
        // frees. Profiles of `rooms` showed that cross-thread malloc and free on every
        // delivery. A list grown by a connection in many rooms is let go.
        into.append(&mut state.rooms);
        if state.rooms.capacity() > ROOMS_KEPT {
            state.rooms = Vec::new();
        }
    }

    /// Bytes of frames waiting: what the connection checks against [`REPLY_BUDGET`].
    pub fn bytes(&self) -> usize {
        self.0.state().bytes
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.closed = true;
        state.frames.clear();
        state.rooms.clear();
        state.bytes = 0;
        drop(state);
        // The waker holds the connection's task: let it go with the connection, not with the
        // last room or registry entry still holding an `Outbox`.
        drop(self.0.waker.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Frame {
        Frame::from_json(&"x".repeat(len))
    }

    #[test]
    fn frames_are_counted_in_bytes_and_taken_within_a_budget() {
        let (outbox, mailbox) = outbox();
        for _ in 0..4 {
            assert!(outbox.push(frame(1000)));
        }
        assert_eq!(outbox.bytes(), 4 * frame(1000).len());
        let mut out = VecDeque::new();
        mailbox.take_frames(&mut out, 1500);
        assert_eq!(
            out.len(),
            2,
            "the frame that crosses the budget is taken, no more"
        );
        assert_eq!(mailbox.bytes(), 2 * frame(1000).len());
    }

    #[test]
    fn going_over_the_byte_bound_cuts_the_connection_off() {
        let (outbox, mailbox) = outbox();
        let big = frame(CAPACITY / 2);
        assert!(outbox.push(big.clone()));
        assert!(!outbox.push(big.clone()), "over the bound");
        assert_eq!(mailbox.cut_code(), Some(close::TOO_SLOW));
    }

    #[test]
    fn pushing_to_a_gone_connection_fails_quietly() {
        let (outbox, mailbox) = outbox();
        drop(mailbox);
        assert!(!outbox.push(frame(1)));
    }

    #[test]
    fn a_signal_sent_before_the_wait_is_kept_and_used_once() {
        use std::future::Future;
        use std::pin::pin;
        use std::task::{Context, Poll, Waker};

        let (outbox, mailbox) = outbox();
        assert!(outbox.push(frame(1)), "signals before anyone waits");
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(
            pin!(mailbox.ready()).poll(&mut cx),
            Poll::Ready(()),
            "the earlier signal is not lost"
        );
        assert_eq!(
            pin!(mailbox.ready()).poll(&mut cx),
            Poll::Pending,
            "and it wakes the connection once"
        );
        outbox.close_with(close::BANNED);
        assert_eq!(pin!(mailbox.ready()).poll(&mut cx), Poll::Ready(()));
    }

    #[tokio::test]
    async fn a_waiting_connection_wakes_for_a_room_with_messages() {
        let (outbox, mailbox) = outbox();
        let room = RoomName::parse("r").unwrap();
        let waiter = tokio::spawn(async move {
            mailbox.ready().await;
            let mut rooms = Vec::new();
            mailbox.take_rooms(&mut rooms);
            rooms
        });
        tokio::task::yield_now().await;
        outbox.room_ready(&room);
        assert_eq!(waiter.await.unwrap(), [room]);
    }
}
