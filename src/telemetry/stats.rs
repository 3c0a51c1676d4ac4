//! Always-on figures for the admin view: process-wide atomics that the same recording calls
//! as the Prometheus metrics feed (see [`super::metrics`]), whether or not `--metrics-addr` is
//! set, plus a sampler that turns them into rates and a recent delivery p99.
//!
//! Recording is one relaxed atomic add (a write batch's latency: two), with no lock or
//! allocation; only a rate-limit refusal, off the happy path, takes a small lock. The figures
//! are per process: a cluster's admin view shows the node it is served by.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::metrics::DISCONNECT_REASONS;

/// Upper bounds of the delivery-latency buckets, in microseconds; one more bucket counts
/// everything slower. Coarse on purpose: the view shows "p99 ≤ 5 ms", not a precise figure.
const LATENCY_BOUNDS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];
const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// How far back rates and the p99 look.
pub const WINDOW: Duration = Duration::from_secs(10);
/// How often the sampler keeps a point.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

struct Counters {
    connections: AtomicI64,
    messages_stored: AtomicU64,
    deliveries: AtomicU64,
    disconnects: [AtomicU64; DISCONNECT_REASONS.len()],
    latency: [AtomicU64; BUCKETS],
}

static COUNTERS: Counters = Counters {
    connections: AtomicI64::new(0),
    messages_stored: AtomicU64::new(0),
    deliveries: AtomicU64::new(0),
    disconnects: [const { AtomicU64::new(0) }; DISCONNECT_REASONS.len()],
    latency: [const { AtomicU64::new(0) }; BUCKETS],
};

static RATE_LIMITED: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

/// The sampler's recent points, oldest first: at most one per [`SAMPLE_EVERY`], spanning a
/// little more than [`WINDOW`].
static SAMPLES: Mutex<VecDeque<Sample>> = Mutex::new(VecDeque::new());

pub(super) fn connection_opened() {
    COUNTERS.connections.fetch_add(1, Ordering::Relaxed);
}

pub(super) fn connection_closed(reason: &'static str) {
    COUNTERS.connections.fetch_sub(1, Ordering::Relaxed);
    let index = DISCONNECT_REASONS
        .iter()
        .position(|known| *known == reason)
        .unwrap_or(DISCONNECT_REASONS.len() - 1);
    COUNTERS.disconnects[index].fetch_add(1, Ordering::Relaxed);
}

pub(super) fn stored(messages: usize) {
    COUNTERS
        .messages_stored
        .fetch_add(messages as u64, Ordering::Relaxed);
}

pub(super) fn delivered(frames: usize) {
    COUNTERS
        .deliveries
        .fetch_add(frames as u64, Ordering::Relaxed);
}

pub(super) fn delivery_latency(took: Duration) {
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    let bucket = LATENCY_BOUNDS_US.partition_point(|bound| *bound < micros);
    COUNTERS.latency[bucket].fetch_add(1, Ordering::Relaxed);
}

pub(super) fn rate_limited(action: &'static str) {
    *RATE_LIMITED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(action)
        .or_default() += 1;
}

/// The cumulative counters at one moment.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    messages_stored: u64,
    deliveries: u64,
    latency: [u64; BUCKETS],
}

impl Sample {
    fn now() -> Self {
        Self {
            at: Instant::now(),
            messages_stored: COUNTERS.messages_stored.load(Ordering::Relaxed),
            deliveries: COUNTERS.deliveries.load(Ordering::Relaxed),
            latency: std::array::from_fn(|i| COUNTERS.latency[i].load(Ordering::Relaxed)),
        }
    }
}

/// Keeps a point for the rates, at most one per [`SAMPLE_EVERY`] whoever calls (several
/// servers in one process share the counters, and each runs a sampler).
pub fn sample() {
    let mut samples = SAMPLES.lock().unwrap_or_else(PoisonError::into_inner);
    let now = Sample::now();
    if samples
        .back()
        .is_some_and(|last| now.at.duration_since(last.at) < SAMPLE_EVERY - SAMPLE_EVERY / 10)
    {
        return;
    }
    while samples
        .front()
        .is_some_and(|first| now.at.duration_since(first.at) > WINDOW + SAMPLE_EVERY)
    {
        samples.pop_front();
    }
    samples.push_back(now);
}

