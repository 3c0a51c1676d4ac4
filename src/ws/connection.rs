//! One connection, one task: it reads and decodes client frames and hands them to the
//! session, and writes what waits for the connection (its mailbox first, then its rooms'
//! logs) many frames per `writev`, pinging on a timer and closing with the right code.
//!
//! The bounds, all in bytes: at most [`WRITE_BATCH`] of frames taken for writing at a time
//! (refcounts of shared frames, or one store page when catching up); the mailbox (see
//! `rooms::outbox`); the read buffer, one frame of at most 64 KiB plus what one read returned.
//! A connection that has data waiting and writes nothing for the stall timeout is closed with
//! 4001; one that reads slowly only receives later.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, sleep_until, timeout};
use tracing::Instrument;

use super::frame::{self, Decoder, Incoming, Violation};
use super::session::{After, Identity, Pending, PendingSend, Session};
use crate::domain::{ConnectionId, RoomName};
use crate::limits;
use crate::protocol::{MAX_FRAME_BYTES, close, server};
use crate::rooms::hub::Take;
use crate::rooms::outbox::{self, Mailbox, REPLY_BUDGET};
use crate::state::AppState;

/// Bytes taken for writing at once: enough for many frames per `writev`, small enough that a
/// slow reader holds little beyond refcounts.
const WRITE_BATCH: usize = 256 * 1024;
/// Slices handed to one `writev` (the kernel's limit is 1,024).
const MAX_SLICES: usize = 128;
/// Messages read from the store per page when a connection has fallen behind its room's log.
const CATCH_UP_PAGE: u32 = 64;
/// How long a goodbye (what is queued, then the close frame, then the peer's close) may take.
const GOODBYE: Duration = Duration::from_secs(2);

