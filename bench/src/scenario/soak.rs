//! `soak`: issue 10's soak. A `rooms` load for `--minutes` while clients keep joining and
//! leaving (`--churn-rate` new connections per second, each staying `--churn-life` seconds),
//! sampled every `--sample-secs`: deliveries, deliveries still owed, duplicates, the
//! interval's p99, server RSS and the server's open file descriptors.
//!
//! The verdicts: nothing lost or duplicated at the end; server RSS flat after warm-up (drift
//! from the first sample after `--steady-after` to the last, and the spread in between); no
//! descriptor growth over the same stretch (churning clients keep about
//! churn-rate × churn-life descriptors open at any time, so small ups and downs are expected).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::{Bench, Outcome, joins, rooms};
use crate::cli::SoakArgs;
use crate::metrics::{LatencySummary, new_histogram};
use crate::procstat;
use crate::report::Facts;

/// One sample of the run.
#[derive(Debug, Clone, Serialize)]
struct Sample {
    /// Seconds since the measured load began.
    t: f64,
    deliveries_per_sec: f64,
    /// Deliveries due so far that have not arrived (in flight, or lost).
    owed: u64,
    duplicated: u64,
    out_of_order: u64,
    /// p99 of the deliveries in this interval, ms.
    p99_ms: f64,
    /// Client connections completed in this interval (the churn).
    connects: u64,
    rss_kib: Option<u64>,
    fds: Option<u64>,
}

