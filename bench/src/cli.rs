//! The command line: one subcommand per scenario, shared flags for the target and connections.
//!
//! Shared flags are `global` so they may follow the subcommand, as in
//! `confab-bench fanout --spawn target/release/confab --members 50`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Load generator for confab: real WebSocket clients speaking protocol v1.
///
/// Every run reports connections made and failed, messages sent, deliveries expected, received,
/// lost and duplicated, deliveries/s, latency percentiles, and the server's RSS and CPU time.
/// The exit status is 0 for a clean run, 1 when anything was lost, duplicated or reordered,
/// 2 when the run could not be carried out.
#[derive(Debug, Parser)]
#[command(name = "confab-bench", version)]
pub struct Cli {
    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub conn: ConnArgs,

    /// Print the report as one JSON object instead of a table.
    #[arg(long, global = true, env = "CONFAB_BENCH_JSON")]
    pub json: bool,

    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Which server to load: an running one (`--url`) or one the bench starts (`--spawn`).
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// WebSocket URL of a running server, e.g. ws://127.0.0.1:8000/ws.
    #[arg(
        long,
        global = true,
        env = "CONFAB_BENCH_URL",
        conflicts_with = "spawn"
    )]
    pub url: Option<String>,

    /// PID of the server behind --url, to report its RSS and CPU time from /proc.
    #[arg(long, global = true, env = "CONFAB_BENCH_SERVER_PID")]
    pub server_pid: Option<u32>,

    /// Path to a confab binary to start for this run, on a free port with a fresh data dir.
    #[arg(long, global = true, env = "CONFAB_BENCH_SPAWN")]
    pub spawn: Option<PathBuf>,

    /// Extra argument for the spawned server (repeatable), e.g. --server-arg=--some-flag.
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub server_arg: Vec<String>,

    /// Where the spawned server's stdout and stderr go (default: server.log in its data dir,
    /// removed at the end).
    #[arg(long, global = true, env = "CONFAB_BENCH_SERVER_LOG")]
    pub server_log: Option<PathBuf>,

    /// Path to a reference server binary (bench/examples/reference_server.rs): after the run
    /// against confab, spawn it and run the identical load against it, then report both side
    /// by side with the ratio confab / reference.
    #[arg(long, global = true, env = "CONFAB_BENCH_REFERENCE")]
    pub reference: Option<PathBuf>,
}

impl TargetArgs {
    /// The same target settings, but spawning `binary` (the reference server) instead.
    pub fn spawning(&self, binary: &std::path::Path) -> TargetArgs {
        TargetArgs {
            url: None,
            server_pid: None,
            spawn: Some(binary.to_owned()),
            reference: None,
            server_log: None,
            ..self.clone()
        }
    }
}

