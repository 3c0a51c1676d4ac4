//! The reference server: a minimal, fast fan-out server speaking just enough of protocol v1
//! for `confab-bench --reference`, so confab's figures come with a baseline from the same run.
//!
//! What it does, the way a good hand-written server would:
//! - one tokio task per connection, owning its socket: it reads client frames and writes
//!   server frames itself (no reader/writer task pair, no lock around the socket);
//! - the HTTP upgrade and the WebSocket framing by hand (RFC 6455: unmasked server frames,
//!   masked client frames, 7/16/64-bit lengths), so a server frame is built once;
//! - per room, a member list of connection queues behind one mutex; a `send` takes the next
//!   `seq` and encodes the `message` JSON **once** into a complete WebSocket frame
//!   (`Arc<[u8]>`), then hands the same bytes to every member (the author gets a second
//!   encoding carrying its `client_id`, as the protocol says only the author sees it);
//! - each connection writes everything queued for it in one `writev` (up to 64 frames) per
//!   wake-up, and keeps reading while its socket is full.
//!
//! What it does not do: no storage (`joined` carries no history, `history` is not answered),
//! no presence (`joined.members` is empty, no `presence` frames), no validation of names,
//! rooms or texts, no limits, no pings or idle timeout, no slow-consumer policy (a member that
//! stops reading has an unbounded queue), no fragmented client frames (the connection is
//! dropped), no TLS, no cluster. `hello`, `join`/`joined`, `leave`/`left`, `send` → `message`
//! with gapless per-room `seq`, `ping` → `pong`, close frames, and `GET /healthz` work.
//!
//! It accepts `--addr HOST:PORT` and ignores every other argument, so the bench can start it
//! with confab's flags (`--data-dir`, `--idle-timeout`, `--rate-limits off`, `--server-arg`s):
//!
//! ```text
//! cargo build --release -p confab-bench --example reference_server
//! confab-bench fanout --spawn target/release/confab \
//!     --reference target/release/examples/reference_server --members 50
//! ```

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// A complete server-to-client WebSocket frame, shared by every recipient.
type Frame = Arc<[u8]>;

/// Longest HTTP request head accepted before the upgrade.
const MAX_HEAD: usize = 8 * 1024;
/// Longest client frame accepted (a 4,000-character text in JSON is far below it).
const MAX_CLIENT_FRAME: u64 = 1 << 20;
/// Frames per `writev`.
const IOV_BATCH: usize = 64;

const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// One room: the last seq handed out and its members' queues.
#[derive(Default)]
struct Room {
    seq: u64,
    members: Vec<(u64, mpsc::UnboundedSender<Frame>)>,
}

type SharedRoom = Arc<Mutex<Room>>;

#[derive(Default)]
struct Rooms(Mutex<HashMap<String, SharedRoom>>);

impl Rooms {
    fn get_or_create(&self, name: &str) -> SharedRoom {
        let mut rooms = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        rooms.entry(name.to_owned()).or_default().clone()
    }
}

#[tokio::main]
async fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .iter()
        .position(|a| a == "--addr")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("reference server listening on ws://{addr}/ws");
    let rooms = Arc::new(Rooms::default());
    let ids = AtomicU64::new(1);
    loop {
        let (stream, _) = listener.accept().await?;
        let id = ids.fetch_add(1, Relaxed);
        let rooms = rooms.clone();
        tokio::spawn(async move {
            let mut conn = Conn {
                id,
                stream,
                rooms,
                joined: HashMap::new(),
                user_json: String::new(),
                pending: VecDeque::new(),
                offset: 0,
            };
            // Errors only end this connection; there is nobody to report them to.
            let _ = conn.serve().await;
            conn.leave_all();
        });
    }
}

/// One connection and everything it owns.
struct Conn {
    id: u64,
    stream: TcpStream,
    rooms: Arc<Rooms>,
    /// Rooms this connection is a member of.
    joined: HashMap<String, SharedRoom>,
    /// `{"id":…,"name":…}`, encoded once at the upgrade.
    user_json: String,
    /// Frames taken from the queue and not yet fully written.
    pending: VecDeque<Frame>,
    /// Bytes of `pending.front()` already written.
    offset: usize,
}

