//! A connection's bounded send queue. Rooms push encoded frames into it without waiting; when
//! it is full the connection is cut off (close 4001) rather than skipped or waited for, so one
//! slow reader can neither miss a message silently nor slow its rooms down.
//!
//! A plain `VecDeque` behind a short `Mutex`, not a channel: an idle connection allocates
//! nothing, a busy one reuses its buffer, and the writer takes everything queued under one lock.
//! Profiles of tokio's mpsc here showed block allocation and semaphore work on every frame.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::protocol::close;
use crate::protocol::server::Frame;

/// Frames one connection may have queued. At ~200 bytes a chat frame this bounds a stalled
/// connection to a few hundred KiB, and it is deep enough to absorb a burst in a busy room.
pub const CAPACITY: usize = 1024;

struct Shared {
    frames: Mutex<VecDeque<Frame>>,
    capacity: usize,
    /// Live `Outbox` handles; at zero the receiver sees the end of the queue.
    senders: AtomicUsize,
    receiver_alive: AtomicBool,
    /// Frames arrived (the queue went from empty to not), or the last sender left.
    ready: Notify,
    /// The close code to send; 0 while the connection is in good standing.
    cut_code: AtomicU16,
    cut: Notify,
}

impl Shared {
    fn frames(&self) -> MutexGuard<'_, VecDeque<Frame>> {
        self.frames.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sending half, cloned into every room the connection is in.
pub struct Outbox(Arc<Shared>);

/// The receiving half, owned by the connection's writer.
pub struct OutboxReceiver {
    pub frames: FrameQueue,
    pub cut: CutOffSignal,
}

/// The frames waiting for the connection's writer.
pub struct FrameQueue(Arc<Shared>);

/// Resolves once the connection has been cut off.
pub struct CutOffSignal(Arc<Shared>);

pub fn outbox(capacity: usize) -> (Outbox, OutboxReceiver) {
    let shared = Arc::new(Shared {
        frames: Mutex::new(VecDeque::new()),
        capacity,
        senders: AtomicUsize::new(1),
        receiver_alive: AtomicBool::new(true),
        ready: Notify::new(),
        cut_code: AtomicU16::new(0),
        cut: Notify::new(),
    });
    let receiver = OutboxReceiver {
        frames: FrameQueue(shared.clone()),
        cut: CutOffSignal(shared.clone()),
    };
    (Outbox(shared), receiver)
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.0.senders.fetch_add(1, Ordering::Relaxed);
        Self(self.0.clone())
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.0.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // notify_one keeps a permit, so a writer about to wait still sees the end.
            self.0.ready.notify_one();
        }
    }
}

impl Outbox {
    /// Queues a frame without waiting. Returns false if the connection is gone or was just cut
    /// off for being too slow.
    pub fn push(&self, frame: Frame) -> bool {
        if !self.0.receiver_alive.load(Ordering::Acquire) {
            return false;
        }
        let was_empty = {
            let mut frames = self.0.frames();
            if frames.len() >= self.0.capacity {
                drop(frames);
                self.cut_off();
                return false;
            }
            frames.push_back(frame);
            frames.len() == 1
        };
        if was_empty {
            self.0.ready.notify_one();
        }
        true
    }

    /// Marks the connection as unable to keep up; its writer closes it with 4001.
    pub fn cut_off(&self) {
        self.close_with(close::TOO_SLOW);
    }

    /// Its room's stream had a hole (a node died mid-publish): the writer closes it with 4002
    /// and the client resumes with `since`, which the store answers exactly.
    pub fn resync(&self) {
        self.close_with(close::RESYNC);
    }

    fn close_with(&self, code: u16) {
        let first = self
            .0
            .cut_code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        if first.is_ok() {
            self.0.cut.notify_one();
        }
    }
}

impl FrameQueue {
    /// The next frame; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.0.frames().pop_front() {
                return Some(frame);
            }
            if self.0.senders.load(Ordering::Acquire) == 0 {
                return None;
            }
            self.0.ready.notified().await;
        }
    }

    /// Moves up to `max` queued frames into `into`, under one lock.
    pub fn take(&mut self, into: &mut Vec<Frame>, max: usize) {
        let mut frames = self.0.frames();
        let n = frames.len().min(max);
        into.extend(frames.drain(..n));
    }

    pub fn try_recv(&mut self) -> Option<Frame> {
        self.0.frames().pop_front()
    }
}

impl Drop for FrameQueue {
    fn drop(&mut self) {
        self.0.receiver_alive.store(false, Ordering::Release);
        self.0.frames().clear();
    }
}

impl CutOffSignal {
    /// Resolves with the close code once the connection has been cut off.
    pub async fn tripped(&self) -> u16 {
        loop {
            let code = self.0.cut_code.load(Ordering::Acquire);
            if code != 0 {
                return code;
            }
            self.0.cut.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_cuts_the_connection_off() {
        let (outbox, mut receiver) = outbox(2);
        assert!(outbox.push(Frame::from_static("1")));
        assert!(outbox.push(Frame::from_static("2")));
        assert!(!outbox.push(Frame::from_static("3")));
        assert_eq!(receiver.cut.tripped().await, close::TOO_SLOW);
        assert_eq!(receiver.frames.recv().await.unwrap().as_str(), "1");
    }

    #[tokio::test]
    async fn the_queue_ends_when_the_last_sender_goes() {
        let (outbox, mut receiver) = outbox(4);
        let second = outbox.clone();
        assert!(second.push(Frame::from_static("a")));
        drop(outbox);
        drop(second);
        assert_eq!(receiver.frames.recv().await.unwrap().as_str(), "a");
        assert!(receiver.frames.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_waiting_writer_wakes_for_a_frame() {
        let (outbox, mut receiver) = outbox(4);
        let waiter = tokio::spawn(async move { receiver.frames.recv().await });
        tokio::task::yield_now().await;
        assert!(outbox.push(Frame::from_static("x")));
        assert_eq!(waiter.await.unwrap().unwrap().as_str(), "x");
    }

    #[test]
    fn pushing_to_a_gone_connection_fails_quietly() {
        let (outbox, receiver) = outbox(4);
        drop(receiver);
        assert!(!outbox.push(Frame::from_static("x")));
    }
}
