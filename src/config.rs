//! Command-line and environment configuration. Every option has an env fallback, so the same
//! binary is configured the same way from a shell, a unit file or a container.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::limits::{self, Rate};
use crate::telemetry::logs::LogFormat;

/// Maintenance commands. They work on the same storage as the server (`--data-dir` or
/// `--database-url`), also while it runs.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Manage accounts.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Write a consistent copy of the SQLite database to PATH (a new file), also while the
    /// server runs. Not for --database-url: back PostgreSQL up with pg_dump.
    Backup { path: PathBuf },
    /// Replace the data folder's database with the backup at PATH. Refused while a server
    /// uses the folder: stop it first.
    Restore { path: PathBuf },
    /// Write the messages of room NAME as JSON lines (one per message, oldest first, in their
    /// current state, the shape of `history` messages) to stdout or --out PATH, also while the
    /// server runs.
    Export {
        /// The room to export.
        #[arg(long)]
        room: String,
        /// Write to this file (created, or replaced) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminAction {
    /// Make USERNAME a server administrator (a moderator of every room).
    Grant { username: String },
    /// Take server administration away from USERNAME.
    Revoke { username: String },
    /// Give USERNAME a new random password (printed once) and end all their sessions.
    ResetPassword { username: String },
}

/// Smallest secret accepted from `CONFAB_SECRET`: 64 characters of key material.
pub const MIN_SECRET_CHARS: usize = 64;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "confab",
    version,
    about = "A real-time chat server: rooms, live presence, nothing lost."
)]
pub struct Config {
    /// Run a maintenance command instead of the server.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on (use port 0 for any free port).
    #[arg(long, env = "CONFAB_ADDR", default_value = "127.0.0.1:8000")]
    pub addr: SocketAddr,

    /// Folder for the SQLite database and the generated session secret.
    #[arg(long, env = "CONFAB_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Seconds without any frame or pong after which a connection is dropped.
    #[arg(long, env = "CONFAB_IDLE_TIMEOUT", default_value_t = 45,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout: u64,

    /// Session-signing secret (at least 64 characters). Default: generated on first run and
    /// kept in the data folder as `secret.key`, or, with --database-url, in the database so
    /// that every node shares it.
    #[arg(long, env = "CONFAB_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub secret: Option<String>,

