//! The scenarios, and what they share: the run context ([`Bench`]), phase measurement, the
//! progress line, and the multi-room load engine in [`load`].
//!
//! - [`fanout`]: one big room, rising rate until it breaks.
//! - [`rooms`]: many rooms at a fixed rate.
//! - [`idle`]: idle joined connections, RSS per connection.
//! - [`joins`]: join throughput, and churn under a `rooms` load.
//! - [`slow`]: a `rooms` load with members that stop reading.
//! - [`cluster`]: a `rooms` load spread over several nodes, cross-node latency on its own.
//! - [`burst`]: a stalled reader, a flooding sender and members that keep reading.
//! - [`soak`]: a long `rooms` load with churn, sampled for drift in RSS and descriptors.
//! - [`persist`]: many one-member rooms, stored messages/s (one node or a cluster).

mod burst;
mod cluster;
mod fanout;
mod idle;
mod joins;
mod load;
mod persist;
mod rooms;
mod slow;
mod soak;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;

use crate::cli::{Cli, Scenario, TargetArgs};
use crate::client::{ConnectError, Connector};
use crate::metrics::{Counters, Counts, Latencies, LatencySummary};
use crate::procstat::{self, Usage};
use crate::report::{Facts, PhaseStats, Report, ServerPhase};
use crate::target::Server;

/// Runs the scenario named on the command line against `target` (the command line's own
/// target, or the reference server for a side-by-side run).
pub async fn run(cli: &Cli, target: &TargetArgs, nofile: u64) -> anyhow::Result<Report> {
    let servers = match &cli.scenario {
        Scenario::Cluster(args) => cluster::start_nodes(target, args).await?,
        Scenario::Persist(args) if args.nodes > 1 || !args.also_url.is_empty() => {
            let cluster = crate::cli::ClusterArgs {
                load: persist::load_args(args),
                nodes: args.nodes,
                also_url: args.also_url.clone(),
            };
            cluster::start_nodes(target, &cluster).await?
        }
        _ => vec![Server::start(target).await?],
    };
    let bench = Arc::new(Bench::new(cli, &servers));
    let progress = tokio::spawn(progress(bench.clone()));
    let outcome = match &cli.scenario {
        Scenario::Fanout(args) => fanout::run(&bench, args).await,
        Scenario::Rooms(args) => rooms::run(&bench, args).await,
        Scenario::Idle(args) => idle::run(&bench, args, nofile).await,
        Scenario::Joins(args) => joins::run(&bench, args).await,
        Scenario::Slow(args) => slow::run(&bench, args).await,
        Scenario::Cluster(args) => cluster::run(&bench, args).await,
        Scenario::Burst(args) => burst::run(&bench, args).await,
        Scenario::Soak(args) => soak::run(&bench, args).await,
        Scenario::Persist(args) => persist::run(&bench, args).await,
    };
    progress.abort();
    let logs: Vec<String> = servers
        .iter()
        .filter_map(|server| server.log_path().map(|p| p.display().to_string()))
        .collect();
    let mut stopped = Ok(());
    for server in servers {
        let result = server.stop().await;
        if stopped.is_ok() {
            stopped = result;
        }
    }
    let mut outcome = outcome;
    if let (Err(err), false) = (&mut outcome, logs.is_empty()) {
        *err = anyhow::anyhow!("{err:#} (server log: {})", logs.join(", "));
    }
    let (scenario, params, phases, mut facts, mut notes) = outcome?;
    stopped?;
    let ok = phases.iter().all(PhaseStats::clean);
    if let Some(first) = bench.first_failure.lock().expect("lock").take() {
        notes.push(format!("first failed connection: {first}"));
    }
    let endings = std::mem::take(&mut *bench.endings.lock().expect("lock"));
    if !endings.is_empty() {
        facts.add(
            "connections ended early, by close code",
            serde_json::json!(endings),
        );
    }
    facts.add("bench open-files limit", nofile);
    Ok(Report {
        scenario,
        ok,
        connections_made: bench.counters.connected.load(Relaxed),
        connections_failed: bench.counters.connect_failed.load(Relaxed),
        server_pid: bench.server_pid,
        params,
        phases,
        facts,
        notes,
    })
}

