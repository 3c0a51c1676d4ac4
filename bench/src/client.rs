//! A small protocol v1 client over one real WebSocket: connect from a chosen source address,
//! take `hello`, `join` a room, queue and flush `send` frames, read what the server pushes.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::protocol::{ClientFrame, ServerFrame};

/// Everything needed to open client connections to one server.
#[derive(Debug, Clone)]
pub struct Connector {
    /// Each node's address (resolved once, so 10k connects do not resolve 10k times) and
    /// `/ws` URL without the `name` parameter. See [`Connector::node_of`].
    targets: Vec<(SocketAddr, String)>,
    ws_config: WebSocketConfig,
    /// Number of loopback source addresses to spread sockets over (see `source_for`).
    sources: u8,
    timeout: Duration,
}

/// Why a connection could not be opened; the kind lets scenarios tell a limit from a fault.
#[derive(Debug)]
pub struct ConnectError {
    pub kind: FailKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// This process hit its open-files limit (EMFILE/ENFILE) creating the socket.
    OpenFiles,
    /// No answer in time: typically a server that can no longer accept (its own limit).
    Timeout,
    /// Anything else: refused, reset, a rejected upgrade, an `error` frame.
    Other,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.detail)
    }
}

/// What `joined` told the client.
#[derive(Debug, Clone, Copy)]
pub struct Joined {
    /// Every later message of the room has a higher `seq`.
    pub last_seq: u64,
}

/// One thing read from the socket.
#[derive(Debug)]
pub enum Incoming {
    /// A text frame (every protocol frame is one).
    Text(Utf8Bytes),
    /// The server closed the connection with this close code (`None`: no code).
    Closed(Option<u16>),
    /// The connection ended without a close frame, or failed.
    Broken(String),
}

impl Incoming {
    /// For error messages: what ended the wait.
    fn describe(&self) -> String {
        match self {
            Incoming::Text(text) => format!("unexpected frame {text}"),
            Incoming::Closed(code) => format!("closed by the server with code {code:?}"),
            Incoming::Broken(why) => format!("connection broken: {why}"),
        }
    }
}

impl Connector {
    pub fn new(
        targets: Vec<(SocketAddr, String)>,
        read_buffer: usize,
        sources: u8,
        timeout: Duration,
    ) -> Self {
        // tungstenite allocates its read buffer up front (128 KiB by default): with 10k+
        // clients in one process that alone would be over a gigabyte, so keep it small.
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(read_buffer)
            .write_buffer_size(read_buffer);
        Connector {
            targets,
            ws_config,
            sources,
            timeout,
        }
    }

    /// How many nodes clients are spread over.
    pub fn nodes(&self) -> usize {
        self.targets.len().max(1)
    }

    /// The node client `index` connects to. Hashed rather than `index % nodes`, because the
    /// load numbers a room's members with a stride of the room count: plain modulo would put a
    /// whole room on one node whenever the counts share a factor.
    pub fn node_of(&self, index: usize) -> usize {
        let mixed = (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        (mixed % self.nodes() as u64) as usize
    }

    /// Connects as guest `name`, waits for `hello`, joins `room` and waits for `joined`, all
    /// within the connect timeout. `rcvbuf` shrinks the socket's receive buffer (slow clients).
    pub async fn connect_and_join(
        &self,
        index: usize,
        name: &str,
        room: &str,
        rcvbuf: Option<u32>,
    ) -> Result<(Client, Joined), ConnectError> {
        let attempt = async {
            let mut client = self.connect(index, name, rcvbuf).await?;
            let joined = client.join(room).await.map_err(other)?;
            Ok((client, joined))
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError {
                kind: FailKind::Timeout,
                detail: format!("no joined within {:?}", self.timeout),
            }),
        }
    }

    async fn connect(
        &self,
        index: usize,
        name: &str,
        rcvbuf: Option<u32>,
    ) -> Result<Client, ConnectError> {
        let (server, base_url) = &self.targets[self.node_of(index)];
        let socket = TcpSocket::new_v4().map_err(io_error)?;
        if let Some(source) = self.source_for(index, *server) {
            socket
                .bind(SocketAddr::new(IpAddr::V4(source), 0))
                .map_err(io_error)?;
        }
        if let Some(size) = rcvbuf {
            socket.set_recv_buffer_size(size).map_err(io_error)?;
        }
        let stream = socket.connect(*server).await.map_err(io_error)?;
        // Frames are small and latency is the point: never wait for Nagle.
        stream.set_nodelay(true).map_err(io_error)?;
        let sep = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{sep}name={name}");
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(url, stream, Some(self.ws_config))
                .await
                .map_err(|e| other(anyhow!("upgrade: {e}")))?;
        let mut client = Client { ws };
        client.expect_hello().await.map_err(other)?;
        Ok(client)
    }

    /// The source address for connection `index`: 127.0.0.1 ..= 127.0.0.N in turn, because one
    /// source address runs out of ephemeral ports near 28k connections to one server port.
    /// `None` (let the kernel pick) when the server is not on IPv4 loopback.
    fn source_for(&self, index: usize, server: SocketAddr) -> Option<Ipv4Addr> {
        match server.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => Some(Ipv4Addr::new(
                127,
                0,
                0,
                1 + (index % self.sources as usize) as u8,
            )),
            _ => None,
        }
    }
}

fn io_error(err: io::Error) -> ConnectError {
    let kind = match err.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE) => FailKind::OpenFiles,
        _ => FailKind::Other,
    };
    ConnectError {
        kind,
        detail: err.to_string(),
    }
}

fn other(err: anyhow::Error) -> ConnectError {
    ConnectError {
        kind: FailKind::Other,
        detail: format!("{err:#}"),
    }
}

