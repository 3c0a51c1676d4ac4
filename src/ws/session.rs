//! One connection's session: reads client frames, checks them against the connection's state,
//! and turns them into room, store and lobby calls. Answers go into the connection's outbox,
//! the same queue room fan-out uses, so everything reaches the client in one order.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message, WebSocket};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, SplitStream};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::writer::{self, CloseRequest};
use crate::domain::{ClientId, ConnectionId, MessageText, RoomName, User};
use crate::protocol::client::{self, ClientFrame, Ref};
use crate::protocol::server::{self, Frame};
use crate::protocol::{
    ErrorCode, JOIN_PAGE, MAX_FRAME_BYTES, MAX_ROOMS_PER_CONNECTION, RESUME_CAP, close,
};
use crate::rooms::outbox::{self, Outbox};
use crate::rooms::writer::{AppendError, AppendReply, Sent};
use crate::state::AppState;
use crate::store::NewMessage;

pub async fn run(socket: WebSocket, user: User, state: AppState) {
    let conn = ConnectionId::next();
    let span = tracing::info_span!("ws", conn = conn.0, user = %user.id.as_str(), name = %user.name.as_str());
    async move {
        tracing::debug!("connected");
        let (sink, stream) = socket.split();
        let (outbox, queue) = outbox::outbox(outbox::CAPACITY);
        let (close_tx, close_rx) = oneshot::channel();
        let done = CancellationToken::new();
        let ping_every = (state.idle_timeout / 3).max(Duration::from_millis(100));
        let writer = tokio::spawn(
            writer::run(sink, queue, close_rx, ping_every, done.clone()).in_current_span(),
        );
        outbox.push(server::hello(&user, state.idle_timeout.as_secs()));
        let mut session = Session {
            conn,
            user,
            state,
            outbox,
            rooms: HashSet::new(),
            watching_lobby: false,
        };
        let close = session.read(stream, &done).await;
        session.leave_everything();
        // Either way the writer stops: with a close frame, or at once if the peer went away
        // (dropping the sender ends even a write blocked on a peer that stopped reading).
        match close {
            Some(request) => {
                let _ = close_tx.send(request);
            }
            None => drop(close_tx),
        }
        drop(session);
        let _ = writer.await;
        tracing::debug!("disconnected");
    }
    .instrument(span)
    .await;
}

struct Session {
    conn: ConnectionId,
    user: User,
    state: AppState,
    outbox: Outbox,
    rooms: HashSet<RoomName>,
    watching_lobby: bool,
}

/// A `send` waiting for its group commit, with the `ref` its answer must carry.
type PendingSend = BoxFuture<'static, (Result<Sent, AppendError>, Option<Ref>)>;

impl Session {
    /// Reads until the connection ends; returns the close the session wants sent, if any.
    async fn read(
        &mut self,
        mut stream: SplitStream<WebSocket>,
        done: &CancellationToken,
    ) -> Option<CloseRequest> {
        let shutdown = self.state.shutdown.clone();
        let idle = self.state.idle_timeout;
        let mut last_heard = Instant::now();
        // Sends awaiting their commit, answered in the order they were sent.
        let mut sends: FuturesOrdered<PendingSend> = FuturesOrdered::new();
        loop {
            tokio::select! {
                biased;
                () = done.cancelled() => return None,
                () = shutdown.cancelled() => return Some((close::GOING_AWAY, "server shutting down")),
                () = sleep_until(last_heard + idle) => {
                    tracing::info!("idle timeout");
                    return Some((close::IDLE_TIMEOUT, "idle timeout"));
                }
                Some((outcome, reference)) = sends.next(), if !sends.is_empty() => {
                    self.answer_send(outcome, reference.as_ref());
                }
                incoming = stream.next() => {
                    let message = match incoming {
                        None => return None,
                        Some(Ok(message)) => message,
                        Some(Err(error)) => return transport_error(&error),
                    };
                    last_heard = Instant::now();
                    match message {
                        Message::Text(text) if text.len() > MAX_FRAME_BYTES => {
                            return Some((close::TOO_BIG, "frame over 64 KiB"));
                        }
                        Message::Text(text) => {
                            if let Some(pending) = self.handle(text.as_str()).await {
                                sends.push_back(pending);
                            }
                        }
                        Message::Binary(_) => return Some((close::UNSUPPORTED_DATA, "text frames only")),
                        Message::Ping(_) | Message::Pong(_) => {}
                        Message::Close(_) => return Some((close::NORMAL, "")),
                    }
                }
            }
        }
    }

