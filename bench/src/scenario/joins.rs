//! `joins`: how fast clients complete upgrade + `hello` + `join` + `joined`.
//!
//! Plain mode opens `--clients` clients over `--rooms` rooms, `--connect-concurrency` at a
//! time, and reports joins/s and the latency of one join. `--churn` runs a `rooms` load
//! twice, without and then with clients connecting and disconnecting at `--churn-rate`/s,
//! and reports how much the churn moves the load's p99.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;
use tokio::task::JoinSet;

use super::{Bench, Outcome, rooms};
use crate::cli::JoinsArgs;
use crate::client::Incoming;
use crate::metrics::{LatencySummary, new_histogram};
use crate::report::Facts;

pub async fn run(bench: &Arc<Bench>, args: &JoinsArgs) -> anyhow::Result<Outcome> {
    if args.churn {
        churn(bench, args).await
    } else {
        plain(bench, args).await
    }
}

async fn plain(bench: &Arc<Bench>, args: &JoinsArgs) -> anyhow::Result<Outcome> {
    let params = json!({
        "clients": args.clients, "rooms": args.load.rooms,
        "connect_concurrency": bench.connect_slots.available_permits(),
    });
    let rooms: Vec<Arc<str>> = (0..args.load.rooms.max(1))
        .map(|r| Arc::from(format!("{}-r{r}", bench.run_id)))
        .collect();
    let attempted = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(new_histogram()));
    let before = bench.server_usage();
    bench.set_status(format!("joins: {} clients", args.clients));
    let start = Instant::now();
    // A phase, for the server's CPU and peak RSS over the joins (and a side-by-side column).
    let clock = bench.begin_phase("joins".to_owned(), 0.0, start);
    let mut tasks = JoinSet::new();
    for _ in 0..args.clients {
        let index = bench.next_client();
        let room = rooms[index % rooms.len()].clone();
        tasks.spawn(joiner(
            bench.clone(),
            index,
            room,
            latencies.clone(),
            attempted.clone(),
            None,
        ));
    }
    while attempted.load(Relaxed) < args.clients {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let after = bench.server_usage();
    let phase = bench.end_phase(clock);
    tasks.shutdown().await;

    let completed = bench.counters.connected.load(Relaxed);
    let mut facts = Facts::default();
    facts.add("joins completed", completed);
    facts.add("joins failed", bench.counters.connect_failed.load(Relaxed));
    facts.add("seconds", secs);
    facts.add("joins/s", completed as f64 / secs);
    if args.load.rooms == 1 {
        facts.add("time to fill the room s", secs);
    }
    add_latency(&mut facts, "join", &latencies.lock().expect("lock"));
    if let (Some(before), Some(after)) = (before, after) {
        facts.add("server CPU s", after.cpu_secs - before.cpu_secs);
        facts.add("server RSS KiB after", after.rss_kib);
    }
    if let Some(server) = phase.server {
        facts.add("server RSS KiB peak", server.rss_kib_peak);
    }
    Ok(("joins", params, vec![phase], facts, Vec::new()))
}

