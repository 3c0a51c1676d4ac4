//! The path of a sent message: sessions queue it here, one task stores whatever has queued up
//! in one transaction (group commit), and only after the commit publishes the batch in seq
//! order. One task means batches commit and publish strictly one after another, so a later
//! batch's broadcast can never overtake an earlier one's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::broker::{Broker, Published};
use crate::domain::{ConnectionId, Message};
use crate::store::{Appended, NewMessage, PublishOrder, Refusal, Store};

/// Most messages in one transaction. Large enough to amortise the commit, small enough that
/// one batch's fan-out does not stall the next commit for long. In SQLite a batch costs a page
/// write per room it touches whatever it stores there (the `(room, seq)` index is ordered by
/// room), tens of µs per room in `benches/hot_paths.rs`: when traffic is spread over 1,000
/// rooms, a batch of 1,024 paid that for about one message per room, and a larger batch shares
/// it between several.
const MAX_BATCH: usize = 4096;
/// A batch that takes longer than this is given up (and rolled back): its senders hear
/// `unavailable` instead of waiting on a database that silently stopped answering. Retrying
/// is safe: `client_id` makes a late duplicate harmless.
const STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Messages waiting for the writer, by default (`--writer-queue`). When full, `append` fails at
/// once with `Overloaded` instead of making its sender wait: a queue that only grew would turn
/// "the store cannot keep up" into seconds of silent latency. 8,192 is 8 full batches and holds
/// at most about 8,192 × 16 KiB of text; [`MAX_QUEUE_WAIT`] usually refuses sooner.
pub const QUEUE: usize = 8192;
/// The longest a newly queued message should wait for the writer. The queue's bound is in
/// messages, but what a sender feels is time: when the writer's recent pace says the batch it
/// is storing and the queue behind it already hold more than this much work, `append` is
/// `Overloaded` before the queue is full. The batch being stored counts: on a slow store
/// (PostgreSQL shared by two nodes, 4,096 messages at 200 µs each) it alone is most of a
/// second, and counting only the queue let messages wait 1.5 s (median) to 2.8 s.
/// One second: a burst a busy machine stores within a second is served, not refused (250 ms
/// refused ordinary bursts of a few hundred messages whenever one batch ran slow), and
/// nothing waits for seconds without an answer.
const MAX_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// Batches at least this large set the pace estimate; smaller ones are dominated by the
/// per-commit cost and would make the per-message cost look far higher than it is.
const PACE_SAMPLE: usize = 256;
/// Bounds of the `retry_after_ms` an overloaded sender is given.
const RETRY_AFTER_MS: (u64, u64) = (10, 5_000);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AppendError {
    #[error("storage is unavailable")]
    Unavailable,
    #[error("the server is shutting down")]
    Stopped,
    /// The writer's queue is full: nothing was queued. Trying again after `retry_after_ms`
    /// (about the time the writer needs to work through its queue) can succeed.
    #[error("the store cannot keep up; try again in {retry_after_ms} ms")]
    Overloaded { retry_after_ms: u64 },
}

/// What a sender learns once its message's batch is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Stored and broadcast; the sender's connection got its copy through the fan-out.
    Stored,
    /// The user had already stored this `client_id` here: the original, for the sender alone.
    /// Boxed: retries are rare, and every answer would otherwise carry a message's size.
    Duplicate(Box<Message>),
    /// An event the store would not take (its target is gone, or not the sender's to change).
    Refused(Refusal),
}

pub type AppendReply = oneshot::Receiver<Result<Sent, AppendError>>;