/// What a scenario hands back: its name, its parameters, the measured phases, facts and notes.
type Outcome = (
    &'static str,
    serde_json::Value,
    Vec<PhaseStats>,
    Facts,
    Vec<String>,
);

/// The context of one run, shared by every client task.
pub struct Bench {
    pub connector: Connector,
    pub counters: Counters,
    pub latencies: Latencies,
    /// How late senders wrote each message relative to their schedule, µs.
    pub send_lag: Latencies,
    /// Deliveries whose sender is connected to another node than the receiver (cluster runs).
    pub cross_node: Latencies,
    pub server_pid: Option<u32>,
    pub drain: Duration,
    /// Bounds connects in flight, so a 10k-client scenario does not SYN-flood the listener.
    pub connect_slots: Semaphore,
    /// Prefix of every room name, unique per run, so a long-lived server's history from
    /// earlier runs never mixes into this one.
    pub run_id: String,
    /// Numbers clients across the run: their names and source addresses.
    next_client: AtomicUsize,
    first_failure: Mutex<Option<String>>,
    /// How tracked connections ended before the run did: close code (or "no close frame"),
    /// count. Rare, so a lock is fine.
    pub endings: Mutex<BTreeMap<String, u64>>,
    /// What the progress line says the run is doing.
    status: Mutex<String>,
    /// Highest server RSS seen by the progress sampler since the phase began.
    peak_rss_kib: AtomicU64,
    /// Server RSS once a second: (seconds since the run began, KiB).
    pub rss_series: Mutex<Vec<(f64, u64)>>,
    started: Instant,
}

impl Bench {
    fn new(cli: &Cli, servers: &[Server]) -> Self {
        let connector = Connector::new(
            servers.iter().map(|s| (s.addr, s.url.clone())).collect(),
            cli.conn.read_buffer,
            cli.conn.source_addrs,
            Duration::from_secs_f64(cli.conn.connect_timeout),
        );
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Bench {
            connector,
            counters: Counters::default(),
            latencies: Latencies::default(),
            send_lag: Latencies::default(),
            cross_node: Latencies::default(),
            // Resource figures follow the first node.
            server_pid: servers.first().and_then(|s| s.pid),
            drain: Duration::from_secs_f64(cli.conn.drain_secs),
            connect_slots: Semaphore::new(cli.conn.connect_concurrency.max(1)),
            run_id: format!("b{secs}"),
            next_client: AtomicUsize::new(0),
            first_failure: Mutex::new(None),
            endings: Mutex::new(BTreeMap::new()),
            status: Mutex::new("starting".to_owned()),
            peak_rss_kib: AtomicU64::new(0),
            rss_series: Mutex::new(Vec::new()),
            started: Instant::now(),
        }
    }

    /// A new client number; the client's name is `b<number>`.
    pub fn next_client(&self) -> usize {
        self.next_client.fetch_add(1, Relaxed)
    }

    pub fn set_status(&self, status: impl Into<String>) {
        *self.status.lock().expect("lock") = status.into();
    }

    /// Counts a failed connection and keeps the first reason for the report.
    pub fn connect_failed(&self, err: &ConnectError) {
        self.counters.connect_failed.fetch_add(1, Relaxed);
        self.first_failure
            .lock()
            .expect("lock")
            .get_or_insert_with(|| err.to_string());
    }

    pub fn server_usage(&self) -> Option<Usage> {
        procstat::sample(self.server_pid)
            .ok()
            .filter(|_| self.server_pid.is_some())
    }

    /// Records how a tracked connection ended before the run did.
    pub fn connection_ended(&self, how: String) {
        *self.endings.lock().expect("lock").entry(how).or_default() += 1;
    }

    /// Starts measuring a phase that begins at `start`: clears the histogram, takes the counters
    /// and the resource readings it will be compared against.
    pub fn begin_phase(
        &self,
        label: String,
        offered_msgs_per_sec: f64,
        start: Instant,
    ) -> PhaseClock {
        self.latencies.reset();
        self.send_lag.reset();
        self.cross_node.reset();
        let server = self.server_usage();
        self.peak_rss_kib
            .store(server.map_or(0, |u| u.rss_kib), Relaxed);
        PhaseClock {
            label,
            offered_msgs_per_sec,
            start,
            counts: self.counters.counts(),
            server,
            bench: procstat::sample(None).ok(),
        }
    }