    fn send(&self, frame: Frame) {
        self.outbox.push(frame);
    }

    fn error(&self, code: ErrorCode, message: &str, reference: Option<&Ref>) {
        self.send(server::error(code, message, reference));
    }

    /// Handles one text frame. A `send` returns its pending commit instead of waiting for it,
    /// so one connection can have many messages in one group commit.
    async fn handle(&mut self, text: &str) -> Option<PendingSend> {
        let (frame, reference) = match client::parse(text) {
            Ok(parsed) => parsed,
            Err(rejection) => {
                self.error(
                    rejection.code,
                    &rejection.message,
                    rejection.reference.as_ref(),
                );
                return None;
            }
        };
        let reference = reference.as_ref();
        match frame {
            ClientFrame::Join { room, since } => self.join(room, since, reference).await,
            ClientFrame::Leave { room } => self.leave(&room, reference),
            ClientFrame::Send {
                room,
                text,
                client_id,
            } => {
                return self.submit(room, text, client_id, reference.cloned()).await;
            }
            ClientFrame::History {
                room,
                before,
                limit,
            } => {
                self.history(&room, before, limit, reference).await;
            }
            ClientFrame::Rooms => self.watch_lobby(reference).await,
            ClientFrame::Ping => self.send(server::pong()),
        }
        None
    }

    async fn join(&mut self, room: RoomName, since: Option<u64>, reference: Option<&Ref>) {
        if self.rooms.contains(&room) {
            return self.error(
                ErrorCode::AlreadyJoined,
                "already in this room; leave first to rejoin",
                reference,
            );
        }
        if self.rooms.len() >= MAX_ROOMS_PER_CONNECTION {
            let message =
                format!("one connection may be in at most {MAX_ROOMS_PER_CONNECTION} rooms");
            return self.error(ErrorCode::TooManyRooms, &message, reference);
        }
        // Subscribe first, then read: whatever commits in between waits in the subscription.
        self.state
            .hub
            .subscribe(&room, self.conn, &self.user, self.outbox.clone());
        self.rooms.insert(room.clone());
        match self.state.broker.remote_members(&room).await {
            Ok(members) => self.state.hub.merge_remote(&room, members),
            // Other nodes' members show up as their events arrive and at the next reconcile.
            Err(error) => tracing::warn!(%error, room = %room, "cannot read other nodes' members"),
        }
        // Most joins ask for what the room holds in memory; only the rest read the store.
        if self
            .state
            .hub
            .activate_from_recent(&room, self.conn, &self.user.id, since)
        {
            return;
        }
        let store = &self.state.store;
        let page = match since {
            None => store.latest(&room, JOIN_PAGE).await,
            Some(since) => store.after(&room, since, RESUME_CAP).await,
        };
        match page {
            Ok(page) => {
                self.state
                    .hub
                    .activate(&room, self.conn, &self.user.id, page, since);
            }
            Err(error) => {
                tracing::error!(%error, room = %room, "reading history for a join failed");
                self.state.hub.unsubscribe(&room, self.conn);
                self.rooms.remove(&room);
                self.error(
                    ErrorCode::Unavailable,
                    "storage is unavailable; try again",
                    reference,
                );
            }
        }
    }

    fn leave(&mut self, room: &RoomName, reference: Option<&Ref>) {
        if !self.rooms.remove(room) {
            return self.error(ErrorCode::NotJoined, "not in this room", reference);
        }
        self.state.hub.unsubscribe(room, self.conn);
        self.send(server::left(room));
    }