    /// PostgreSQL URL (`postgres://...`): keep messages there instead of the embedded SQLite,
    /// so that several nodes can share them.
    #[arg(long, env = "CONFAB_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Redis URL (`redis://...`): fan messages, presence and lobby counts out across nodes.
    /// Requires --database-url: nodes must share storage.
    #[arg(long, env = "CONFAB_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel, so several clusters can share one Redis.
    #[arg(long, env = "CONFAB_REDIS_PREFIX", default_value = "confab",
          value_parser = parse_prefix)]
    pub redis_prefix: String,

    /// Log filter, in `tracing` env-filter syntax (e.g. `info`, `confab=debug`).
    #[arg(long, env = "CONFAB_LOG", default_value = "info")]
    pub log: String,

    /// `text` (the default) or `json`: one JSON object per log line, for a log collector.
    #[arg(long, env = "CONFAB_LOG_FORMAT", default_value = "text", value_enum)]
    pub log_format: LogFormat,

    /// Serve Prometheus metrics at `GET /metrics` on this address (e.g. `127.0.0.1:9100`),
    /// a listener of its own, never the public one. Off by default.
    #[arg(long, env = "CONFAB_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Seconds a connection may make no write progress while data waits for it before it is
    /// closed with 4001. A reader that keeps reading is never cut, however far behind it is.
    #[arg(long, env = "CONFAB_STALL_TIMEOUT", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub stall_timeout: u64,

    /// `on` (the default) or `off`: `off` lifts every rate limit and every per-IP connection
    /// cap at once, for benchmarks and load tests. Size limits and --max-connections stay.
    #[arg(long, env = "CONFAB_RATE_LIMITS", default_value = "on", value_enum)]
    pub rate_limits: RateLimits,

    /// Seconds a graceful stop (SIGTERM) gives connections to have their in-flight sends
    /// answered and to receive their close frame (1012).
    #[arg(long, env = "CONFAB_SHUTDOWN_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub shutdown_timeout: u64,

    /// Origins allowed besides the request's own, comma-separated (`https://chat.example.com`),
    /// or `*` for any. A browser request from any other origin to `/ws` or a changing `/api`
    /// call gets 403.
    #[arg(long, env = "CONFAB_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub allowed_origins: Vec<AllowedOrigin>,

    /// WebSocket connections the whole server holds at once; past it an upgrade gets 503.
    #[arg(long, env = "CONFAB_MAX_CONNECTIONS", default_value_t = 50_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// WebSocket connections one client IP (an IPv6 /64) holds at once; past it an upgrade
    /// gets 429. Lifted by `--rate-limits off`.
    #[arg(long, env = "CONFAB_MAX_CONNECTIONS_PER_IP", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_ip: u32,

    /// Reverse proxies (CIDR list, e.g. `127.0.0.1/32,10.0.0.0/8`) whose `X-Forwarded-For`,
    /// `X-Forwarded-Proto` and `X-Forwarded-Host` are believed. Nobody's by default.
    #[arg(long, env = "CONFAB_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_cidr)]
    pub trusted_proxies: Vec<Cidr>,

    /// Seconds a connection has to deliver a request's headers (counted from connecting, or
    /// from the previous response on a kept-alive connection), the TLS handshake included.
    #[arg(long, env = "CONFAB_HEADER_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub header_timeout: u64,

    /// Seconds a request has to deliver its whole body once its headers are in.
    #[arg(long, env = "CONFAB_BODY_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub body_timeout: u64,

    /// File holding the session-signing secret (at least 64 characters; surrounding
    /// whitespace ignored), so that it shows in no process list. Excludes --secret.
    #[arg(long, env = "CONFAB_SECRET_FILE", conflicts_with = "secret")]
    pub secret_file: Option<PathBuf>,

    /// PEM certificate chain: with --tls-key, serve HTTPS and WSS on --addr.
    #[arg(long, env = "CONFAB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for --tls-cert.
    #[arg(long, env = "CONFAB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Largest HTTP request body read, in bytes; larger ones get 413.
    #[arg(long, env = "CONFAB_MAX_BODY_BYTES", default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_body_bytes: u32,

    /// `send` bucket per user (anonymous: per IP): BURST+COUNT/UNIT, UNIT one of s, min, h.
    #[arg(long, env = "CONFAB_LIMIT_SEND", default_value = limits::defaults::SEND)]
    pub limit_send: Rate,

    /// `join` bucket per user (anonymous: per IP).
    #[arg(long, env = "CONFAB_LIMIT_JOIN", default_value = limits::defaults::JOIN)]
    pub limit_join: Rate,

    /// `history` bucket per user (anonymous: per IP).
    #[arg(long, env = "CONFAB_LIMIT_HISTORY", default_value = limits::defaults::HISTORY)]
    pub limit_history: Rate,

    /// `members` bucket per user (anonymous: per IP).
    #[arg(long, env = "CONFAB_LIMIT_MEMBERS", default_value = limits::defaults::MEMBERS)]
    pub limit_members: Rate,

    /// `rooms` (lobby) bucket per user (anonymous: per IP).
    #[arg(long, env = "CONFAB_LIMIT_ROOMS", default_value = limits::defaults::ROOMS)]
    pub limit_rooms: Rate,

    /// Rooms a user (anonymous: an IP) may bring into being by joining a new room.
    #[arg(long, env = "CONFAB_LIMIT_ROOM_CREATE", default_value = limits::defaults::ROOM_CREATE)]
    pub limit_room_create: Rate,

    /// Rooms brought into being from one IP, whoever the users.
    #[arg(long, env = "CONFAB_LIMIT_ROOM_CREATE_IP", default_value = limits::defaults::ROOM_CREATE_IP)]
    pub limit_room_create_ip: Rate,

    /// New guest sessions (`POST /api/session` without a session) per IP.
    #[arg(long, env = "CONFAB_LIMIT_SESSION_IP", default_value = limits::defaults::SESSION_IP)]
    pub limit_session_ip: Rate,

    /// Sign-in and registration attempts per IP (`POST /api/login`, `POST /api/register`).
    #[arg(long, env = "CONFAB_LIMIT_SIGN_IN_IP", default_value = limits::defaults::SIGN_IN_IP)]
    pub limit_sign_in_ip: Rate,

    /// Sign-in and registration attempts per username, from anywhere.
    #[arg(long, env = "CONFAB_LIMIT_SIGN_IN_USER", default_value = limits::defaults::SIGN_IN_USER)]
    pub limit_sign_in_user: Rate,

    /// Refused requests a connection may make before it is closed with 1008.
    #[arg(long, env = "CONFAB_LIMIT_REFUSALS", default_value = limits::defaults::REFUSALS)]
    pub limit_refusals: Rate,

    /// Messages waiting to be stored before further sends are refused with `overloaded`
    /// (and a `retry_after_ms`) instead of waiting.
    #[arg(long, env = "CONFAB_WRITER_QUEUE", default_value_t = 8192,
          value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub writer_queue: u32,

    /// Rooms one user may be in at once on this node, across all their connections; a join
    /// past it gets `too_many_rooms`.
    #[arg(long, env = "CONFAB_MAX_ROOMS_PER_USER", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rooms_per_user: u32,

    /// Delete messages (and the events about them) older than this many days, in the
    /// background, in small batches; off when not given. Seqs are never reused, and a resume
    /// from before the horizon says `truncated: true` (docs/operations.md, "Retention").
    #[arg(long, env = "CONFAB_RETENTION_DAYS",
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_days: Option<u32>,
}

