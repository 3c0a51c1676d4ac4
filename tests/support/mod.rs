//! Shared by the integration-test binaries: a real confab server on an ephemeral port with its
//! own temporary data folder, a small protocol client over a real WebSocket, and (in
//! [`services`]) what tests need from outside: PostgreSQL, Redis, a cuttable proxy, and the
//! policy for skipping when one is missing.
#![allow(dead_code)] // each test binary uses its own part of this

pub mod services;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something that should happen at once before it fails.
pub const PATIENCE: Duration = Duration::from_secs(5);

pub struct TestServer {
    addr: SocketAddr,
    /// Where `/metrics` is served, when the configuration asked for it.
    metrics_addr: Option<SocketAddr>,
    data_dir: PathBuf,
    rate_limits: confab::config::RateLimits,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    _temp: Option<Arc<TempDir>>,
}

impl TestServer {
    /// A fresh server with a fresh data folder.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A fresh server without rate limits (`--rate-limits off`), for tests of delivery that
    /// send far faster than a person would; the limits have tests of their own.
    pub async fn unlimited() -> Self {
        Self::start_with(|config| config.rate_limits = confab::config::RateLimits::Off).await
    }

    /// A fresh server whose configuration `adjust` may change (e.g. the idle timeout).
    pub async fn start_with(adjust: impl FnOnce(&mut confab::Config)) -> Self {
        let temp = TempDir::new().expect("temp dir");
        let mut config = confab::Config::ephemeral(temp.path());
        adjust(&mut config);
        let mut server = Self::launch(config).await;
        server._temp = Some(Arc::new(temp));
        server
    }

    /// A server on a given data folder and port, e.g. to restart one that was stopped.
    pub async fn start_on(data_dir: &Path, port: u16) -> Self {
        let mut config = confab::Config::ephemeral(data_dir);
        config.addr = SocketAddr::from(([127, 0, 0, 1], port));
        Self::launch(config).await
    }

    /// [`Self::start_on`] with a configuration `adjust` may change.
    pub async fn start_on_with(
        data_dir: &Path,
        port: u16,
        adjust: impl FnOnce(&mut confab::Config),
    ) -> Self {
        let mut config = confab::Config::ephemeral(data_dir);
        config.addr = SocketAddr::from(([127, 0, 0, 1], port));
        adjust(&mut config);
        Self::launch(config).await
    }

    async fn launch(config: confab::Config) -> Self {
        // Server logs show with the failing test's output (set RUST_LOG to see more).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let data_dir = config.data_dir.clone();
        let rate_limits = config.rate_limits;
        let server = confab::Server::build(config).await.expect("server starts");
        let addr = server.local_addr();
        let metrics_addr = server.metrics_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            metrics_addr,
            data_dir,
            rate_limits,
            stop: Some(stop),
            task: Some(task),
            _temp: None,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// `http://host:port/metrics` of the metrics listener (`--metrics-addr`).
    pub fn metrics_url(&self) -> String {
        let addr = self
            .metrics_addr
            .expect("a server started with metrics_addr");
        format!("http://{addr}/metrics")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops the server gracefully and waits until it has released its port and database.
    /// The data folder lives on as long as this value does.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
    }

    /// Stops this server and starts a new one on the same port and data folder, with the same
    /// rate-limit setting.
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut config = confab::Config::ephemeral(&self.data_dir);
        config.addr = SocketAddr::from(([127, 0, 0, 1], self.port()));
        config.rate_limits = self.rate_limits;
        let mut next = Self::launch(config).await;
        next._temp = self._temp.take();
        *self = next;
    }

    /// A client connected with `?name=`; its `hello` has already been read.
    pub async fn client(&self, name: &str) -> Client {
        Client::connect(&format!("{}?name={}", self.ws_url(), name)).await
    }

    /// Signs a new guest in over HTTP (`POST /api/session`); returns the `name=value` cookie.
    pub async fn sign_in(&self, name: &str) -> String {
        let response = reqwest::Client::new()
            .post(format!("{}/api/session", self.base_url()))
            .json(&json!({"name": name}))
            .send()
            .await
            .expect("POST /api/session");
        assert!(
            response.status().is_success(),
            "sign-in: {}",
            response.status()
        );
        let header = response.headers()["set-cookie"].to_str().expect("cookie");
        header.split(';').next().expect("name=value").to_owned()
    }

    /// Runs `confab admin ARGS` on this server's data folder while it runs; returns whether it
    /// succeeded and what it printed.
    pub async fn admin(&self, args: &[&str]) -> (bool, String) {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_confab"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("admin")
            .args(args)
            .output()
            .await
            .expect("run confab admin");
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    }

    /// A client of the signed-in user whose session cookie is `cookie`.
    pub async fn client_with_cookie(&self, cookie: &str) -> Client {
        let mut request = self.ws_url().into_client_request().expect("request");
        request
            .headers_mut()
            .insert("cookie", cookie.parse().expect("cookie header"));
        Client::connect_request(request).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub user: Value,
}

impl Client {
    /// Connects to a full `ws://` URL and reads the `hello`.
    pub async fn connect(url: &str) -> Self {
        Self::connect_request(url.into_client_request().expect("request")).await
    }