async fn churn(bench: &Arc<Bench>, args: &JoinsArgs) -> anyhow::Result<Outcome> {
    let mut params = rooms::params(&args.load);
    params["churn_rate"] = json!(args.churn_rate);
    params["churn_life"] = json!(args.churn_life);
    let mut load = rooms::open(bench, &args.load, 0, None).await;
    if args.load.warmup > 0.0 {
        load.run_phase("warm-up", args.load.rate, args.load.warmup)
            .await;
    }
    let baseline = load
        .run_phase("baseline", args.load.rate, args.load.duration)
        .await;

    let joined_before = bench.counters.connected.load(Relaxed);
    let latencies = Arc::new(Mutex::new(new_histogram()));
    let closed = Arc::new(AtomicU64::new(0));
    let driver = tokio::spawn(drive_churn(
        bench.clone(),
        load.rooms.clone(),
        args.churn_rate,
        Duration::from_secs_f64(args.churn_life),
        latencies.clone(),
        closed.clone(),
    ));
    let churned = load
        .run_phase("churn", args.load.rate, args.load.duration)
        .await;
    driver.abort();
    let churn_joins = bench.counters.connected.load(Relaxed) - joined_before;
    load.close().await;

    let mut facts = Facts::default();
    facts.add("churn connects completed", churn_joins);
    facts.add(
        "churn connects/s achieved",
        churn_joins as f64 / churned.secs,
    );
    facts.add(
        "churn disconnects/s achieved",
        closed.load(Relaxed) as f64 / churned.secs,
    );
    add_latency(&mut facts, "churn join", &latencies.lock().expect("lock"));
    let (before, after) = (baseline.latency.p99_us, churned.latency.p99_us);
    facts.add("rooms p99 ms without churn", before as f64 / 1000.0);
    facts.add("rooms p99 ms with churn", after as f64 / 1000.0);
    facts.add(
        "churn adds to p99 ms",
        (after as f64 - before as f64) / 1000.0,
    );
    Ok((
        "joins --churn",
        params,
        vec![baseline, churned],
        facts,
        Vec::new(),
    ))
}

/// Starts `rate` churning clients per second, round-robin over `rooms`, each living `life`.
pub(super) async fn drive_churn(
    bench: Arc<Bench>,
    rooms: Vec<Arc<str>>,
    rate: f64,
    life: Duration,
    latencies: Arc<Mutex<Histogram<u64>>>,
    closed: Arc<AtomicU64>,
) {
    let attempted = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    let mut started = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    loop {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        while started < due {
            let index = bench.next_client();
            let room = rooms[index % rooms.len()].clone();
            tasks.spawn(joiner(
                bench.clone(),
                index,
                room,
                latencies.clone(),
                attempted.clone(),
                Some((life, closed.clone())),
            ));
            started += 1;
        }
        // Reap finished churners so the set does not grow for the whole phase.
        while tasks.try_join_next().is_some() {}
    }
}

/// One client that connects and joins, timing it; then stays, reading and discarding, for
/// `life` (closing politely and counting it in the given counter), or until the run ends.
async fn joiner(
    bench: Arc<Bench>,
    index: usize,
    room: Arc<str>,
    latencies: Arc<Mutex<Histogram<u64>>>,
    attempted: Arc<AtomicUsize>,
    life: Option<(Duration, Arc<AtomicU64>)>,
) {
    let joined = {
        let _slot = bench.connect_slots.acquire().await.expect("never closed");
        let t0 = Instant::now();
        let joined = bench
            .connector
            .connect_and_join(index, &format!("b{index}"), &room, None)
            .await;
        if joined.is_ok() {
            let micros = t0.elapsed().as_micros() as u64;
            latencies
                .lock()
                .expect("lock")
                .saturating_record(micros.max(1));
        }
        joined
    };
    attempted.fetch_add(1, Relaxed);
    let mut client = match joined {
        Ok((client, _)) => client,
        Err(err) => {
            bench.connect_failed(&err);
            return;
        }
    };
    bench.counters.connected.fetch_add(1, Relaxed);
    let read_all = async { while let Incoming::Text(_) = client.recv().await {} };
    match life {
        None => read_all.await,
        Some((life, closed)) => {
            if tokio::time::timeout(life, read_all).await.is_err() {
                client.close().await;
                closed.fetch_add(1, Relaxed);
            }
        }
    }
}

fn add_latency(facts: &mut Facts, what: &str, histogram: &Histogram<u64>) {
    let s = LatencySummary::of(histogram);
    facts.add(&format!("{what} latency p50 ms"), s.p50_us as f64 / 1000.0);
    facts.add(&format!("{what} latency p90 ms"), s.p90_us as f64 / 1000.0);
    facts.add(&format!("{what} latency p99 ms"), s.p99_us as f64 / 1000.0);
    facts.add(
        &format!("{what} latency p99.9 ms"),
        s.p999_us as f64 / 1000.0,
    );
    facts.add(&format!("{what} latency max ms"), s.max_us as f64 / 1000.0);
}