/// An origin `--allowed-origins` admits: any, or one `scheme://host[:port]`, kept lowercase and
/// without the scheme's default port so it compares equal to what a browser sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigin {
    Any,
    Exactly(String),
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `::1/128`; a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Whether rate limits and per-IP caps apply (see `--rate-limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RateLimits {
    On,
    Off,
}

impl Config {
    /// A configuration for an embedded server: any free port on loopback, the given data folder.
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            command: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            idle_timeout: 45,
            secret: None,
            database_url: None,
            redis_url: None,
            redis_prefix: "confab".into(),
            log: "info".into(),
            log_format: LogFormat::Text,
            metrics_addr: None,
            stall_timeout: 15,
            rate_limits: RateLimits::On,
            shutdown_timeout: 10,
            allowed_origins: Vec::new(),
            max_connections: 50_000,
            max_connections_per_ip: 64,
            trusted_proxies: Vec::new(),
            header_timeout: 10,
            body_timeout: 30,
            secret_file: None,
            tls_cert: None,
            tls_key: None,
            max_body_bytes: 64 * 1024,
            limit_send: default_rate(limits::defaults::SEND),
            limit_join: default_rate(limits::defaults::JOIN),
            limit_history: default_rate(limits::defaults::HISTORY),
            limit_members: default_rate(limits::defaults::MEMBERS),
            limit_rooms: default_rate(limits::defaults::ROOMS),
            limit_room_create: default_rate(limits::defaults::ROOM_CREATE),
            limit_room_create_ip: default_rate(limits::defaults::ROOM_CREATE_IP),
            limit_session_ip: default_rate(limits::defaults::SESSION_IP),
            limit_sign_in_ip: default_rate(limits::defaults::SIGN_IN_IP),
            limit_sign_in_user: default_rate(limits::defaults::SIGN_IN_USER),
            limit_refusals: default_rate(limits::defaults::REFUSALS),
            writer_queue: 8192,
            max_rooms_per_user: 100,
            retention_days: None,
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout)
    }

    pub fn stall_timeout(&self) -> Duration {
        Duration::from_secs(self.stall_timeout)
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout)
    }

    /// The configured secret: `--secret`, or the content of `--secret-file`, or none.
    pub fn load_secret(&self) -> Result<Option<String>, String> {
        if let Some(secret) = &self.secret {
            return Ok(Some(secret.clone()));
        }
        let Some(path) = &self.secret_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        parse_secret(text.trim())
            .map(Some)
            .map_err(|error| format!("{}: {error}", path.display()))
    }
}

/// The built-in defaults are constants of `limits::defaults`, tested to parse.
fn default_rate(text: &str) -> Rate {
    text.parse().expect("built-in rate defaults parse")
}

fn parse_prefix(raw: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err("the prefix is 1-64 characters of A-Z, a-z, 0-9, _, - and .".into())
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        parse_cidr(raw)
    }
}

impl std::str::FromStr for AllowedOrigin {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        parse_origin(raw)
    }
}

fn parse_origin(raw: &str) -> Result<AllowedOrigin, String> {
    let raw = raw.trim();
    if raw == "*" {
        return Ok(AllowedOrigin::Any);
    }
    normalize_origin(raw)
        .map(AllowedOrigin::Exactly)
        .ok_or_else(|| {
            format!(
                "{raw:?} is not an origin: give scheme://host[:port], e.g. https://chat.example.com"
            )
        })
}

/// `scheme://host[:port]` in the form a browser sends it in `Origin`: lowercase, without the
/// scheme's default port, without path. `None` for anything else (including `null`).
pub fn normalize_origin(raw: &str) -> Option<String> {
    let (scheme, rest) = raw.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    let authority = rest.strip_suffix('/').unwrap_or(rest).to_ascii_lowercase();
    if !scheme_ok || authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    // The port is what follows the last ':' outside an IPv6 literal's brackets.
    let (host, port) = match authority.rfind(':') {
        Some(at) if !authority[at..].contains(']') => {
            (&authority[..at], Some(&authority[at + 1..]))
        }
        _ => (authority.as_str(), None),
    };
    if host.is_empty() {
        return None;
    }
    let default_port = match scheme.as_str() {
        "http" => Some("80"),
        "https" => Some("443"),
        _ => None,
    };
    match port {
        Some(port) if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) => None,
        Some(port) if Some(port) != default_port => Some(format!("{scheme}://{host}:{port}")),
        _ => Some(format!("{scheme}://{host}")),
    }
}

