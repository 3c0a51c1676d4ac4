//! The server under test: attached to by `--url` (and `--server-pid`), or spawned by the bench
//! on a free port with a fresh data dir, waited for, and stopped at the end of the run.

use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::cli::TargetArgs;

/// How long a spawned server may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a spawned server may take to exit after SIGTERM before it is killed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle timeout given to a spawned server: longer than any run, so idle clients are never cut.
const SPAWNED_IDLE_TIMEOUT_SECS: u32 = 3600;

/// A server the run talks to.
pub struct Server {
    /// The `/ws` URL clients connect to (without `name`).
    pub url: String,
    pub addr: SocketAddr,
    /// Known when spawned or given with `--server-pid`; enables RSS and CPU figures.
    pub pid: Option<u32>,
    spawned: Option<Spawned>,
}

struct Spawned {
    child: Child,
    /// Removed when dropped, after the server has stopped.
    data_dir: TempDir,
    log: std::path::PathBuf,
}

impl Server {
    /// Attaches to `--url` or spawns `--spawn`, and returns once the server accepts connections.
    pub async fn start(args: &TargetArgs) -> anyhow::Result<Server> {
        match (&args.spawn, &args.url) {
            (Some(binary), _) => spawn(binary, args).await,
            (None, Some(url)) => Server::attach(url, args.server_pid).await,
            (None, None) => {
                bail!("say which server to load: --url ws://HOST:PORT/ws or --spawn PATH")
            }
        }
    }

    /// A running server at `url` (`pid`, if known, enables RSS and CPU figures).
    pub async fn attach(url: &str, pid: Option<u32>) -> anyhow::Result<Server> {
        let addr = resolve_ws_url(url).await?;
        Ok(Server {
            url: url.to_owned(),
            addr,
            pid,
            spawned: None,
        })
    }

    /// Stops a spawned server (SIGTERM, then SIGKILL after a grace period); nothing for an
    /// attached one.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut spawned) = self.spawned.take() else {
            return Ok(());
        };
        if let Some(pid) = spawned.child.id() {
            // SAFETY: kill with a PID we spawned and still own (not yet reaped).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, spawned.child.wait())
            .await
            .is_err()
        {
            eprintln!("confab-bench: server ignored SIGTERM for {SHUTDOWN_TIMEOUT:?}; killing it");
            spawned.child.kill().await.context("killing the server")?;
        }
        drop(spawned.data_dir);
        Ok(())
    }

    /// The spawned server's log, for error messages.
    pub fn log_path(&self) -> Option<&Path> {
        self.spawned.as_ref().map(|s| s.log.as_path())
    }
}

async fn spawn(binary: &Path, args: &TargetArgs) -> anyhow::Result<Server> {
    let data_dir = tempfile::Builder::new()
        .prefix("confab-bench-")
        .tempdir()
        .context("creating the server's data dir")?;
    let addr = free_port().context("finding a free port")?;
    let log = args
        .server_log
        .clone()
        .unwrap_or_else(|| data_dir.path().join("server.log"));
    let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let child = Command::new(binary)
        .arg("--addr")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(data_dir.path())
        .arg("--idle-timeout")
        .arg(SPAWNED_IDLE_TIMEOUT_SECS.to_string())
        // A load generator is one IP sending far faster than people: measure the server, not
        // its rate limits.
        .arg("--rate-limits")
        .arg("off")
        .args(&args.server_arg)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        // If the bench dies, the server must not outlive it holding thousands of sockets.
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let pid = child.id();
    let mut server = Server {
        url: format!("ws://{addr}/ws"),
        addr,
        pid,
        spawned: Some(Spawned {
            child,
            data_dir,
            log,
        }),
    };
    if let Err(err) = wait_until_ready(&mut server).await {
        let tail = server.log_path().map(log_tail).unwrap_or_default();
        let _ = server.stop().await;
        return Err(err.context(format!("server log (tail):\n{tail}")));
    }
    Ok(server)
}

/// A port the kernel just handed out and released. Racy in principle (another process could
/// take it first), harmless in practice on a bench machine, and it lets us pass `--addr`.
fn free_port() -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.local_addr()
}

/// Polls `GET /healthz` until the server answers with an HTTP response, or gives up when the
/// process exits or the startup timeout passes.
async fn wait_until_ready(server: &mut Server) -> anyhow::Result<()> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(spawned) = server.spawned.as_mut()
            && let Some(status) = spawned.child.try_wait()?
        {
            bail!("server exited during startup with {status}");
        }
        match healthz(server.addr).await {
            Ok(200) => return Ok(()),
            Ok(status) => {
                // It serves HTTP, so it accepts connections; say so and go on.
                eprintln!("confab-bench: GET /healthz answered {status}, continuing anyway");
                return Ok(());
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => {
                return Err(err.context(format!("server not ready after {STARTUP_TIMEOUT:?}")));
            }
        }
    }
}

/// One `GET /healthz` over a fresh connection; returns the HTTP status code.
async fn healthz(addr: SocketAddr) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut head)).await??;
    let line = std::str::from_utf8(&head[..n])?;
    // "HTTP/1.1 200 OK"
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP response: {line:?}"))?;
    Ok(status)
}

/// `ws://host:port/path` → the socket address clients connect to.
async fn resolve_ws_url(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| anyhow!("only ws:// URLs are supported, got {url}"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let with_port = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    tokio::net::lookup_host(&with_port)
        .await
        .with_context(|| format!("resolving {with_port}"))?
        .next()
        .ok_or_else(|| anyhow!("{with_port} resolves to nothing"))
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ws_url_resolves_to_its_host_and_port() {
        let addr = resolve_ws_url("ws://127.0.0.1:8123/ws?x=1").await.unwrap();
        assert_eq!(addr, "127.0.0.1:8123".parse().unwrap());
    }

    #[tokio::test]
    async fn only_ws_urls_are_accepted() {
        assert!(resolve_ws_url("http://127.0.0.1:8000/ws").await.is_err());
    }
}