/// How the clients connect.
#[derive(Debug, Args)]
pub struct ConnArgs {
    /// Spread client sockets over source addresses 127.0.0.1 ..= 127.0.0.N: one source address
    /// runs out of ephemeral ports near 28k connections.
    #[arg(long, global = true, env = "CONFAB_BENCH_SOURCE_ADDRS", default_value_t = 8,
          value_parser = clap::value_parser!(u8).range(1..=254))]
    pub source_addrs: u8,

    /// Connections being opened at once. Kept under the listen backlog of a server bound with
    /// tokio's default (128 here): past it the kernel drops SYNs and a connect waits out a 1 s
    /// retransmit, which would be measured as join latency.
    #[arg(
        long,
        global = true,
        env = "CONFAB_BENCH_CONNECT_CONCURRENCY",
        default_value_t = 100
    )]
    pub connect_concurrency: usize,

    /// Seconds one connect + upgrade + hello + join may take before it counts as failed.
    #[arg(
        long,
        global = true,
        env = "CONFAB_BENCH_CONNECT_TIMEOUT",
        default_value_t = 10.0
    )]
    pub connect_timeout: f64,

    /// Per-client WebSocket read buffer in bytes; small keeps 10k+ clients cheap.
    #[arg(
        long,
        global = true,
        env = "CONFAB_BENCH_READ_BUFFER",
        default_value_t = 8192
    )]
    pub read_buffer: usize,

    /// Seconds to wait after a phase's last send for outstanding deliveries before counting
    /// the rest as lost.
    #[arg(
        long,
        global = true,
        env = "CONFAB_BENCH_DRAIN_SECS",
        default_value_t = 5.0
    )]
    pub drain_secs: f64,
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// One big room, a few senders, open-loop rising rate until p99 passes the limit or anything
    /// is lost; reports every step and the best step's deliveries/s.
    Fanout(FanoutArgs),
    /// Many rooms, one sender per room at a fixed rate.
    Rooms(RoomsArgs),
    /// Idle joined connections; server RSS per connection once it settles.
    Idle(IdleArgs),
    /// How fast clients complete upgrade + join + `joined`; with --churn, connects and
    /// disconnects per second while a `rooms` load runs.
    Joins(JoinsArgs),
    /// A `rooms` load where some members stop reading: others' p99, server RSS, who gets cut.
    Slow(SlowArgs),
    /// `rooms` spread over several nodes of one cluster (Redis + PostgreSQL): clients are
    /// given nodes round-robin, and latency is also reported for cross-node deliveries alone.
    Cluster(ClusterArgs),
    /// One room: a member that never reads, one that floods (5,000 messages of 3,900
    /// characters as fast as its socket allows) and N members reading all the time; reports,
    /// per member, whether it got every message in order, and how the stalled one ended.
    Burst(BurstArgs),
    /// A long `rooms` load with clients joining and leaving all the time, sampled every
    /// --sample-secs: loss, duplicates, server RSS and open file descriptors over time.
    Soak(SoakArgs),
    /// Many one-member rooms, each member sending at a fixed rate: stored messages/s and the
    /// latency of send → commit → broadcast (`--nodes 2` for a PostgreSQL + Redis cluster).
    Persist(PersistArgs),
}

#[derive(Debug, Args)]
pub struct PersistArgs {
    /// Number of rooms, each with one member who sends.
    #[arg(long, env = "CONFAB_BENCH_ROOMS", default_value_t = 1000)]
    pub rooms: usize,

    /// Messages/s each room's sender sends.
    #[arg(long, env = "CONFAB_BENCH_RATE", default_value_t = 50.0)]
    pub rate: f64,

    /// Bytes of each message's text (the stamp, padded).
    #[arg(long, env = "CONFAB_BENCH_TEXT_BYTES", default_value_t = 100)]
    pub text_bytes: usize,

    /// Send UUIDv4-shaped random client_ids (as a client using `crypto.randomUUID()` would)
    /// instead of short ids numbered per sender, which are nearly in order like the web UI's.
    #[arg(long)]
    pub random_client_ids: bool,

    /// Seconds of measured load.
    #[arg(long, env = "CONFAB_BENCH_DURATION", default_value_t = 15.0)]
    pub duration: f64,

    /// Seconds of load before measuring, not reported.
    #[arg(long, env = "CONFAB_BENCH_WARMUP", default_value_t = 2.0)]
    pub warmup: f64,

    /// Nodes to start with --spawn (2 or more: a cluster; give them a shared database and
    /// Redis with --server-arg=--database-url=... and --server-arg=--redis-url=...).
    #[arg(long, env = "CONFAB_BENCH_NODES", default_value_t = 1)]
    pub nodes: usize,

    /// With --url: the WebSocket URL of another node of the same cluster (repeatable).
    #[arg(long)]
    pub also_url: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub load: LoadArgs,

    /// With --spawn: how many nodes to start. Give them a shared database and Redis with
    /// --server-arg=--database-url=... and --server-arg=--redis-url=....
    #[arg(long, env = "CONFAB_BENCH_NODES", default_value_t = 2)]
    pub nodes: usize,