    /// Ends a phase now and computes its figures.
    pub fn end_phase(&self, clock: PhaseClock) -> PhaseStats {
        let secs = clock.start.elapsed().as_secs_f64();
        let d: Counts = self.counters.counts() - clock.counts;
        let latency = LatencySummary::of(&self.latencies.snapshot());
        let send_lag = LatencySummary::of(&self.send_lag.snapshot());
        let server = match (clock.server, self.server_usage()) {
            (Some(before), Some(after)) => Some(ServerPhase {
                rss_kib_start: before.rss_kib,
                rss_kib_end: after.rss_kib,
                rss_kib_peak: self.peak_rss_kib.load(Relaxed).max(after.rss_kib),
                cpu_secs: after.cpu_secs - before.cpu_secs,
            }),
            _ => None,
        };
        let bench_cpu_secs = match (clock.bench, procstat::sample(None).ok()) {
            (Some(before), Some(after)) => after.cpu_secs - before.cpu_secs,
            _ => 0.0,
        };
        PhaseStats {
            label: clock.label,
            offered_msgs_per_sec: clock.offered_msgs_per_sec,
            secs,
            messages_sent: d.sent,
            deliveries_expected: d.expected,
            received: d.received,
            lost: d.expected.saturating_sub(d.received),
            duplicated: d.duplicated,
            out_of_order: d.out_of_order,
            error_frames: d.error_frames,
            closed_4001: d.closed_4001,
            closed_other: d.closed_other,
            deliveries_per_sec: d.received as f64 / secs.max(1e-9),
            latency,
            send_lag,
            deliveries_per_server_cpu_sec: server
                .filter(|s| s.cpu_secs > 0.0)
                .map(|s| d.received as f64 / s.cpu_secs),
            server,
            bench_cpu_secs,
        }
    }

    /// Waits (up to 10 s) until the server has been nearly idle for a moment, e.g. after a
    /// join storm whose presence frames would otherwise land in the first phase's figures.
    /// Without a server PID there is nothing to watch, so it just waits a second.
    pub async fn wait_quiet(&self) {
        const WINDOW: Duration = Duration::from_millis(250);
        let Some(mut last) = self.server_usage() else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            tokio::time::sleep(WINDOW).await;
            let Some(now) = self.server_usage() else {
                return;
            };
            // Under 10% of one core over the window counts as quiet.
            if now.cpu_secs - last.cpu_secs < WINDOW.as_secs_f64() * 0.1 {
                return;
            }
            last = now;
        }
    }

    /// Waits until every delivery owed since `since` has arrived, or the drain time has passed.
    pub async fn drain_since(&self, since: &PhaseClock) {
        let deadline = Instant::now() + self.drain;
        while Instant::now() < deadline {
            let d = self.counters.counts() - since.counts;
            if d.received >= d.expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// The readings a phase started from (see [`Bench::begin_phase`]).
pub struct PhaseClock {
    label: String,
    offered_msgs_per_sec: f64,
    start: Instant,
    counts: Counts,
    server: Option<Usage>,
    bench: Option<Usage>,
}

/// Prints a progress line on stderr once a second, and samples the server's RSS.
async fn progress(bench: Arc<Bench>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last = bench.counters.counts();
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = bench.counters.counts();
        let d = now - last;
        last = now;
        let p99 = LatencySummary::of(&bench.latencies.snapshot()).p99_us;
        let t = bench.started.elapsed().as_secs_f64();
        let rss = match bench.server_usage() {
            Some(usage) => {
                bench.peak_rss_kib.fetch_max(usage.rss_kib, Relaxed);
                bench
                    .rss_series
                    .lock()
                    .expect("lock")
                    .push((t, usage.rss_kib));
                format!(" server {:.1} MiB", usage.rss_kib as f64 / 1024.0)
            }
            None => String::new(),
        };
        let status = bench.status.lock().expect("lock").clone();
        eprintln!(
            "[{t:6.1}s] {status}: conns {} (+{} failed) sent {}/s recv {}/s owed {} dup {} p99 {:.2} ms{rss}",
            bench.counters.connected.load(Relaxed),
            bench.counters.connect_failed.load(Relaxed),
            d.sent,
            d.received,
            now.expected.saturating_sub(now.received),
            now.duplicated,
            p99 as f64 / 1000.0,
        );
    }
}