pub async fn run(bench: &Arc<Bench>, args: &SoakArgs) -> anyhow::Result<Outcome> {
    let mut params = rooms::params(&args.load);
    params["minutes"] = json!(args.minutes);
    params["sample_secs"] = json!(args.sample_secs);
    params["steady_after"] = json!(args.steady_after);
    params["churn_rate"] = json!(args.churn_rate);
    params["churn_life"] = json!(args.churn_life);
    anyhow::ensure!(args.sample_secs >= 1.0, "--sample-secs must be at least 1");
    let mut load = rooms::open(bench, &args.load, 0, None).await;
    if args.load.warmup > 0.0 {
        load.run_phase("warm-up", args.load.rate, args.load.warmup)
            .await;
    }
    let churn = tokio::spawn(joins::drive_churn(
        bench.clone(),
        load.rooms.clone(),
        args.churn_rate,
        Duration::from_secs_f64(args.churn_life),
        Arc::new(Mutex::new(new_histogram())),
        Arc::new(Default::default()),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample(
        bench.clone(),
        Duration::from_secs_f64(args.sample_secs),
        stop.clone(),
    ));
    let phase = load
        .run_phase("soak", args.load.rate, args.minutes * 60.0)
        .await;
    // The last sample is taken while the churn still runs, so that it compares with the
    // others: stopping the churn closes its clients' descriptors.
    stop.store(true, Relaxed);
    let samples = sampler.await?;
    churn.abort();
    load.close().await;

    let mut facts = Facts::default();
    let mut notes = Vec::new();
    facts.add("samples", samples.len() as u64);
    if !steady_facts(&samples, args.steady_after, &mut facts) {
        notes.push(format!(
            "no RSS samples after --steady-after {} s (run longer, or give --spawn/--server-pid)",
            args.steady_after
        ));
    }
    facts.add(
        "churn connects",
        samples.iter().map(|s| s.connects).sum::<u64>(),
    );
    facts.add("series", json!(samples));
    Ok(("soak", params, vec![phase], facts, notes))
}

/// RSS drift and spread, and descriptor growth, from the first sample at or after
/// `steady_after` seconds to the last; false when there is no RSS sample in that stretch.
fn steady_facts(samples: &[Sample], steady_after: f64, facts: &mut Facts) -> bool {
    let steady: Vec<&Sample> = samples.iter().filter(|s| s.t >= steady_after).collect();
    let fds: Vec<u64> = steady.iter().filter_map(|s| s.fds).collect();
    if let (Some(&first), Some(&last)) = (fds.first(), fds.last()) {
        facts.add("server fds after warm-up", first);
        facts.add("server fds at the end", last);
        facts.add("server fd growth", last as f64 - first as f64);
        facts.add(
            "server fds max after warm-up",
            fds.iter().copied().max().unwrap_or(first),
        );
    }
    let rss: Vec<u64> = steady.iter().filter_map(|s| s.rss_kib).collect();
    let (Some(&first), Some(&last)) = (rss.first(), rss.last()) else {
        return false;
    };
    let min = rss.iter().copied().min().unwrap_or(first);
    let max = rss.iter().copied().max().unwrap_or(first);
    facts.add("server RSS KiB after warm-up", first);
    facts.add("server RSS KiB at the end", last);
    facts.add(
        "server RSS drift after warm-up %",
        (last as f64 - first as f64) / first as f64 * 100.0,
    );
    facts.add(
        "server RSS spread after warm-up %",
        (max as f64 - min as f64) / first as f64 * 100.0,
    );
    true
}

/// Samples every `every` until told to stop (and once more then).
async fn sample(bench: Arc<Bench>, every: Duration, stop: Arc<AtomicBool>) -> Vec<Sample> {
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut last_counts = bench.counters.counts();
    let mut last_connected = bench.counters.connected.load(Relaxed);
    let mut last_histogram = bench.latencies.snapshot();
    let mut last_at = start;
    loop {
        let wake = last_at + every;
        while Instant::now() < wake && !stop.load(Relaxed) {
            tokio::time::sleep(Duration::from_millis(200).min(every)).await;
        }
        let now = Instant::now();
        let counts = bench.counters.counts();
        let connected = bench.counters.connected.load(Relaxed);
        let histogram = bench.latencies.snapshot();
        let mut interval = histogram.clone();
        // The phase's histogram only grows; if it was reset meanwhile, use it whole.
        if interval.subtract(&last_histogram).is_err() {
            interval = histogram.clone();
        }
        let d = counts - last_counts;
        let usage = bench.server_usage();
        samples.push(Sample {
            t: now.duration_since(start).as_secs_f64(),
            deliveries_per_sec: d.received as f64 / now.duration_since(last_at).as_secs_f64(),
            owed: counts.expected.saturating_sub(counts.received),
            duplicated: counts.duplicated,
            out_of_order: counts.out_of_order,
            p99_ms: LatencySummary::of(&interval).p99_us as f64 / 1000.0,
            connects: connected - last_connected,
            rss_kib: usage.map(|u| u.rss_kib),
            fds: bench
                .server_pid
                .and_then(|pid| procstat::open_fds(pid).ok()),
        });
        bench.set_status(format!(
            "soak: {:.0} s, RSS {} KiB, fds {}",
            now.duration_since(start).as_secs_f64(),
            usage.map_or(0, |u| u.rss_kib),
            samples.last().and_then(|s| s.fds).unwrap_or(0)
        ));
        (last_counts, last_connected, last_histogram, last_at) =
            (counts, connected, histogram, now);
        if stop.load(Relaxed) {
            return samples;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, rss_kib: u64, fds: u64) -> Sample {
        Sample {
            t,
            deliveries_per_sec: 0.0,
            owed: 0,
            duplicated: 0,
            out_of_order: 0,
            p99_ms: 0.0,
            connects: 0,
            rss_kib: Some(rss_kib),
            fds: Some(fds),
        }
    }

    #[test]
    fn drift_and_fd_growth_are_measured_after_the_warm_up_only() {
        let samples = [
            sample(10.0, 500, 10),
            sample(60.0, 1000, 100),
            sample(90.0, 1100, 104),
            sample(120.0, 1050, 101),
        ];
        let mut facts = Facts::default();
        assert!(steady_facts(&samples, 60.0, &mut facts));
        assert_eq!(facts.number("server RSS KiB after warm-up"), Some(1000.0));
        assert_eq!(facts.number("server RSS drift after warm-up %"), Some(5.0));
        assert_eq!(
            facts.number("server RSS spread after warm-up %"),
            Some(10.0)
        );
        assert_eq!(facts.number("server fd growth"), Some(1.0));
        assert_eq!(facts.number("server fds max after warm-up"), Some(104.0));
    }

    #[test]
    fn a_run_shorter_than_its_warm_up_has_no_drift() {
        let mut facts = Facts::default();
        assert!(!steady_facts(&[sample(5.0, 1, 1)], 60.0, &mut facts));
        assert_eq!(facts.number("server RSS drift after warm-up %"), None);
    }
}