    pub async fn connect_request(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Self {
        match Self::try_connect_request(request).await {
            Ok(client) => client,
            Err(status) => panic!("websocket connects: the upgrade got {status}"),
        }
    }

    /// Like [`Client::connect_request`], but an upgrade the server refuses gives its status.
    pub async fn try_connect_request(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<Self, u16> {
        let socket = match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => socket,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                return Err(response.status().as_u16());
            }
            Err(other) => panic!("upgrade failed without an HTTP answer: {other}"),
        };
        let mut client = Self {
            socket,
            user: Value::Null,
        };
        let hello = client.recv().await;
        assert_eq!(hello["type"], "hello", "first frame must be hello: {hello}");
        client.user = hello["user"].clone();
        Ok(client)
    }

    pub fn id(&self) -> &str {
        self.user["id"].as_str().expect("user id")
    }

    /// The raw socket, e.g. to write and read from two tasks at once.
    pub fn into_socket(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.socket
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_raw(Message::text(frame.to_string())).await;
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.expect("send frame");
    }

    /// The next text frame as JSON, failing the test after [`PATIENCE`].
    pub async fn recv(&mut self) -> Value {
        match self.next_event(PATIENCE).await {
            Event::Frame(value) => value,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame of the given type, skipping (and returning) nothing else in between;
    /// fails if another type arrives first.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(frame["type"], kind, "expected `{kind}`, got {frame}");
        frame
    }

    /// Skips frames until one of the given type arrives.
    pub async fn recv_until(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Waits up to `wait` for the next thing the server does: a frame, a close, or nothing.
    pub async fn next_event(&mut self, wait: Duration) -> Event {
        loop {
            let next = tokio::time::timeout(wait, self.socket.next()).await;
            return match next {
                Err(_) => Event::Silence,
                Ok(None) => Event::Ended,
                Ok(Some(Err(error))) => Event::Error(error.to_string()),
                Ok(Some(Ok(Message::Text(text)))) => Event::Frame(
                    serde_json::from_str(text.as_str()).expect("server frames are JSON"),
                ),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    Event::Closed(frame.map(|f| u16::from(f.code)))
                }
                Ok(Some(Ok(_))) => continue, // pings and pongs
            };
        }
    }

    /// Waits for the server to close the connection and returns the close code.
    pub async fn expect_close(&mut self) -> u16 {
        loop {
            match self.next_event(PATIENCE).await {
                Event::Frame(_) => continue,
                Event::Closed(Some(code)) => return code,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    pub async fn join(&mut self, room: &str) -> Value {
        self.send(json!({"type": "join", "room": room})).await;
        self.recv_until("joined").await
    }

    pub async fn join_since(&mut self, room: &str, since: u64) -> Value {
        self.send(json!({"type": "join", "room": room, "since": since}))
            .await;
        self.recv_until("joined").await
    }

    /// Sends a message and waits for this connection's own copy of it.
    pub async fn say(&mut self, room: &str, text: &str) -> Value {
        let client_id = format!("c-{}", uuid_like());
        self.send(json!({"type": "send", "room": room, "text": text, "client_id": client_id}))
            .await;
        loop {
            let frame = self.recv_until("message").await;
            if frame["client_id"] == client_id.as_str() {
                return frame;
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

#[derive(Debug)]
pub enum Event {
    Frame(Value),
    Closed(Option<u16>),
    Ended,
    Error(String),
    Silence,
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The real `confab` binary on a fresh data folder with rate limits off (tests that load it
/// from one address): the folder, the process and the `host:port` it serves.
pub async fn spawn_unlimited_binary() -> (TempDir, tokio::process::Child, String) {
    let data = TempDir::new().expect("temp dir");
    let dir = data.path().to_str().expect("a UTF-8 temp path").to_owned();
    let (child, host) = spawn_binary(&["--data-dir", &dir, "--rate-limits", "off"]).await;
    (data, child, host)
}

/// Starts the real `confab` binary with `args` (plus a free port) and returns it with the
/// `host:port` it serves, read from the line it logs once it is ready.
pub async fn spawn_binary(args: &[&str]) -> (tokio::process::Child, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_confab"));
    command.args(["--addr", "127.0.0.1:0"]).args(args);
    spawn_ready(command).await
}

/// Like [`spawn_binary`], with the process's open-files limit lowered to `open_files` (through
/// the shell's `ulimit`, which the server then inherits).
pub async fn spawn_binary_with_open_files(
    open_files: u32,
    args: &[&str],
) -> (tokio::process::Child, String) {
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {open_files} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_confab"))
        .args(["--addr", "127.0.0.1:0"])
        .args(args);
    spawn_ready(command).await
}

async fn spawn_ready(mut command: tokio::process::Command) -> (tokio::process::Child, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = command
        .env("CONFAB_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("confab binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let host = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read log") {
            if let Some(at) = line.find("serving on http://") {
                return line[at + "serving on http://".len()..]
                    .trim_end_matches('/')
                    .to_owned();
            }
        }
        panic!("confab exited before it was ready");
    })
    .await
    .expect("confab ready in time");
    // Keep draining its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, host)
}

/// The resident memory of process `pid` in KiB, from `/proc`.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// A room's `online` count in a `rooms` frame or an `/api/rooms` answer, if it is listed.
pub fn online(rooms: &Value, room: &str) -> Option<u64> {
    rooms["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["name"] == room)
        .and_then(|r| r["online"].as_u64())
}

/// `seq` of every message in a `joined` or `history` frame.
pub fn seqs(frame: &Value) -> Vec<u64> {
    frame["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect()
}

/// Names of the members in a `joined` frame, sorted.
pub fn member_names(frame: &Value) -> Vec<String> {
    let mut names: Vec<String> = frame["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["name"].as_str().expect("name").to_owned())
        .collect();
    names.sort();
    names
}

/// The HTTP status a WebSocket upgrade request got: 101 when it was accepted.
pub async fn upgrade_status(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> u16 {
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut socket, response)) => {
            let _ = socket.close(None).await;
            response.status().as_u16()
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("upgrade failed without an HTTP answer: {other}"),
    }
}

/// An upgrade request for `url` with extra headers.
pub fn ws_request(
    url: &str,
    headers: &[(&str, &str)],
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = url.into_client_request().expect("request");
    for (name, value) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                .expect("header name"),
            value.parse().expect("header value"),
        );
    }
    request
}

/// Reads from `stream` until the server closes it; returns what arrived and when the close
/// came, or fails the test if the server still holds the connection after `limit`.
pub async fn read_until_closed(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    limit: Duration,
) -> (Vec<u8>, Duration) {
    use tokio::io::AsyncReadExt;
    let started = tokio::time::Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = tokio::time::timeout_at(started + limit, stream.read(&mut buffer))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the server still holds the connection after {limit:?}; it sent {:?}",
                    String::from_utf8_lossy(&received)
                )
            });
        match read {
            Ok(0) | Err(_) => return (received, started.elapsed()),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1, made at test time, as PEM files.
pub struct SelfSigned {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: rustls_pki_types::CertificateDer<'static>,
}

impl SelfSigned {
    pub fn create(dir: &Path) -> Self {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("self-signed certificate");
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, made.cert.pem()).expect("write cert");
        std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key");
        Self {
            cert,
            key,
            der: made.cert.der().clone(),
        }
    }

    /// A TLS client that trusts this certificate only.
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("trust the certificate");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// A TLS connection to `addr`, checked against this certificate for `localhost`.
    pub async fn connect(&self, addr: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.expect("tcp connects");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("server name");
        self.connector()
            .connect(name, tcp)
            .await
            .expect("TLS handshake")
    }
}

/// One HTTP/1.1 request on `stream` with `Connection: close`; returns the response's head and
/// body as text.
pub async fn http_exchange(
    stream: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    request: &str,
) -> String {
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let (response, _) = read_until_closed(stream, PATIENCE).await;
    String::from_utf8(response).expect("a text response")
}

/// Signs in over HTTP; returns the `name=value` of the session cookie and the answer.
pub async fn sign_in(base_url: &str, name: &str) -> (String, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base_url}/api/session"))
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    (cookie, response.json().await.unwrap())
}

/// The status `GET /api/session` answers with this cookie.
pub async fn session_status(base_url: &str, cookie: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .get(format!("{base_url}/api/session"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
}

/// `DELETE /api/session` with this cookie; expects 204.
pub async fn sign_out(base_url: &str, cookie: &str) {
    let response = reqwest::Client::new()
        .delete(format!("{base_url}/api/session"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
}

/// Registers an account over HTTP (`POST /api/register`); returns the `name=value` of its
/// session cookie and its `user`.
pub async fn register(base_url: &str, username: &str) -> (String, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base_url}/api/register"))
        .json(&json!({"username": username, "password": "correct horse battery"}))
        .send()
        .await
        .expect("POST /api/register");
    assert_eq!(
        response.status(),
        reqwest::StatusCode::CREATED,
        "register {username}"
    );
    let cookie = response.headers()["set-cookie"].to_str().expect("cookie");
    let cookie = cookie.split(';').next().expect("name=value").to_owned();
    let body: Value = response.json().await.expect("json");
    (cookie, body["user"].clone())
}

/// One JSON request with an optional cookie and body: its status and JSON body (`null` if
/// it has none).
pub async fn http(
    base_url: &str,
    method: reqwest::Method,
    path: &str,
    cookie: Option<&str>,
    body: Option<Value>,
) -> (reqwest::StatusCode, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{base_url}{path}"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}
