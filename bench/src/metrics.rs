//! What the clients observe, shared by all of them: counters, the latency histogram, and the
//! per-receiver check that every `seq` arrives exactly once.
//!
//! Counters are relaxed atomics: each is only ever summed, and phases are separated by a
//! drain, so no ordering between them is needed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in µs up to this bound (60 s); longer ones are clamped to it.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Independent histograms, so thousands of receivers on a few threads rarely contend for one
/// lock; a snapshot merges them. One histogram per receiver would cost ~100 KiB each.
const SHARDS: usize = 16;

/// Counters shared by every client of a run.
#[derive(Debug, Default)]
pub struct Counters {
    pub connected: AtomicU64,
    pub connect_failed: AtomicU64,
    /// Bench messages written by senders.
    pub sent: AtomicU64,
    /// Deliveries those messages owe: each send adds its room's tracked member count.
    pub expected: AtomicU64,
    /// Distinct (receiver, seq) pairs received.
    pub received: AtomicU64,
    /// A seq the receiver had already seen.
    pub duplicated: AtomicU64,
    /// A seq lower than one the receiver already saw (the protocol promises seq order).
    pub out_of_order: AtomicU64,
    /// `error` frames received.
    pub error_frames: AtomicU64,
    /// Tracked connections the server closed with 4001 (too slow).
    pub closed_4001: AtomicU64,
    /// Tracked connections that ended any other way before the run did.
    pub closed_other: AtomicU64,
}

/// A copy of the counters at one moment; phases subtract two of these.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Counts {
    pub sent: u64,
    pub expected: u64,
    pub received: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub error_frames: u64,
    pub closed_4001: u64,
    pub closed_other: u64,
}

impl Counters {
    pub fn counts(&self) -> Counts {
        Counts {
            sent: self.sent.load(Relaxed),
            expected: self.expected.load(Relaxed),
            received: self.received.load(Relaxed),
            duplicated: self.duplicated.load(Relaxed),
            out_of_order: self.out_of_order.load(Relaxed),
            error_frames: self.error_frames.load(Relaxed),
            closed_4001: self.closed_4001.load(Relaxed),
            closed_other: self.closed_other.load(Relaxed),
        }
    }
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, before: Counts) -> Counts {
        Counts {
            sent: self.sent - before.sent,
            expected: self.expected - before.expected,
            received: self.received - before.received,
            duplicated: self.duplicated - before.duplicated,
            out_of_order: self.out_of_order - before.out_of_order,
            error_frames: self.error_frames - before.error_frames,
            closed_4001: self.closed_4001 - before.closed_4001,
            closed_other: self.closed_other - before.closed_other,
        }
    }
}

/// Latency in µs, sharded (see [`SHARDS`]).
pub struct Latencies {
    shards: Box<[Mutex<Histogram<u64>>]>,
}

impl Default for Latencies {
    fn default() -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect();
        Latencies { shards }
    }
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

impl Latencies {
    /// Records one latency; `shard` is any number stable per client (its index).
    pub fn record(&self, shard: usize, micros: u64) {
        let mut histogram = self.shards[shard % SHARDS].lock().expect("histogram lock");
        histogram.saturating_record(micros.clamp(1, MAX_LATENCY_US));
    }

    /// All shards merged.
    pub fn snapshot(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for shard in self.shards.iter() {
            all.add(&*shard.lock().expect("histogram lock"))
                .expect("same bounds");
        }
        all
    }

    /// Empties every shard, at the start of a phase.
    pub fn reset(&self) {
        for shard in self.shards.iter() {
            shard.lock().expect("histogram lock").reset();
        }
    }
}

/// Percentiles of a histogram, µs.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

/// What happened to one received seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    New,
    /// New, but lower than a seq already received.
    NewOutOfOrder,
    Duplicate,
}

/// Which seqs of its room one receiver has seen, as a bitset from the seq it joined at.
/// Exact (a late arrival is not mistaken for a duplicate) and small: 1 bit per message of the
/// room, so 100k messages in a 1,000-member room cost 12 MB in all.
#[derive(Debug)]
pub struct SeqTracker {
    /// `last_seq` from `joined`: seqs at or below it came with the join, not live.
    base: u64,
    bits: Vec<u64>,
    max_seen: u64,
}

impl SeqTracker {
    pub fn new(base: u64) -> Self {
        SeqTracker {
            base,
            bits: Vec::new(),
            max_seen: base,
        }
    }

    pub fn record(&mut self, seq: u64) -> Seen {
        if seq <= self.base {
            // Already part of the joined backlog: a live repeat of it is a duplicate.
            return Seen::Duplicate;
        }
        let offset = (seq - self.base - 1) as usize;
        let (word, bit) = (offset / 64, 1u64 << (offset % 64));
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & bit != 0 {
            return Seen::Duplicate;
        }
        self.bits[word] |= bit;
        if seq < self.max_seen {
            Seen::NewOutOfOrder
        } else {
            self.max_seen = seq;
            Seen::New
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_seqs_are_new_and_repeats_are_duplicates() {
        let mut t = SeqTracker::new(10);
        assert_eq!(t.record(11), Seen::New);
        assert_eq!(t.record(12), Seen::New);
        assert_eq!(t.record(12), Seen::Duplicate);
        assert_eq!(t.record(10), Seen::Duplicate);
    }

    #[test]
    fn a_late_seq_is_out_of_order_not_a_duplicate() {
        let mut t = SeqTracker::new(0);
        assert_eq!(t.record(1), Seen::New);
        assert_eq!(t.record(200), Seen::New);
        assert_eq!(t.record(2), Seen::NewOutOfOrder);
        assert_eq!(t.record(2), Seen::Duplicate);
    }

    #[test]
    fn phase_counts_subtract() {
        let a = Counts {
            sent: 5,
            received: 50,
            ..Counts::default()
        };
        let b = Counts {
            sent: 8,
            received: 80,
            ..Counts::default()
        };
        let d = b - a;
        assert_eq!((d.sent, d.received), (3, 30));
    }

    #[test]
    fn latency_summary_reads_percentiles() {
        let lat = Latencies::default();
        for us in 1..=1000 {
            lat.record(us as usize, us);
        }
        let s = LatencySummary::of(&lat.snapshot());
        assert_eq!(s.count, 1000);
        assert!((495..=505).contains(&s.p50_us));
        assert!((985..=995).contains(&s.p99_us));
        assert_eq!(s.max_us, 1000);
    }
}
