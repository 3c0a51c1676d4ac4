//! A connection's bounded send queue. Rooms push encoded frames into it without waiting; when
//! it is full the connection is cut off (close 4001) rather than skipped or waited for, so one
//! slow reader can neither miss a message silently nor slow its rooms down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use tokio::sync::{Notify, mpsc};

use crate::protocol::close;
use crate::protocol::server::Frame;

/// Frames one connection may have queued. At ~200 bytes a chat frame this bounds a stalled
/// connection to a few hundred KiB, and it is deep enough to absorb a burst in a busy room.
pub const CAPACITY: usize = 1024;

/// The sending half, cloned into every room the connection is in.
#[derive(Clone)]
pub struct Outbox {
    frames: mpsc::Sender<Frame>,
    cut: Arc<CutOff>,
}

/// The receiving half, owned by the connection's writer.
pub struct OutboxReceiver {
    pub frames: mpsc::Receiver<Frame>,
    pub cut: CutOffSignal,
}

/// Resolves once the connection has been cut off for being too slow.
pub struct CutOffSignal(Arc<CutOff>);

#[derive(Default)]
struct CutOff {
    /// The close code to send; 0 while the connection is in good standing.
    code: AtomicU16,
    notify: Notify,
}

pub fn outbox(capacity: usize) -> (Outbox, OutboxReceiver) {
    let (frames, receiver) = mpsc::channel(capacity);
    let cut = Arc::new(CutOff::default());
    (
        Outbox {
            frames,
            cut: cut.clone(),
        },
        OutboxReceiver {
            frames: receiver,
            cut: CutOffSignal(cut),
        },
    )
}

impl Outbox {
    /// Queues a frame without waiting. Returns false if the connection is gone or was just cut
    /// off for being too slow.
    pub fn push(&self, frame: Frame) -> bool {
        match self.frames.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.cut_off();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
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
        if self
            .cut
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // notify_one stores a permit, so the writer wakes even if it is not waiting yet.
            self.cut.notify.notify_one();
        }
    }
}

impl CutOffSignal {
    /// Resolves with the close code once the connection has been cut off.
    pub async fn tripped(&self) -> u16 {
        loop {
            let code = self.0.code.load(Ordering::Acquire);
            if code != 0 {
                return code;
            }
            self.0.notify.notified().await;
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
}