/// Why the connection ends.
enum End {
    /// The peer is gone (EOF or a reset): nothing more can be written.
    Vanished,
    /// Close with this code and reason, after writing what is queued.
    Close(u16, &'static str),
    /// Close at once with this code: what is queued cannot be written (a stalled reader).
    Abort(u16, &'static str),
    /// The client sent a close frame: echo its code.
    Echo(Option<u16>),
}

impl End {
    /// The `reason` of the close log line and of `confab_disconnects_total` (one of
    /// `telemetry::metrics::DISCONNECT_REASONS`). Known from the close code: each code has one
    /// cause.
    fn reason(&self) -> &'static str {
        let code = match self {
            Self::Vanished => return "vanished",
            Self::Echo(_) => return "client",
            Self::Close(code, _) | Self::Abort(code, _) => *code,
        };
        match code {
            close::IDLE_TIMEOUT => "idle",
            close::TOO_SLOW => "stalled",
            close::RESYNC => "resync",
            close::SESSION_REVOKED => "revoked",
            close::CLOSED_BY_ADMIN => "admin",
            close::BANNED => "banned",
            close::SERVICE_RESTART => "shutdown",
            // The only 1008 the server sends: a connection that kept going past its limits.
            close::POLICY_VIOLATION => "rate_limited",
            close::PROTOCOL_ERROR
            | close::UNSUPPORTED_DATA
            | close::INVALID_DATA
            | close::TOO_BIG => "protocol",
            _ => "other",
        }
    }
}

/// Sets up a connection and returns the future that serves it until it ends. Not an `async
/// fn`: everything is moved into the connection before the future is made, so the future
/// holds each piece once (an `async fn` keeps its parameters beside what they were moved into,
/// and the task's size is every idle connection's memory).
pub fn run<R, W>(
    reader: R,
    writer: W,
    leftover: Bytes,
    identity: Identity,
    limits: limits::Connection,
    state: AppState,
) -> impl Future<Output = ()> + Send
where
    R: ReadHalf,
    W: AsyncWrite + Unpin + Send,
{
    let conn = ConnectionId::next();
    // A debug-level span: at the default level it costs nothing (an enabled span per
    // connection was 0.5 KiB of every idle connection's memory); events that matter at info
    // and above name the connection and user themselves.
    let span = tracing::debug_span!("ws", conn = conn.0, user = %identity.user.id.as_str());
    let (outbox, mailbox) = outbox::outbox();
    outbox.push(server::hello(&identity.user, state.idle_timeout.as_secs()));
    let session = Session::new(conn, identity, limits, state, outbox);
    let mut connection = Connection {
        reader,
        writer,
        // What the client sent after its upgrade request, copied out: `leftover` is a slice
        // of the HTTP connection's read buffer (8 KiB or more), which must not live as long as
        // this connection does.
        read_buf: BytesMut::from(&leftover[..]),
        decoder: Decoder::new(MAX_FRAME_BYTES),
        out: VecDeque::new(),
        written_of_front: 0,
        mailbox,
        rooms: Vec::new(),
        session,
        sends: FuturesOrdered::new(),
        stalled_since: None,
        oldest_taken: None,
    };
    async move {
        let opened = Instant::now();
        // One line at open and one at close, at info, each naming the connection and user: a
        // connection's life in the log without a line per message.
        tracing::info!(conn = conn.0, user = %connection.session.user().id.as_str(), "connection opened");
        crate::telemetry::metrics::connection_opened();
        let end = connection.serve().await;
        let reason = end.reason();
        // Boxed like the other rare paths, to keep them out of the idle task's size.
        Box::pin(connection.finish(end)).await;
        crate::telemetry::metrics::connection_closed(reason);
        let duration_ms = u64::try_from(opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(conn = conn.0, user = %connection.session.user().id.as_str(), reason, duration_ms, "connection closed");
    }
    .instrument(span)
}

struct Connection<R, W> {
    reader: R,
    writer: W,
    read_buf: BytesMut,
    decoder: Decoder,
    /// Whole frames taken for writing, oldest first.
    out: VecDeque<Bytes>,
    /// Bytes of `out[0]` already written.
    written_of_front: usize,
    mailbox: Mailbox,
    /// Rooms whose logs have messages for this connection.
    rooms: Vec<RoomName>,
    session: Session,
    /// Sends awaiting their commit, answered in the order they were sent.
    sends: FuturesOrdered<PendingSend>,
    /// Since when data has waited with nothing written.
    stalled_since: Option<Instant>,
    /// When the oldest room message taken since `out` was last empty entered its room's log:
    /// one delivery-latency sample per run of writes, not one per frame.
    oldest_taken: Option<std::time::Instant>,
}

enum Event {
    Wrote(std::io::Result<usize>),
    Read(std::io::Result<usize>),
    Mail,
    Sent(Pending),
    Timer,
}

impl<R, W> Connection<R, W>
where
    R: ReadHalf,
    W: AsyncWrite + Unpin + Send,
{
    async fn serve(&mut self) -> End {
        // Only what the loop needs, not a clone of the whole state: everything held across an
        // await here is part of every connection's resident memory.
        let idle = self.session.state().idle_timeout;
        let ping_every = (idle / 3).max(Duration::from_millis(100));
        let stall = self.session.state().stall_timeout;
        let mut last_heard = Instant::now();
        let mut next_ping = last_heard + ping_every;
        loop {
            // The server wakes every connection through its mailbox when it stops (see
            // `Registry::close_all`); a connection set up meanwhile sees the flag here.
            if self.session.state().shutdown.is_cancelled() {
                return End::Close(close::SERVICE_RESTART, "service restart");
            }
            if let Some(code) = self.mailbox.cut_code() {
                let reason = match code {
                    // Stopping is not a cut: what is in flight is answered and written first.
                    close::SERVICE_RESTART => return End::Close(code, "service restart"),
                    close::TOO_SLOW => "too slow",
                    close::SESSION_REVOKED => "session revoked",
                    close::CLOSED_BY_ADMIN => "closed by an administrator",
                    close::BANNED => "banned from this server",
                    _ => "resync",
                };
                tracing::debug!(code, "cut off: {reason}");
                return End::Abort(code, reason);
            }
            // Requests are read only while the replies waiting fit the budget: a client that
            // asks faster than it reads is answered as fast as it reads.
            let can_read = self.mailbox.bytes() < REPLY_BUDGET;
            if can_read && let Some(end) = self.process_input().await {
                return end;
            }
            if let Err(end) = self.refill().await {
                return end;
            }
            let now = Instant::now();
            if self.out.is_empty() {
                self.stalled_since = None;
            } else if self.stalled_since.is_none() {
                self.stalled_since = Some(now);
            }
            if let Some(since) = self.stalled_since
                && now >= since + stall
            {
                tracing::debug!("cut off: no write progress for {stall:?}");
                return End::Abort(close::TOO_SLOW, "too slow");
            }
            if now >= last_heard + idle {
                tracing::debug!("idle timeout");
                return End::Close(close::IDLE_TIMEOUT, "idle timeout");
            }
            if now >= next_ping {
                self.out.push_back(frame::ping_frame());
                next_ping = now + ping_every;
                continue;
            }
            let deadline = [
                Some(last_heard + idle),
                Some(next_ping),
                self.stalled_since.map(|since| since + stall),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + idle);
            let can_read = self.mailbox.bytes() < REPLY_BUDGET;
            let event = {
                let slices = slices(&self.out, self.written_of_front);
                let writing = !slices.is_empty();
                let sends = &mut self.sends;
                let waiting_sends = !sends.is_empty();
                tokio::select! {
                    biased;
                    written = self.writer.write_vectored(&slices), if writing => Event::Wrote(written),
                    Some(sent) = sends.next(), if waiting_sends => Event::Sent(sent),
                    read = self.reader.read_some(&mut self.read_buf), if can_read => Event::Read(read),
                    () = self.mailbox.ready() => Event::Mail,
                    () = sleep_until(deadline) => Event::Timer,
                }
            };
            match event {
                Event::Wrote(Ok(0) | Err(_)) | Event::Read(Ok(0) | Err(_)) => return End::Vanished,
                Event::Wrote(Ok(written)) => {
                    self.consume(written);
                    self.stalled_since = (!self.out.is_empty()).then(Instant::now);
                    if self.out.is_empty() {
                        if let Some(since) = self.oldest_taken.take() {
                            crate::telemetry::metrics::delivery_latency(since.elapsed());
                        }
                        if self.out.capacity() > 0 {
                            // Nothing in flight: an idle connection keeps no buffers.
                            self.out = VecDeque::new();
                        }
                    }
                }
                Event::Read(Ok(_)) => last_heard = Instant::now(),
                Event::Sent((outcome, reference)) => {
                    self.session.answer_send(outcome, reference.as_ref());
                }
                Event::Mail | Event::Timer => {}
            }
        }
    }

    /// Decodes and handles every complete client frame in the read buffer, while the replies
    /// waiting fit the budget.
    async fn process_input(&mut self) -> Option<End> {
        while self.mailbox.bytes() < REPLY_BUDGET {
            let incoming = match self.decoder.decode(&mut self.read_buf) {
                Ok(Some(incoming)) => incoming,
                Ok(None) => break,
                Err(Violation { code, reason }) => {
                    tracing::debug!(code, reason, "client broke the protocol");
                    return Some(End::Close(code, reason));
                }
            };
            match incoming {
                // Boxed: a request's future (a join reads the store) is large, and unboxed it
                // would be part of every idle connection's task.
                Incoming::Text(text) => match Box::pin(self.session.handle(&text)).await {
                    After::Nothing => {}
                    After::Commit(pending) => self.sends.push_back(pending),
                    After::Close(code, reason) => return Some(End::Close(code, reason)),
                },
                Incoming::Binary => {
                    return Some(End::Close(close::UNSUPPORTED_DATA, "text frames only"));
                }
                Incoming::Ping(payload) => self.out.push_back(frame::pong_frame(&payload)),
                Incoming::Pong => {}
                Incoming::Close(code) => return Some(End::Echo(code)),
            }
        }
        // An idle connection keeps no buffer: the next read allocates a small one again.
        if self.read_buf.is_empty() && self.read_buf.capacity() > 0 {
            self.read_buf = BytesMut::new();
        }
        None
    }

    /// Takes what waits for the connection into `out`, up to [`WRITE_BATCH`]: its mailbox
    /// first (replies, presence), then its rooms' logs, reading the store for a room it has
    /// fallen behind in.
    async fn refill(&mut self) -> Result<(), End> {
        let mut budget = WRITE_BATCH.saturating_sub(self.queued());
        if budget == 0 {
            return Ok(());
        }
        budget = budget.saturating_sub(self.mailbox.take_frames(&mut self.out, budget));
        self.mailbox.take_rooms(&mut self.rooms);
        // Everything queued from here on is a room's message: counted once per refill, not
        // once per frame.
        let before = self.out.len();
        let hub = self.session.state().hub.clone();
        let conn = self.session.conn();
        let mut index = 0;
        while budget > 0 && index < self.rooms.len() {
            let room = self.rooms[index].clone();
            let (take, taken) =
                hub.take(&room, conn, budget, &mut self.out, &mut self.oldest_taken);
            budget = budget.saturating_sub(taken);
            match take {
                Take::Done | Take::Gone => {
                    self.rooms.swap_remove(index);
                    if self.rooms.is_empty() {
                        self.rooms = Vec::new(); // an idle connection keeps no buffer
                    }
                }
                Take::More => index += 1,
                Take::Behind(after) => {
                    let queued = Box::pin(self.catch_up(&room, after)).await?;
                    budget = budget.saturating_sub(queued);
                }
            }
        }
        if self.out.len() > before {
            crate::telemetry::metrics::delivered(self.out.len() - before);
        }
        Ok(())
    }

    /// Reads the next page after `after` from the store for a room whose log no longer
    /// reaches back to this connection's cursor. Returns the bytes queued.
    async fn catch_up(&mut self, room: &RoomName, after: u64) -> Result<usize, End> {
        let state = self.session.state().clone();
        let page = state.store.stream_after(room, after, CATCH_UP_PAGE).await;
        let messages = match page {
            Ok(page) => page.messages,
            Err(error) => {
                tracing::error!(%error, conn = self.session.conn().0, room = %room, "catching a reader up from the store failed");
                return Err(End::Close(close::RESYNC, "resync"));
            }
        };
        let expected = after + 1;
        let contiguous = messages
            .iter()
            .enumerate()
            .all(|(i, m)| m.seq == expected + i as u64);
        let Some(last) = messages.last().map(|m| m.seq).filter(|_| contiguous) else {
            // The log is ahead of what the store shows: nothing this connection can repair.
            tracing::warn!(conn = self.session.conn().0, room = %room, after, "store does not have what the log skipped");
            return Err(End::Close(close::RESYNC, "resync"));
        };
        if !state.hub.advance(room, self.session.conn(), after, last) {
            return Ok(0); // left the room meanwhile
        }
        let viewer = &self.session.user().id;
        let mut queued = 0;
        for message in &messages {
            let own = &message.user.id == viewer;
            let frame = server::message(message, own);
            queued += frame.len();
            self.out.push_back(frame.wire().clone());
        }
        Ok(queued)
    }

    fn queued(&self) -> usize {
        self.out.iter().map(Bytes::len).sum::<usize>() - self.written_of_front
    }

    /// Drops what a write took off the front of `out`.
    fn consume(&mut self, mut written: usize) {
        while written > 0 {
            let Some(front) = self.out.front() else {
                break;
            };
            let left = front.len() - self.written_of_front;
            if written >= left {
                written -= left;
                self.out.pop_front();
                self.written_of_front = 0;
            } else {
                self.written_of_front += written;
                written = 0;
            }
        }
    }

    /// Ends the connection: answers what is in flight when the server stops, writes what waits
    /// (unless the peer cannot take it), leaves every room, and says goodbye with the close frame
    /// the end calls for.
    async fn finish(&mut self, end: End) {
        let (code, reason, flush) = match end {
            End::Vanished => {
                self.session.leave_everything();
                return;
            }
            End::Close(code, reason) => (code, reason, true),
            End::Abort(code, reason) => (code, reason, false),
            End::Echo(code) => (code.unwrap_or(close::NORMAL), "", true),
        };
        if code == close::SERVICE_RESTART {
            self.answer_in_flight().await;
        }
        if flush {
            // Replies and the rooms' messages up to now, e.g. the copies of sends just answered.
            let _ = timeout(GOODBYE, self.flush()).await;
        } else {
            // What waits cannot be written; a partly written frame must still be finished, or
            // the close frame would land inside it.
            self.out.truncate(usize::from(self.written_of_front > 0));
        }
        self.session.leave_everything();
        self.out.push_back(frame::close_frame(code, reason));
        // A stalled reader's socket is full: its close frame goes out only once it reads again,
        // so it gets as long as it had to make progress before the socket is dropped.
        let patience = if flush {
            GOODBYE
        } else {
            self.session.state().stall_timeout
        };
        let goodbye = async {
            if self.write_out().await.is_err() {
                return;
            }
            let _ = self.writer.shutdown().await;
            // Wait for the peer's close (or EOF) so it reads our close frame before the socket
            // goes away.
            let mut sink = [0u8; 256];
            while matches!(self.reader.read(&mut sink).await, Ok(n) if n > 0) {}
        };
        let _ = timeout(patience, goodbye).await;
    }

    /// Writes everything that waits for the connection, until nothing does.
    async fn flush(&mut self) {
        loop {
            if self.refill().await.is_err() || self.out.is_empty() {
                return;
            }
            if self.write_out().await.is_err() {
                return;
            }
        }
    }

    /// Writes all of `out`.
    async fn write_out(&mut self) -> std::io::Result<()> {
        while !self.out.is_empty() {
            let written = {
                let slices = slices(&self.out, self.written_of_front);
                self.writer.write_vectored(&slices).await?
            };
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.consume(written);
        }
        self.writer.flush().await
    }

    /// On shutdown: waits (within the shutdown timeout) for the sends already accepted to be
    /// stored or refused, and queues their answers.
    async fn answer_in_flight(&mut self) {
        let limit = self.session.state().shutdown_timeout;
        let answered = async {
            while let Some((outcome, reference)) = self.sends.next().await {
                self.session.answer_send(outcome, reference.as_ref());
            }
        };
        let _ = timeout(limit, answered).await;
    }
}

/// The next frames to write, as one `writev`'s slices; the first may be partly written.
fn slices(out: &VecDeque<Bytes>, written_of_front: usize) -> Vec<IoSlice<'_>> {
    out.iter()
        .take(MAX_SLICES)
        .enumerate()
        .map(|(i, frame)| {
            if i == 0 {
                IoSlice::new(&frame[written_of_front..])
            } else {
                IoSlice::new(frame)
            }
        })
        .collect()
}

/// A connection's reading half. Waiting for data and reading it are separate, so that an idle
/// connection waits without holding a read buffer.
pub trait ReadHalf: AsyncRead + Unpin + Send {
    /// Waits for data, then reads what the socket has into `buf`, growing it first if it is
    /// full. By default the read itself waits, with its buffer.
    fn read_some<'a>(
        &'a mut self,
        buf: &'a mut BytesMut,
    ) -> impl Future<Output = std::io::Result<usize>> + Send + 'a {
        make_room(buf);
        self.read_buf(buf)
    }
}

impl ReadHalf for tokio::net::tcp::OwnedReadHalf {
    /// Polls the socket's readiness directly instead of awaiting `readable()`: that future
    /// holds a waiter node (about 200 bytes with the read) in every idle connection's task,
    /// while the socket keeps a waker slot for its reader anyway.
    fn read_some<'a>(
        &'a mut self,
        buf: &'a mut BytesMut,
    ) -> impl Future<Output = std::io::Result<usize>> + Send + 'a {
        std::future::poll_fn(move |cx| {
            loop {
                std::task::ready!(self.as_ref().poll_read_ready(cx))?;
                make_room(buf);
                match self.try_read_buf(buf) {
                    // Readiness was stale; `try_read_buf` cleared it, so polling again
                    // registers the waker.
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                    result => return std::task::Poll::Ready(result),
                }
            }
        })
    }
}

impl<T: AsyncRead + AsyncWrite + Send> ReadHalf for tokio::io::ReadHalf<T> {}

/// Grows a read buffer that is (nearly) full: an idle connection's is empty until data comes.
fn make_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 512 {
        buf.reserve(2048);
    }
}