/// One open, upgraded connection.
pub struct Client {
    ws: WebSocketStream<TcpStream>,
}

impl Client {
    async fn expect_hello(&mut self) -> anyhow::Result<()> {
        match self.recv().await {
            Incoming::Text(text) => {
                let frame = ServerFrame::parse(&text).context("hello")?;
                if frame.kind != "hello" {
                    bail!("first frame was {:?}, not hello", frame.kind);
                }
                if frame.protocol != Some(1) {
                    bail!("server speaks protocol {:?}, not 1", frame.protocol);
                }
                Ok(())
            }
            other => bail!("waiting for hello: {}", other.describe()),
        }
    }

    /// Joins `room` and waits for its `joined`. Frames of other rooms arriving meanwhile are
    /// skipped (the bench's clients are in one room each).
    pub async fn join(&mut self, room: &str) -> anyhow::Result<Joined> {
        self.queue(&ClientFrame::Join { room }).await?;
        self.flush().await?;
        loop {
            let text = match self.recv().await {
                Incoming::Text(text) => text,
                other => bail!("waiting for joined: {}", other.describe()),
            };
            let frame = ServerFrame::parse(&text).context("joined")?;
            match frame.kind.as_ref() {
                "joined" if frame.room.as_deref() == Some(room) => {
                    return Ok(Joined {
                        last_seq: frame.last_seq.context("joined without last_seq")?,
                    });
                }
                "error" => bail!("join {room}: error {:?}", frame.code),
                _ => {}
            }
        }
    }

    /// Queues a frame without writing it yet: callers sending a burst queue it all, then
    /// `flush` once, so the burst costs one write instead of one per frame.
    pub async fn queue(&mut self, frame: &ClientFrame<'_>) -> anyhow::Result<()> {
        self.ws.feed(Message::text(frame.to_json())).await?;
        Ok(())
    }

    pub async fn flush(&mut self) -> anyhow::Result<()> {
        self.ws.flush().await?;
        Ok(())
    }

    /// The next frame. Cancel-safe, so it can sit in a `select!` beside a send timer. Pings are
    /// answered by tungstenite itself while reading and never show up here.
    pub async fn recv(&mut self) -> Incoming {
        loop {
            if let Some(incoming) = incoming(self.ws.next().await) {
                return incoming;
            }
        }
    }

    /// Whether the kernel has seen the server end the TCP connection (a FIN or a reset),
    /// without reading anything: how a member that does not read learns when it was closed.
    /// `false` while established, and when the state cannot be read.
    pub fn peer_closed(&self) -> bool {
        use std::os::fd::AsRawFd;
        let fd = self.ws.get_ref().as_raw_fd();
        // SAFETY: an all-zero tcp_info is a valid value (plain integers).
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: fd is our open socket; info and len describe a buffer of len bytes.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&raw mut info).cast(),
                &mut len,
            )
        };
        rc == 0 && info.tcpi_state != TCP_ESTABLISHED
    }

    /// Bytes the kernel holds for this socket that nobody has read yet (`FIONREAD`), or
    /// `None` if it cannot say: a member that does not read sees from it when data last came.
    pub fn unread_bytes(&self) -> Option<u64> {
        use std::os::fd::AsRawFd;
        let fd = self.ws.get_ref().as_raw_fd();
        let mut unread: libc::c_int = 0;
        // SAFETY: fd is our open socket; FIONREAD writes one c_int.
        let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut unread) };
        (rc == 0).then_some(unread.max(0) as u64)
    }

    /// Splits the connection so one task can write a flood while another part of it keeps
    /// reading (a member that only writes would itself become a stalled reader).
    pub fn split(self) -> (ClientWriter, ClientReader) {
        let (sink, stream) = self.ws.split();
        (ClientWriter { sink }, ClientReader { stream })
    }

    /// Closes politely (close frame 1000), bounded in time; errors are irrelevant at this point.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }
}

/// `TCP_ESTABLISHED` of the kernel's `tcp_states.h` (libc does not export the enum).
const TCP_ESTABLISHED: u8 = 1;

/// What one read yields; `None` for frames the bench never looks at (pings, pongs, binary).
fn incoming(
    read: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> Option<Incoming> {
    match read {
        Some(Ok(Message::Text(text))) => Some(Incoming::Text(text)),
        Some(Ok(Message::Close(frame))) => Some(Incoming::Closed(frame.map(|f| u16::from(f.code)))),
        Some(Ok(_)) => None,
        Some(Err(err)) => Some(Incoming::Broken(err.to_string())),
        None => Some(Incoming::Broken("end of stream".to_owned())),
    }
}

/// The writing half of a split [`Client`].
pub struct ClientWriter {
    sink: SplitSink<WebSocketStream<TcpStream>, Message>,
}

impl ClientWriter {
    /// Queues a frame; written when the buffer fills or on `flush`.
    pub async fn queue(&mut self, frame: &ClientFrame<'_>) -> anyhow::Result<()> {
        self.sink.feed(Message::text(frame.to_json())).await?;
        Ok(())
    }

    pub async fn flush(&mut self) -> anyhow::Result<()> {
        self.sink.flush().await?;
        Ok(())
    }
}

/// The reading half of a split [`Client`]. Pings are still answered: tungstenite queues the
/// pong and the writing half sends it with its next write or flush.
pub struct ClientReader {
    stream: SplitStream<WebSocketStream<TcpStream>>,
}

impl ClientReader {
    /// The next frame, as [`Client::recv`].
    pub async fn recv(&mut self) -> Incoming {
        loop {
            if let Some(incoming) = incoming(self.stream.next().await) {
                return incoming;
            }
        }
    }
}