    async fn submit(
        &mut self,
        room: RoomName,
        text: MessageText,
        client_id: ClientId,
        reference: Option<Ref>,
    ) -> Option<PendingSend> {
        if !self.rooms.contains(&room) {
            self.error(
                ErrorCode::NotJoined,
                "join the room before sending to it",
                reference.as_ref(),
            );
            return None;
        }
        let message = NewMessage {
            room,
            id: uuid::Uuid::now_v7().to_string(),
            ts: now_millis(),
            user: self.user.clone(),
            text: text.into_string(),
            client_id,
        };
        match self.state.writer.append(message, self.conn).await {
            Ok(reply) => Some(wait_for_commit(reply, reference).boxed()),
            Err(AppendError::Overloaded { retry_after_ms }) => {
                self.send(server::error_with_retry(
                    ErrorCode::Overloaded,
                    "the server cannot store messages this fast; nothing was stored",
                    reference.as_ref(),
                    Some(retry_after_ms),
                ));
                None
            }
            Err(error) => {
                self.error(
                    ErrorCode::Unavailable,
                    &error.to_string(),
                    reference.as_ref(),
                );
                None
            }
        }
    }

    fn answer_send(&self, outcome: Result<Sent, AppendError>, reference: Option<&Ref>) {
        match outcome {
            // The broadcast already brought this connection its copy.
            Ok(Sent::Stored) => {}
            Ok(Sent::Duplicate(original)) => self.send(server::message(&original, true)),
            Err(error) => self.error(
                ErrorCode::Unavailable,
                &format!("{error}; nothing was stored"),
                reference,
            ),
        }
    }

    async fn history(&self, room: &RoomName, before: u64, limit: u32, reference: Option<&Ref>) {
        if !self.rooms.contains(room) {
            return self.error(
                ErrorCode::NotJoined,
                "join the room to read its history",
                reference,
            );
        }
        match self.state.store.before(room, before, limit).await {
            Ok(page) => self.send(server::history(
                room,
                &page.messages,
                &self.user.id,
                page.has_more,
            )),
            Err(error) => {
                tracing::error!(%error, room = %room, "reading history failed");
                self.error(
                    ErrorCode::Unavailable,
                    "storage is unavailable; try again",
                    reference,
                );
            }
        }
    }

    async fn watch_lobby(&mut self, reference: Option<&Ref>) {
        // Watch first, then snapshot: a change in between arrives as an update after it.
        self.state.hub.lobby.watch(self.conn, self.outbox.clone());
        self.watching_lobby = true;
        match self.state.hub.snapshot(self.state.store.as_ref()).await {
            Ok(rooms) => self.send(server::rooms(&rooms, true)),
            Err(error) => {
                tracing::error!(%error, "reading the room list failed");
                self.error(
                    ErrorCode::Unavailable,
                    "storage is unavailable; try again",
                    reference,
                );
            }
        }
    }

    fn leave_everything(&mut self) {
        for room in self.rooms.drain() {
            self.state.hub.unsubscribe(&room, self.conn);
        }
        if self.watching_lobby {
            self.state.hub.lobby.unwatch(self.conn);
        }
    }
}

async fn wait_for_commit(
    reply: AppendReply,
    reference: Option<Ref>,
) -> (Result<Sent, AppendError>, Option<Ref>) {
    (reply.await.unwrap_or(Err(AppendError::Stopped)), reference)
}

/// A frame beyond even the transport's ceiling is still "too big" to the client; anything
/// else (a reset, a protocol violation) just ends the connection.
fn transport_error(error: &axum::Error) -> Option<CloseRequest> {
    let source = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<tungstenite::Error>());
    match source {
        Some(tungstenite::Error::Capacity(_)) => Some((close::TOO_BIG, "frame over 64 KiB")),
        _ => {
            tracing::debug!(%error, "connection ended by a transport error");
            None
        }
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