    /// With --url: the WebSocket URL of another node of the same cluster (repeatable).
    #[arg(long)]
    pub also_url: Vec<String>,
}

#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// Members of the room, senders included.
    #[arg(long, env = "CONFAB_BENCH_MEMBERS", default_value_t = 1000)]
    pub members: usize,

    /// Members that also send.
    #[arg(long, env = "CONFAB_BENCH_SENDERS", default_value_t = 4)]
    pub senders: usize,

    /// Messages/s into the room (all senders together) at the first step.
    #[arg(long, env = "CONFAB_BENCH_START_RATE", default_value_t = 200.0)]
    pub start_rate: f64,

    /// Each step's rate is the previous one times this.
    #[arg(long, env = "CONFAB_BENCH_STEP_FACTOR", default_value_t = 1.5)]
    pub step_factor: f64,

    /// Seconds of sending per step.
    #[arg(long, env = "CONFAB_BENCH_STEP_SECS", default_value_t = 5.0)]
    pub step_secs: f64,

    /// Stop after this many steps even if the limit was not found.
    #[arg(long, env = "CONFAB_BENCH_MAX_STEPS", default_value_t = 15)]
    pub max_steps: u32,

    /// A step whose p99 exceeds this many milliseconds ends the climb.
    #[arg(long, env = "CONFAB_BENCH_P99_LIMIT_MS", default_value_t = 100.0)]
    pub p99_limit_ms: f64,

    /// Seconds of load at the first step's rate before the climb, not reported: the first
    /// seconds of a fresh server (allocator, socket buffers, database file growth) are slower
    /// than its steady state.
    #[arg(long, env = "CONFAB_BENCH_WARMUP", default_value_t = 2.0)]
    pub warmup: f64,
}

/// The shape of a multi-room load, shared by `rooms`, `slow` and `joins --churn`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Number of rooms.
    #[arg(long, env = "CONFAB_BENCH_ROOMS", default_value_t = 100)]
    pub rooms: usize,

    /// Members per room, the sender included.
    #[arg(long, env = "CONFAB_BENCH_MEMBERS", default_value_t = 100)]
    pub members: usize,

    /// Messages/s sent into each room (by its one sender).
    #[arg(long, env = "CONFAB_BENCH_RATE", default_value_t = 3.0)]
    pub rate: f64,

    /// Seconds of measured load (per phase, where a scenario has several).
    #[arg(long, env = "CONFAB_BENCH_DURATION", default_value_t = 30.0)]
    pub duration: f64,

    /// Seconds of load before measuring, not reported.
    #[arg(long, env = "CONFAB_BENCH_WARMUP", default_value_t = 2.0)]
    pub warmup: f64,
}

#[derive(Debug, Args)]
pub struct RoomsArgs {
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Debug, Args)]
pub struct IdleArgs {
    /// Connections to open (stops early, and says so, at the open-files limit).
    #[arg(long, env = "CONFAB_BENCH_CONNECTIONS", default_value_t = 10_000)]
    pub connections: usize,

    /// Rooms the connections are spread over.
    #[arg(long, env = "CONFAB_BENCH_ROOMS", default_value_t = 1000)]
    pub rooms: usize,

    /// Connections opened between two RSS samples.
    #[arg(long, env = "CONFAB_BENCH_STEP", default_value_t = 1000)]
    pub step: usize,

    /// Seconds to let the server settle before the final RSS sample.
    #[arg(long, env = "CONFAB_BENCH_SETTLE_SECS", default_value_t = 5.0)]
    pub settle_secs: f64,
}

#[derive(Debug, Args)]
pub struct JoinsArgs {
    /// Clients that connect and join (plain mode).
    #[arg(long, env = "CONFAB_BENCH_CLIENTS", default_value_t = 10_000)]
    pub clients: usize,

