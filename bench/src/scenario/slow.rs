//! `slow`: a `rooms` load in which `--slow-percent` of each room's members stop reading.
//!
//! Phase one ("baseline") has everyone reading; in phase two ("slow") the slow members read
//! nothing. The report compares the others' latency between the two, follows the server's
//! RSS, and counts how the slow members' connections ended: the protocol says a member whose
//! queue fills is closed with 4001, and that the room never waits for it.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use serde_json::json;

use super::load::SlowMode;
use super::{Bench, Outcome, rooms};
use crate::cli::SlowArgs;
use crate::report::Facts;

pub async fn run(bench: &Arc<Bench>, args: &SlowArgs) -> anyhow::Result<Outcome> {
    let slow_per_room = ((args.load.members as f64 * args.slow_percent / 100.0).ceil() as usize)
        .min(args.load.members.saturating_sub(1));
    let mut params = rooms::params(&args.load);
    params["slow_percent"] = json!(args.slow_percent);
    params["slow_per_room"] = json!(slow_per_room);
    params["slow_rcvbuf"] = json!(args.slow_rcvbuf);

    let mut load = rooms::open(bench, &args.load, slow_per_room, Some(args.slow_rcvbuf)).await;
    if args.load.warmup > 0.0 {
        load.run_phase("warm-up", args.load.rate, args.load.warmup)
            .await;
    }
    let baseline = load
        .run_phase("baseline", args.load.rate, args.load.duration)
        .await;
    let series_from = bench.rss_series.lock().expect("lock").len();
    load.set_slow_mode(SlowMode::Stalled);
    let slowed = load
        .run_phase("slow", args.load.rate, args.load.duration)
        .await;
    let slow_members = (slow_per_room * args.load.rooms) as u64;
    load.drain_slow(slow_members).await;
    let outcomes = &load.slow_outcomes;
    let (cut, other, open) = (
        outcomes.closed_4001.load(Relaxed),
        outcomes.closed_other.load(Relaxed),
        outcomes.still_open.load(Relaxed),
    );
    let series: Vec<(f64, u64)> = bench.rss_series.lock().expect("lock")[series_from..].to_vec();
    load.close().await;

    let mut facts = Facts::default();
    facts.add("slow members", slow_members);
    facts.add("slow closed with 4001", cut);
    facts.add("slow closed otherwise", other);
    facts.add("slow still open after the run", open);
    let (p99_before, p99_after) = (baseline.latency.p99_us, slowed.latency.p99_us);
    facts.add("others p99 ms baseline", p99_before as f64 / 1000.0);
    facts.add("others p99 ms with slow members", p99_after as f64 / 1000.0);
    if p99_before > 0 {
        facts.add(
            "others p99 change %",
            (p99_after as f64 - p99_before as f64) / p99_before as f64 * 100.0,
        );
    }
    if let (Some(first), Some(peak)) = (series.first(), series.iter().map(|s| s.1).max()) {
        facts.add("server RSS KiB at stall", first.1);
        facts.add("server RSS KiB peak while stalled", peak);
        facts.add(
            "server RSS KiB every second while stalled",
            json!(series.iter().map(|s| s.1).collect::<Vec<_>>()),
        );
    }
    let mut notes = Vec::new();
    if open > 0 {
        notes.push(format!(
            "{open} slow members were never closed: the load may be too short for their queue \
             (1,024 frames) plus kernel buffers to fill; raise --rate or --duration"
        ));
    }
    Ok(("slow", params, vec![baseline, slowed], facts, notes))
}