/// What a client frame asks the connection to do next.
enum Next {
    Continue,
    Close,
}

impl Conn {
    async fn serve(&mut self) -> io::Result<()> {
        let _ = self.stream.set_nodelay(true);
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let head_len = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                break end + 4;
            }
            if buf.len() >= MAX_HEAD || self.read_some(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
        buf.drain(..head_len);
        if head.starts_with("GET /healthz") {
            self.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await?;
            return Ok(());
        }
        let Some(key) = header(&head, "sec-websocket-key") else {
            self.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await?;
            return Ok(());
        };
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        );
        self.write_all(response.as_bytes()).await?;
        let name = query_param(&head, "name").unwrap_or_else(|| "guest".to_owned());
        self.user_json = format!(r#"{{"id":"u{}","name":{}}}"#, self.id, json_str(&name));
        let (tx, mut rx) = mpsc::unbounded_channel::<Frame>();
        self.pending.push_back(text_frame(&format!(
            r#"{{"type":"hello","user":{},"protocol":1,"idle_timeout":3600}}"#,
            self.user_json
        )));
        loop {
            while let Ok(frame) = rx.try_recv() {
                self.pending.push_back(frame);
            }
            self.flush()?;
            while let Some((opcode, payload, used)) = parse_client_frame(&buf)? {
                buf.drain(..used);
                if let Next::Close = self.on_frame(opcode, &payload, &tx) {
                    self.flush()?;
                    return Ok(());
                }
            }
            if !self.pending.is_empty() {
                // Something was queued by our own frames; write it before sleeping.
                self.flush()?;
            }
            // Buffers live only while data is in flight: an idle connection keeps none.
            if buf.is_empty() && buf.capacity() > 0 {
                buf = Vec::new();
            }
            if self.pending.is_empty() && self.pending.capacity() > 0 {
                self.pending = VecDeque::new();
            }
            tokio::select! {
                ready = self.stream.readable() => {
                    ready?;
                    buf.reserve(8192);
                    match self.stream.try_read_buf(&mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                ready = self.stream.writable(), if !self.pending.is_empty() => ready?,
                frame = rx.recv(), if self.pending.is_empty() => {
                    // We hold a sender ourselves, so the channel never ends here.
                    if let Some(frame) = frame {
                        self.pending.push_back(frame);
                    }
                }
            }
        }
    }

    /// Handles one client frame.
    fn on_frame(&mut self, opcode: u8, payload: &[u8], tx: &mpsc::UnboundedSender<Frame>) -> Next {
        match opcode {
            OP_TEXT => {}
            OP_CLOSE => {
                // Echo the close code, as RFC 6455 asks.
                let code = payload.get(..2).unwrap_or(&[0x03, 0xE8]);
                self.pending.push_back(frame(OP_CLOSE, code));
                return Next::Close;
            }
            OP_PING => {
                self.pending.push_back(frame(OP_PONG, payload));
                return Next::Continue;
            }
            _ => return Next::Continue,
        }
        let Ok(request) = serde_json::from_slice::<Value>(payload) else {
            return Next::Continue;
        };
        let room = request["room"].as_str().unwrap_or_default();
        match request["type"].as_str() {
            Some("join") => self.join(room, tx),
            Some("leave") => {
                if let Some(shared) = self.joined.remove(room) {
                    lock(&shared).members.retain(|(id, _)| *id != self.id);
                    self.pending.push_back(text_frame(&format!(
                        r#"{{"type":"left","room":{}}}"#,
                        json_str(room)
                    )));
                }
            }
            Some("send") => {
                let text = request["text"].as_str().unwrap_or_default();
                let client_id = request["client_id"].as_str().unwrap_or_default();
                self.send(room, text, client_id);
            }
            Some("ping") => self.pending.push_back(text_frame(r#"{"type":"pong"}"#)),
            _ => {}
        }
        Next::Continue
    }

    fn join(&mut self, room: &str, tx: &mpsc::UnboundedSender<Frame>) {
        let shared = match self.joined.get(room) {
            Some(shared) => shared.clone(),
            None => {
                let shared = self.rooms.get_or_create(room);
                self.joined.insert(room.to_owned(), shared.clone());
                shared
            }
        };
        let mut state = lock(&shared);
        if !state.members.iter().any(|(id, _)| *id == self.id) {
            state.members.push((self.id, tx.clone()));
        }
        // Queued under the room lock: every message after `last_seq` reaches this member
        // through its queue, after this frame.
        let _ = tx.send(text_frame(&format!(
            r#"{{"type":"joined","room":{},"members":[],"messages":[],"last_seq":{},"has_more":false,"truncated":false}}"#,
            json_str(room),
            state.seq
        )));
    }

    fn send(&mut self, room: &str, text: &str, client_id: &str) {
        let Some(shared) = self.joined.get(room) else {
            return;
        };
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut state = lock(shared);
        state.seq += 1;
        let seq = state.seq;
        let head = format!(
            r#"{{"type":"message","room":{},"seq":{seq},"id":"m{seq}","ts":{ts},"user":{},"text":{}"#,
            json_str(room),
            self.user_json,
            json_str(text)
        );
        let everyone = text_frame(&format!("{head}}}"));
        let mine = text_frame(&format!(r#"{head},"client_id":{}}}"#, json_str(client_id)));
        for (id, member) in &state.members {
            let frame = if *id == self.id { &mine } else { &everyone };
            let _ = member.send(frame.clone());
        }
    }

    /// Writes as much of `pending` as the socket takes now, many frames per `writev`.
    fn flush(&mut self) -> io::Result<()> {
        while !self.pending.is_empty() {
            let mut slices = [IoSlice::new(&[]); IOV_BATCH];
            let mut count = 0;
            for (i, frame) in self.pending.iter().take(IOV_BATCH).enumerate() {
                let bytes = if i == 0 {
                    &frame[self.offset..]
                } else {
                    &frame[..]
                };
                slices[i] = IoSlice::new(bytes);
                count += 1;
            }
            let mut written = match self.stream.try_write_vectored(&slices[..count]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            };
            while written > 0 {
                let Some(front) = self.pending.front() else {
                    break;
                };
                let left = front.len() - self.offset;
                if written >= left {
                    written -= left;
                    self.offset = 0;
                    self.pending.pop_front();
                } else {
                    self.offset += written;
                    written = 0;
                }
            }
        }
        Ok(())
    }

    async fn read_some(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        loop {
            self.stream.readable().await?;
            buf.reserve(4096);
            match self.stream.try_read_buf(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await
    }

    fn leave_all(&mut self) {
        for (_, shared) in self.joined.drain() {
            lock(&shared).members.retain(|(id, _)| *id != self.id);
        }
    }
}

fn lock(room: &SharedRoom) -> std::sync::MutexGuard<'_, Room> {
    room.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Parses one client frame from the front of `buf`: `(opcode, unmasked payload, bytes used)`,
/// `None` when more bytes are needed. Fragmented or oversized frames end the connection.
fn parse_client_frame(buf: &[u8]) -> io::Result<Option<(u8, Vec<u8>, usize)>> {
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_owned());
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[0] & 0x80 == 0 {
        return Err(invalid("fragmented frames are not supported"));
    }
    let opcode = buf[0] & 0x0F;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7F {
        126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(bytes), 10)
        }
        126 | 127 => return Ok(None),
        n => (u64::from(n), 2),
    };
    if !masked {
        return Err(invalid("client frames must be masked"));
    }
    if len > MAX_CLIENT_FRAME {
        return Err(invalid("frame too large"));
    }
    let len = len as usize;
    if buf.len() < at + 4 + len {
        return Ok(None);
    }
    let mask = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
    at += 4;
    let payload = buf[at..at + len]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    Ok(Some((opcode, payload, at + len)))
}

/// A complete unmasked server frame.
fn frame(opcode: u8, payload: &[u8]) -> Frame {
    let len = payload.len();
    let mut out = Vec::with_capacity(len + 10);
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out.into()
}

fn text_frame(json: &str) -> Frame {
    frame(OP_TEXT, json.as_bytes())
}

fn json_str(s: &str) -> String {
    Value::from(s).to_string()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A header's value from a request head, by case-insensitive name.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// A query parameter of the request line, percent-decoding nothing (bench names are plain).
fn query_param(head: &str, name: &str) -> Option<String> {
    let target = head.lines().next()?.split_whitespace().nth(1)?;
    let query = target.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_owned())
    })
}
