//! `idle`: `--connections` clients, each joined to one of `--rooms` rooms, doing nothing.
//! The figure is the server's RSS per connection once it settles, (after − before) / N, with
//! a sample every `--step` connections for the RSS-against-connections curve.
//!
//! Both processes need one file descriptor per connection. When either runs out (the hard
//! limit here is 20,000 per process and cannot be raised), the scenario stops at what it
//! reached and says so: that number is a result, not a failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;

use super::{Bench, Outcome};
use crate::cli::IdleArgs;
use crate::client::{FailKind, Incoming};
use crate::report::Facts;

/// Descriptors the bench keeps for itself (stdio, epoll, the runtime's pipes, /proc reads).
const RESERVED_FDS: u64 = 64;

/// Time for the server to finish its bookkeeping after a batch before RSS is sampled.
const BATCH_SETTLE: Duration = Duration::from_millis(500);

pub async fn run(bench: &Arc<Bench>, args: &IdleArgs, nofile: u64) -> anyhow::Result<Outcome> {
    let params = json!({
        "connections": args.connections, "rooms": args.rooms, "step": args.step,
        "settle_secs": args.settle_secs,
    });
    let mut notes = Vec::new();
    let affordable = nofile.saturating_sub(RESERVED_FDS) as usize;
    let target = if args.connections > affordable {
        notes.push(format!(
            "asked for {} connections; this process may open {nofile} files, so at most {affordable} are tried",
            args.connections
        ));
        affordable
    } else {
        args.connections
    };
    let rooms: Vec<Arc<str>> = (0..args.rooms.max(1))
        .map(|r| Arc::from(format!("{}-r{r}", bench.run_id)))
        .collect();

    let before = bench.server_usage();
    let mut curve = vec![(0u64, before.map_or(0, |u| u.rss_kib))];
    let mut tasks = JoinSet::new();
    let mut reached = 0usize;
    let mut stop: Option<String> = None;
    while reached < target && stop.is_none() {
        let batch = args.step.max(1).min(target - reached);
        bench.set_status(format!("idle: opening {} → {}", reached, reached + batch));
        let tally = Arc::new(BatchTally::default());
        for _ in 0..batch {
            let index = bench.next_client();
            let room = rooms[index % rooms.len()].clone();
            tasks.spawn(idle_member(bench.clone(), index, room, tally.clone()));
        }
        while tally.ok.load(Relaxed) + tally.failed() < batch as u64 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        reached += tally.ok.load(Relaxed) as usize;
        tokio::time::sleep(BATCH_SETTLE).await;
        if let Some(usage) = bench.server_usage() {
            curve.push((reached as u64, usage.rss_kib));
        }
        if tally.failed() > 0 {
            stop = Some(tally.explain());
        }
    }
    bench.set_status(format!("idle: {reached} connections, settling"));
    tokio::time::sleep(Duration::from_secs_f64(args.settle_secs)).await;
    let after = bench.server_usage();
    tasks.shutdown().await;

    let mut facts = Facts::default();
    facts.add("connections asked", args.connections as u64);
    facts.add("connections reached", reached as u64);
    if let (Some(before), Some(after)) = (before, after) {
        facts.add("server RSS KiB before", before.rss_kib);
        facts.add("server RSS KiB after", after.rss_kib);
        if reached > 0 {
            let per_conn = (after.rss_kib as f64 - before.rss_kib as f64) / reached as f64;
            facts.add("server RSS KiB per connection", per_conn);
        }
        facts.add("server RSS KiB by connections", json!(curve));
    } else {
        notes.push("no server PID (use --spawn or --server-pid): no RSS figures".to_owned());
    }
    if let Some(why) = stop {
        notes.push(format!("stopped at {reached} connections: {why}"));
    }
    Ok(("idle", params, Vec::new(), facts, notes))
}

/// How one batch of connects went.
#[derive(Default)]
struct BatchTally {
    ok: AtomicU64,
    open_files: AtomicU64,
    timeout: AtomicU64,
    other: AtomicU64,
}

impl BatchTally {
    fn failed(&self) -> u64 {
        self.open_files.load(Relaxed) + self.timeout.load(Relaxed) + self.other.load(Relaxed)
    }

    fn explain(&self) -> String {
        format!(
            "{} failed on this process's open-files limit, {} timed out (a server out of \
             descriptors stops accepting: its open-files limit), {} failed otherwise",
            self.open_files.load(Relaxed),
            self.timeout.load(Relaxed),
            self.other.load(Relaxed)
        )
    }
}

/// Connects, joins, then reads and discards (presence, pings) until the run ends.
async fn idle_member(bench: Arc<Bench>, index: usize, room: Arc<str>, tally: Arc<BatchTally>) {
    let joined = {
        let _slot = bench.connect_slots.acquire().await.expect("never closed");
        bench
            .connector
            .connect_and_join(index, &format!("b{index}"), &room, None)
            .await
    };
    let mut client = match joined {
        Ok((client, _)) => client,
        Err(err) => {
            bench.connect_failed(&err);
            let counter = match err.kind {
                FailKind::OpenFiles => &tally.open_files,
                FailKind::Timeout => &tally.timeout,
                FailKind::Other => &tally.other,
            };
            counter.fetch_add(1, Relaxed);
            return;
        }
    };
    bench.counters.connected.fetch_add(1, Relaxed);
    tally.ok.fetch_add(1, Relaxed);
    while let Incoming::Text(_) = client.recv().await {}
    bench.counters.closed_other.fetch_add(1, Relaxed);
}