    /// Measure churn instead: a `rooms` load without, then with, clients connecting and
    /// disconnecting.
    #[arg(long, env = "CONFAB_BENCH_CHURN")]
    pub churn: bool,

    /// Churn: new connections per second (each joins a room of the load, stays
    /// --churn-life seconds, then closes).
    #[arg(long, env = "CONFAB_BENCH_CHURN_RATE", default_value_t = 500.0)]
    pub churn_rate: f64,

    /// Churn: seconds each churning client stays connected.
    #[arg(long, env = "CONFAB_BENCH_CHURN_LIFE", default_value_t = 1.0)]
    pub churn_life: f64,

    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Debug, Args)]
pub struct SlowArgs {
    /// Percent of each room's members that stop reading in the second phase.
    #[arg(long, env = "CONFAB_BENCH_SLOW_PERCENT", default_value_t = 1.0)]
    pub slow_percent: f64,

    /// Receive buffer (SO_RCVBUF, bytes) of the slow members' sockets, kept small so the
    /// server's queue, not the kernel, absorbs the backlog.
    #[arg(long, env = "CONFAB_BENCH_SLOW_RCVBUF", default_value_t = 4096)]
    pub slow_rcvbuf: u32,

    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Debug, Args)]
pub struct BurstArgs {
    /// Members that read continuously (besides the flooding sender, which reads its echoes).
    #[arg(long, env = "CONFAB_BENCH_READERS", default_value_t = 2)]
    pub readers: usize,

    /// Messages the sender floods.
    #[arg(long, env = "CONFAB_BENCH_MESSAGES", default_value_t = 5000)]
    pub messages: u64,

    /// Characters per message (protocol limit: 4,000).
    #[arg(long, env = "CONFAB_BENCH_TEXT_LEN", default_value_t = 3900)]
    pub text_len: usize,

    /// Messages/s each reader reads at; 0 reads as fast as it can.
    #[arg(long, env = "CONFAB_BENCH_READER_RATE", default_value_t = 0.0)]
    pub reader_rate: f64,

    /// Seconds, from the first send, that the stalled member reads nothing; then it reads what
    /// is left. Longer than the server's --stall-timeout (default 15), so a cut can happen.
    #[arg(long, env = "CONFAB_BENCH_STALL_SECS", default_value_t = 25.0)]
    pub stall_secs: f64,

    /// SO_RCVBUF of the stalled member's socket, bytes (default: the kernel's).
    #[arg(long, env = "CONFAB_BENCH_STALLED_RCVBUF")]
    pub stalled_rcvbuf: Option<u32>,

    /// Seconds, from the first send, the readers may take to receive every message.
    #[arg(long, env = "CONFAB_BENCH_TIMEOUT", default_value_t = 120.0)]
    pub timeout: f64,
}

#[derive(Debug, Args)]
pub struct SoakArgs {
    /// Minutes of measured load (the shape is --rooms, --members, --rate).
    #[arg(long, env = "CONFAB_BENCH_MINUTES", default_value_t = 30.0)]
    pub minutes: f64,

    /// Seconds between two samples.
    #[arg(long, env = "CONFAB_BENCH_SAMPLE_SECS", default_value_t = 30.0)]
    pub sample_secs: f64,

    /// Samples before this many seconds are warm-up: RSS drift and fd growth are measured
    /// from the first sample after it.
    #[arg(long, env = "CONFAB_BENCH_STEADY_AFTER", default_value_t = 120.0)]
    pub steady_after: f64,

    /// Churning clients started per second (each joins a room of the load, stays
    /// --churn-life seconds, then closes).
    #[arg(long, env = "CONFAB_BENCH_CHURN_RATE", default_value_t = 50.0)]
    pub churn_rate: f64,

    /// Seconds each churning client stays connected.
    #[arg(long, env = "CONFAB_BENCH_CHURN_LIFE", default_value_t = 5.0)]
    pub churn_life: f64,

    #[command(flatten)]
    pub load: LoadArgs,
}
