//! Command-line and environment configuration. Every option has an env fallback, so the same
//! binary is configured the same way from a shell, a unit file or a container.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Smallest secret accepted from `CONFAB_SECRET`: 64 characters of key material.
pub const MIN_SECRET_CHARS: usize = 64;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "confab",
    version,
    about = "A real-time chat server: rooms, live presence, nothing lost."
)]
pub struct Config {
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

    /// Seconds a connection may make no write progress while data waits for it before it is
    /// closed with 4001. A reader that keeps reading is never cut, however far behind it is.
    #[arg(long, env = "CONFAB_STALL_TIMEOUT", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub stall_timeout: u64,

    /// `on` (the default) or `off`: `off` lifts every rate limit and every per-IP connection
    /// cap at once, for benchmarks and load tests. Size limits and --max-connections stay.
    #[arg(long, env = "CONFAB_RATE_LIMITS", default_value = "on", value_enum)]
    pub rate_limits: RateLimits,

    /// Messages waiting to be stored before further sends are refused with `overloaded`
    /// (and a `retry_after_ms`) instead of waiting.
    #[arg(long, env = "CONFAB_WRITER_QUEUE", default_value_t = 8192,
          value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub writer_queue: u32,
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
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            idle_timeout: 45,
            secret: None,
            database_url: None,
            redis_url: None,
            redis_prefix: "confab".into(),
            log: "info".into(),
            stall_timeout: 15,
            rate_limits: RateLimits::On,
            writer_queue: 8192,
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout)
    }

    pub fn stall_timeout(&self) -> Duration {
        Duration::from_secs(self.stall_timeout)
    }
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
    }

    #[test]
    fn short_secrets_and_zero_timeouts_are_refused() {
        assert!(Config::try_parse_from(["confab", "--secret", "short"]).is_err());
        assert!(Config::try_parse_from(["confab", "--idle-timeout", "0"]).is_err());
        let long = "s".repeat(64);
        assert!(Config::try_parse_from(["confab", "--secret", &long]).is_ok());
    }
}
