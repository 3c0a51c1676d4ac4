//! The socket's writing half. It drains everything queued for the connection into one write
//! (the kernel charges per syscall, not per byte), pings on a timer, and closes the socket with
//! the code the session or the room asked for.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::sync::oneshot;
use tokio::time::{MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;

use crate::protocol::close;
use crate::rooms::outbox::{FrameQueue, OutboxReceiver};

/// Most frames gathered into one write.
const DRAIN_MAX: usize = 512;
/// How long a goodbye (final frames plus close frame) may take on a slow socket.
const GOODBYE: Duration = Duration::from_secs(2);

/// Why and how the session wants the socket closed.
pub type CloseRequest = (u16, &'static str);

pub async fn run(
    mut sink: SplitSink<WebSocket, Message>,
    queue: OutboxReceiver,
    mut close_request: oneshot::Receiver<CloseRequest>,
    ping_every: Duration,
    done: CancellationToken,
) {
    let OutboxReceiver { mut frames, cut } = queue;
    // Built once and polled in place: rebuilding it on every wake-up showed in profiles.
    let tripped = cut.tripped();
    tokio::pin!(tripped);
    let mut batch = Vec::new();
    let mut ping = interval(ping_every);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            biased;
            code = &mut tripped => {
                let reason = if code == close::TOO_SLOW { "too slow" } else { "resync" };
                tracing::info!(code, "cut off: {reason}");
                goodbye(&mut sink, None, code, reason).await;
                break;
            }
            request = &mut close_request => {
                if let Ok((code, reason)) = request {
                    goodbye(&mut sink, Some(&mut frames), code, reason).await;
                }
                break;
            }
            frame = frames.recv() => {
                let Some(frame) = frame else { break };
                batch.push(frame);
                frames.take(&mut batch, DRAIN_MAX - 1);
                let written = async {
                    for frame in batch.drain(..) {
                        sink.feed(Message::Text(frame)).await?;
                    }
                    sink.flush().await
                };
                // A peer that stops reading blocks the write; being cut off or asked to close
                // must still end the connection.
                let stop = tokio::select! {
                    result = written => result.is_err(),
                    _ = &mut tripped => true,
                    _ = &mut close_request => true,
                };
                if stop {
                    break;
                }
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    done.cancel();
}

/// Sends what is still queued (when asked to), then the close frame, within [`GOODBYE`].
async fn goodbye(
    sink: &mut SplitSink<WebSocket, Message>,
    queue: Option<&mut FrameQueue>,
    code: u16,
    reason: &'static str,
) {
    let send = async {
        if let Some(queue) = queue {
            while let Some(frame) = queue.try_recv() {
                sink.feed(Message::Text(frame)).await?;
            }
        }
        sink.send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await
    };
    let _ = tokio::time::timeout(GOODBYE, send).await;
}