fn parse_cidr(raw: &str) -> Result<Cidr, String> {
    let raw = raw.trim();
    let bad = || format!("{raw:?} is not an address or CIDR network (e.g. 10.0.0.0/8)");
    let (address, prefix) = match raw.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (raw, None),
    };
    let network = address.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
    let max = if network.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(prefix) => prefix.parse::<u8>().map_err(|_| bad())?,
        None => max,
    };
    if prefix > max {
        return Err(bad());
    }
    Ok(Cidr { network, prefix })
}

fn parse_secret(raw: &str) -> Result<String, String> {
    if raw.chars().count() < MIN_SECRET_CHARS {
        return Err(format!(
            "the secret must be at least {MIN_SECRET_CHARS} characters"
        ));
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documentation() {
        let config = Config::try_parse_from(["confab"]).unwrap();
        assert_eq!(config.addr.to_string(), "127.0.0.1:8000");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.idle_timeout, 45);
        assert_eq!(config.header_timeout, 10);
        assert_eq!(config.body_timeout, 30);
        assert_eq!(config.max_connections_per_ip, 64);
        assert!(config.allowed_origins.is_empty() && config.trusted_proxies.is_empty());
    }

    #[test]
    fn origins_and_networks_parse_as_documented() {
        let config = Config::try_parse_from([
            "confab",
            "--allowed-origins",
            "HTTPS://Chat.Example.com:443,http://a.test:8080,*",
            "--trusted-proxies",
            "10.0.0.0/8,::1,192.168.1.7",
        ])
        .unwrap();
        assert_eq!(
            config.allowed_origins,
            vec![
                AllowedOrigin::Exactly("https://chat.example.com".into()),
                AllowedOrigin::Exactly("http://a.test:8080".into()),
                AllowedOrigin::Any,
            ]
        );
        let [ten, loopback, single] = config.trusted_proxies[..] else {
            panic!("three networks");
        };
        assert!(ten.contains("10.200.3.4".parse().unwrap()));
        assert!(!ten.contains("11.0.0.1".parse().unwrap()));
        assert!(ten.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(loopback.contains("::1".parse().unwrap()));
        assert!(single.contains("192.168.1.7".parse().unwrap()));
        assert!(!single.contains("192.168.1.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nope", "null", "https://a.test/path"] {
            assert!(
                Config::try_parse_from(["confab", "--trusted-proxies", bad]).is_err()
                    || Config::try_parse_from(["confab", "--allowed-origins", bad]).is_err(),
                "{bad}"
            );
        }
        assert!(Config::try_parse_from(["confab", "--allowed-origins", "null"]).is_err());
        assert!(Config::try_parse_from(["confab", "--tls-cert", "a.pem"]).is_err());
    }

    #[test]
    fn short_secrets_and_zero_timeouts_are_refused() {
        assert!(Config::try_parse_from(["confab", "--secret", "short"]).is_err());
        assert!(Config::try_parse_from(["confab", "--idle-timeout", "0"]).is_err());
        let long = "s".repeat(64);
        assert!(Config::try_parse_from(["confab", "--secret", &long]).is_ok());
    }
}