// `Stop` is sent once; boxing every message to shrink it would cost an allocation per send.
#[allow(clippy::large_enum_variant)]
enum Command {
    Append {
        message: NewMessage,
        origin: Option<ConnectionId>,
        reply: oneshot::Sender<Result<Sent, AppendError>>,
    },
    Stop(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Writer {
    commands: mpsc::Sender<Command>,
    /// Microseconds per message of the last large batch (0 until there was one), written by
    /// the writer and read by senders to judge how long the queue will take to drain.
    micros_per_message: Arc<AtomicU64>,
    /// Messages in the batch the writer is storing now (0 between batches).
    in_flight: Arc<AtomicUsize>,
    /// The queue's bound, for the `retry_after_ms` estimate.
    queue: usize,
}

impl Writer {
    /// `order` is needed only when several nodes store into the same rooms.
    ///
    /// The writer runs on a thread and runtime of its own. On the shared runtime it waited
    /// behind every connection task its own fan-out had just woken, once per await of a
    /// commit: with 10,000 connections that queueing, not the work, set the latency.
    pub fn spawn(
        store: Arc<dyn Store>,
        broker: Arc<dyn Broker>,
        order: Option<Arc<dyn PublishOrder>>,
    ) -> std::io::Result<(Self, JoinHandle<()>)> {
        Self::spawn_bounded(store, broker, order, QUEUE)
    }

    /// [`Writer::spawn`] with a queue of `queue` messages instead of [`QUEUE`].
    pub fn spawn_bounded(
        store: Arc<dyn Store>,
        broker: Arc<dyn Broker>,
        order: Option<Arc<dyn PublishOrder>>,
        queue: usize,
    ) -> std::io::Result<(Self, JoinHandle<()>)> {
        let queue = queue.max(1);
        let (commands, receiver) = mpsc::channel(queue);
        let micros_per_message = Arc::new(AtomicU64::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let backends = Backends {
            store,
            broker,
            order,
            micros_per_message: micros_per_message.clone(),
            in_flight: in_flight.clone(),
        };
        let (finished, finished_rx) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("confab-writer".into())
            .spawn(move || {
                runtime.block_on(run(receiver, backends));
                let _ = finished.send(());
            })?;
        let task = tokio::spawn(async move {
            let _ = finished_rx.await;
        });
        Ok((
            Self {
                commands,
                micros_per_message,
                in_flight,
                queue,
            },
            task,
        ))
    }

    /// Queues a message; the reply says whether it was stored, and arrives after its broadcast.
    /// Messages queued by one caller are stored in the order queued. Never waits: a full queue
    /// is `Overloaded` at once.
    pub async fn append(
        &self,
        message: NewMessage,
        origin: Option<ConnectionId>,
    ) -> Result<AppendReply, AppendError> {
        let (reply, receiver) = oneshot::channel();
        let command = Command::Append {
            message,
            origin,
            reply,
        };
        let wait = self.wait_micros();
        if wait > MAX_QUEUE_WAIT.as_micros() as u64 {
            return Err(AppendError::Overloaded {
                retry_after_ms: retry_after_ms(wait),
            });
        }
        match self.commands.try_send(command) {
            Ok(()) => Ok(receiver),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(AppendError::Stopped),
            Err(mpsc::error::TrySendError::Full(_)) => Err(AppendError::Overloaded {
                retry_after_ms: retry_after_ms(self.wait_micros()),
            }),
        }
    }

    /// About how long, in µs, the writer needs for the batch it is storing and what is queued
    /// behind it, at its recent pace.
    fn wait_micros(&self) -> u64 {
        let per_message = self.micros_per_message.load(Ordering::Relaxed);
        let queued = self.queue - self.commands.capacity();
        let ahead = queued.saturating_add(self.in_flight.load(Ordering::Relaxed));
        per_message.saturating_mul(ahead as u64)
    }

    /// Stores everything queued before this call, then stops the writer.
    pub async fn stop(&self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Stop(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// The `retry_after_ms` for a writer that needs `wait_micros` for what it holds.
fn retry_after_ms(wait_micros: u64) -> u64 {
    (wait_micros / 1000).clamp(RETRY_AFTER_MS.0, RETRY_AFTER_MS.1)
}

/// Who waits for each message of the batch being gathered, index for index.
type Waiter = (
    Option<ConnectionId>,
    oneshot::Sender<Result<Sent, AppendError>>,
);

struct Backends {
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
    order: Option<Arc<dyn PublishOrder>>,
    micros_per_message: Arc<AtomicU64>,
    in_flight: Arc<AtomicUsize>,
}

async fn run(mut commands: mpsc::Receiver<Command>, backends: Backends) {
    let mut messages: Vec<NewMessage> = Vec::with_capacity(MAX_BATCH);
    let mut waiters: Vec<Waiter> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = commands.recv().await {
        let mut stop = None;
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Append {
                    message,
                    origin,
                    reply,
                } => {
                    messages.push(message);
                    waiters.push((origin, reply));
                }
                Command::Stop(done) => {
                    stop = Some(done);
                    break;
                }
            }
            if messages.len() < MAX_BATCH {
                next = commands.try_recv().ok();
            }
        }
        if !messages.is_empty() {
            let started = Instant::now();
            backends.in_flight.store(messages.len(), Ordering::Relaxed);
            commit(&messages, &mut waiters, &backends).await;
            backends.in_flight.store(0, Ordering::Relaxed);
            if messages.len() >= PACE_SAMPLE {
                let micros = started.elapsed().as_micros() / messages.len() as u128;
                backends
                    .micros_per_message
                    .store(u64::try_from(micros).unwrap_or(u64::MAX), Ordering::Relaxed);
            }
            messages.clear();
        }
        if let Some(done) = stop {
            let _ = done.send(());
            return;
        }
    }
}

async fn commit(messages: &[NewMessage], waiters: &mut Vec<Waiter>, backends: &Backends) {
    let hold = match &backends.order {
        None => None,
        Some(order) => {
            let rooms: Vec<_> = messages.iter().map(|m| &m.room).collect();
            match order.hold(&rooms).await {
                Ok(hold) => Some(hold),
                Err(error) => return fail(messages, waiters, &error),
            }
        }
    };
    let started = Instant::now();
    let stored = match tokio::time::timeout(STORE_TIMEOUT, backends.store.append(messages)).await {
        Ok(stored) => stored,
        Err(_) => Err(crate::store::StoreError::TimedOut(STORE_TIMEOUT)),
    };
    let took = started.elapsed();
    match stored {
        Ok(outcomes) => {
            let newly = outcomes
                .iter()
                .filter(|outcome| matches!(outcome, Appended::Stored(_)))
                .count();
            crate::telemetry::metrics::batch_stored(newly, took);
            // Stored messages move into the fan-out; only a duplicate's original goes back.
            let mut published = Vec::with_capacity(outcomes.len());
            let mut answers = Vec::with_capacity(outcomes.len());
            for ((origin, _), outcome) in waiters.iter().zip(outcomes) {
                match outcome {
                    Appended::Stored(message) => {
                        published.push(Published {
                            message: Arc::new(message),
                            origin: *origin,
                        });
                        answers.push(Sent::Stored);
                    }
                    Appended::Duplicate(original) => {
                        answers.push(Sent::Duplicate(Box::new(original)))
                    }
                    Appended::Refused(refusal) => answers.push(Sent::Refused(refusal)),
                }
            }
            if let Err(error) = backends.broker.publish(published).await {
                // Stored, so it is not lost: whoever missed it resumes from the store.
                tracing::error!(%error, "publishing a committed batch failed");
            }
            if let Some(hold) = hold {
                hold.release().await;
            }
            for ((_, reply), answer) in waiters.drain(..).zip(answers) {
                let _ = reply.send(Ok(answer));
            }
        }
        Err(error) => {
            if let Some(hold) = hold {
                hold.release().await;
            }
            fail(messages, waiters, &error);
        }
    }
}

/// Nothing of the batch was stored: every sender hears `unavailable` and may retry.
fn fail(messages: &[NewMessage], waiters: &mut Vec<Waiter>, error: &dyn std::fmt::Display) {
    tracing::error!(%error, messages = messages.len(), "storing a batch failed");
    for (_, reply) in waiters.drain(..) {
        let _ = reply.send(Err(AppendError::Unavailable));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ClientId, DisplayName, Event, RoomName, User};

    fn message() -> NewMessage {
        NewMessage {
            room: RoomName::parse("r").unwrap(),
            id: "id".into(),
            ts: 0,
            user: User::new_guest(DisplayName::parse("ann").unwrap()),
            text: "hi".into(),
            client_id: ClientId::unique(),
            event: Event::Message,
            reply_to: None,
            moderator: false,
        }
    }

    /// A writer's sending side at a given pace, with nothing draining its queue.
    fn writer_at(micros_per_message: u64, in_flight: usize) -> (Writer, mpsc::Receiver<Command>) {
        let (commands, receiver) = mpsc::channel(QUEUE);
        let writer = Writer {
            commands,
            micros_per_message: Arc::new(AtomicU64::new(micros_per_message)),
            in_flight: Arc::new(AtomicUsize::new(in_flight)),
            queue: QUEUE,
        };
        (writer, receiver)
    }

    #[tokio::test]
    async fn the_batch_being_stored_counts_against_the_wait_bound() {
        // 256 messages at 5 ms each: 1.28 s of work already, with an empty queue.
        let (writer, _queue) = writer_at(5_000, 256);
        match writer.append(message(), None).await {
            Err(AppendError::Overloaded { retry_after_ms }) => assert_eq!(retry_after_ms, 1_280),
            other => panic!("expected overloaded, got {:?}", other.map(|_| ())),
        }
        // The same pace between batches: the message is queued.
        writer.in_flight.store(0, Ordering::Relaxed);
        assert!(writer.append(message(), None).await.is_ok());
    }

    #[tokio::test]
    async fn the_queue_counts_too_and_no_pace_refuses_nothing_before_the_queue_is_full() {
        let (writer, _queue) = writer_at(0, 4_096);
        for _ in 0..100 {
            assert!(writer.append(message(), None).await.is_ok());
        }
        // 100 queued and 100 in flight at 6 ms: 1.2 s.
        writer.micros_per_message.store(6_000, Ordering::Relaxed);
        writer.in_flight.store(100, Ordering::Relaxed);
        assert!(matches!(
            writer.append(message(), None).await,
            Err(AppendError::Overloaded { .. })
        ));
    }
}