/// Calls [`sample`] every [`SAMPLE_EVERY`] until `stop` is cancelled.
pub async fn run_sampler(stop: tokio_util::sync::CancellationToken) {
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => sample(),
        }
    }
}

/// What the admin view shows of this process's traffic.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Traffic {
    /// Open WebSocket connections.
    pub connections: i64,
    /// Messages and events stored since start.
    pub messages_stored: u64,
    /// Message frames taken for writing to connections since start.
    pub deliveries: u64,
    /// Over the last [`WINDOW`] (or since start, if shorter).
    pub messages_per_s: f64,
    pub deliveries_per_s: f64,
    /// The upper bound of the latency bucket holding the 99th percentile of write batches
    /// over the window, in ms; `None` when nothing was delivered in it.
    pub delivery_p99_ms: Option<f64>,
    /// Disconnects since start, by reason (every reason listed, zeros included).
    pub disconnects: BTreeMap<&'static str, u64>,
    /// Requests refused by a rate limit since start, by action (only actions that were).
    pub rate_limited: BTreeMap<&'static str, u64>,
}

/// The figures now, with rates over the sampler's window ending now.
pub fn traffic() -> Traffic {
    let now = Sample::now();
    let oldest = SAMPLES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|sample| now.at.duration_since(sample.at) <= WINDOW + SAMPLE_EVERY / 2)
        .cloned();
    let (messages_per_s, deliveries_per_s, delivery_p99_ms) = match oldest {
        Some(oldest) if now.at > oldest.at => {
            let seconds = now.at.duration_since(oldest.at).as_secs_f64();
            let rate = |to: u64, from: u64| to.saturating_sub(from) as f64 / seconds;
            let recent: [u64; BUCKETS] =
                std::array::from_fn(|i| now.latency[i].saturating_sub(oldest.latency[i]));
            (
                rate(now.messages_stored, oldest.messages_stored),
                rate(now.deliveries, oldest.deliveries),
                p99_ms(&recent),
            )
        }
        _ => (0.0, 0.0, None),
    };
    Traffic {
        connections: COUNTERS.connections.load(Ordering::Relaxed).max(0),
        messages_stored: now.messages_stored,
        deliveries: now.deliveries,
        messages_per_s,
        deliveries_per_s,
        delivery_p99_ms,
        disconnects: DISCONNECT_REASONS
            .iter()
            .zip(&COUNTERS.disconnects)
            .map(|(reason, count)| (*reason, count.load(Ordering::Relaxed)))
            .collect(),
        rate_limited: RATE_LIMITED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    }
}

/// The bucket bound (ms) under which 99% of `counts` fall; past the last bound, the last
/// bound (the figure is "at least that").
fn p99_ms(counts: &[u64; BUCKETS]) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let wanted = total - total / 100;
    let mut seen = 0;
    for (i, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= wanted {
            let bound = LATENCY_BOUNDS_US[i.min(LATENCY_BOUNDS_US.len() - 1)];
            return Some(bound as f64 / 1000.0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_p99_is_the_bucket_holding_the_99th_percentile() {
        let mut counts = [0; BUCKETS];
        assert_eq!(p99_ms(&counts), None);
        counts[0] = 99; // ≤ 0.5 ms
        counts[3] = 1; // ≤ 5 ms
        assert_eq!(p99_ms(&counts), Some(0.5));
        counts[3] = 2;
        assert_eq!(p99_ms(&counts), Some(5.0));
        counts[BUCKETS - 1] = 1_000; // slower than the last bound
        assert_eq!(p99_ms(&counts), Some(10_000.0));
    }

    #[test]
    fn latencies_fall_in_the_first_bucket_at_or_above_them() {
        let bucket = |micros| LATENCY_BOUNDS_US.partition_point(|bound| *bound < micros);
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(500), 0);
        assert_eq!(bucket(501), 1);
        assert_eq!(bucket(20_000_000), BUCKETS - 1);
    }
}
