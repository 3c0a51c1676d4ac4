//! Prometheus metrics through the `metrics` facade, recorded into
//! `metrics-exporter-prometheus`'s recorder once `--metrics-addr` installs it.
//!
//! The hot paths (a delivery, a commit) use handles looked up once at install time and kept in
//! a `static`: recording is an atomic add (counters) or a lock-free push (histograms), with no
//! name lookup, lock or allocation per event. Until [`install`] runs (metrics off, the
//! default) the Prometheus side of every recording function is one atomic load that finds
//! nothing. Each also feeds the admin view's always-on counters ([`super::stats`]).
//!
//! The recorder is process-wide (the facade has one global recorder), so several servers in
//! one process (tests) share one set of figures.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Why a WebSocket connection ended: the `reason` of `confab_disconnects_total` and of the
/// connection's close log line. Every one is registered at install, so each series exists
/// (at 0) before its first event and `rate()` over it is defined.
pub const DISCONNECT_REASONS: &[&str] = &[
    "idle",
    "stalled",
    "resync",
    "rate_limited",
    "shutdown",
    "client",
    "vanished",
    "revoked",
    "protocol",
    "admin",
    "banned",
    // Kept last: the admin view's counters file unknown reasons here.
    "other",
];

/// Bucket bounds of every histogram, in seconds: from half a millisecond (a local fan-out, a
/// small SQLite commit) to the ten seconds after which a batch is given up.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The handles the hot paths record through.
struct Handles {
    connections: Gauge,
    messages_stored: Counter,
    deliveries: Counter,
    store_batch: Histogram,
    delivery: Histogram,
    broker_publish: Histogram,
}

static HANDLES: OnceLock<Handles> = OnceLock::new();
/// The installed recorder's handle; a mutex (not a `OnceLock`) because installing can fail and
/// must then be retryable. Taken only at install.
static INSTALLED: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

#[derive(Debug, thiserror::Error)]
#[error("cannot install the metrics recorder: {0}")]
pub struct InstallError(String);

/// Installs the Prometheus recorder (once per process; later calls return the same handle)
/// and registers every metric confab records.
pub fn install() -> Result<PrometheusHandle, InstallError> {
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|error| InstallError(error.to_string()))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|error| InstallError(error.to_string()))?;
    describe();
    let _ = HANDLES.set(Handles {
        connections: metrics::gauge!("confab_connections"),
        messages_stored: metrics::counter!("confab_messages_stored_total"),
        deliveries: metrics::counter!("confab_deliveries_total"),
        store_batch: metrics::histogram!("confab_store_batch_seconds"),
        delivery: metrics::histogram!("confab_delivery_seconds"),
        broker_publish: metrics::histogram!("confab_broker_publish_seconds"),
    });
    for reason in DISCONNECT_REASONS {
        metrics::counter!("confab_disconnects_total", "reason" => *reason).absolute(0);
    }
    metrics::gauge!("confab_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    *installed = Some(handle.clone());
    Ok(handle)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "confab_connections",
        "Open WebSocket connections on this node."
    );
    describe_gauge!(
        "confab_rooms_active",
        "Rooms with at least one member, as this node sees them (read at scrape time)."
    );
    describe_gauge!(
        "confab_members_online",
        "Members of those rooms, summed over rooms (read at scrape time)."
    );
    describe_gauge!(
        "confab_room_logs_bytes",
        Unit::Bytes,
        "Bytes the rooms' logs of recent messages hold together (read at scrape time)."
    );
    describe_gauge!(
        "confab_search_index_behind",
        "Messages and events stored but not yet in the search index (SQLite only)."
    );
    describe_counter!(
        "confab_messages_stored_total",
        "Messages and events this node's writer committed."
    );
    describe_counter!(
        "confab_deliveries_total",
        "Message frames taken for writing to this node's WebSocket connections."
    );
    describe_counter!(
        "confab_disconnects_total",
        "WebSocket connections ended, by reason."
    );
    describe_counter!(
        "confab_rate_limited_total",
        "Requests refused by a rate limit, by action."
    );
    describe_histogram!(
        "confab_store_batch_seconds",
        Unit::Seconds,
        "Time to store one group-commit batch."
    );
    describe_histogram!(
        "confab_delivery_seconds",
        Unit::Seconds,
        "From a message entering its room's log (just after its commit) to the end of the socket write that carried it; one sample per write batch, its oldest message."
    );
    describe_histogram!(
        "confab_broker_publish_seconds",
        Unit::Seconds,
        "Time to publish one committed batch to Redis (cluster only)."
    );
    describe_gauge!("confab_build_info", "Always 1; the version is a label.");
}

fn handles() -> Option<&'static Handles> {
    HANDLES.get()
}

/// A WebSocket connection opened.
pub fn connection_opened() {
    super::stats::connection_opened();
    if let Some(m) = handles() {
        m.connections.increment(1.0);
    }
}

/// A WebSocket connection ended, for `reason` (one of [`DISCONNECT_REASONS`]).
pub fn connection_closed(reason: &'static str) {
    super::stats::connection_closed(reason);
    if let Some(m) = handles() {
        m.connections.decrement(1.0);
        // Once per connection, not per message: the label lookup is affordable here.
        metrics::counter!("confab_disconnects_total", "reason" => reason).increment(1);
    }
}

/// One batch committed, `stored` of its messages newly stored, in `took`.
pub fn batch_stored(stored: usize, took: Duration) {
    super::stats::stored(stored);
    if let Some(m) = handles() {
        m.messages_stored.increment(stored as u64);
        m.store_batch.record(took);
    }
}

/// `frames` room messages taken for writing to one connection.
pub fn delivered(frames: usize) {
    super::stats::delivered(frames);
    if let Some(m) = handles() {
        m.deliveries.increment(frames as u64);
    }
}

/// How long the oldest message of a write batch took from its room's log to the socket.
pub fn delivery_latency(took: Duration) {
    super::stats::delivery_latency(took);
    if let Some(m) = handles() {
        m.delivery.record(took);
    }
}

/// One batch published to the other nodes in `took`.
pub fn broker_published(took: Duration) {
    if let Some(m) = handles() {
        m.broker_publish.record(took);
    }
}

/// A request for `action` was refused by its rate limit.
pub fn rate_limited(action: &'static str) {
    super::stats::rate_limited(action);
    if handles().is_some() {
        metrics::counter!("confab_rate_limited_total", "action" => action).increment(1);
    }
}

/// How many log positions the search index has still to reach (SQLite's indexer).
pub fn set_search_index_behind(positions: i64) {
    if handles().is_some() {
        metrics::gauge!("confab_search_index_behind").set(positions.max(0) as f64);
    }
}

/// Sets the gauges read at scrape time: rooms with someone in them, their members, and what
/// the rooms' logs hold.
pub fn set_rooms(rooms_active: usize, members_online: u64, log_bytes: usize) {
    if handles().is_some() {
        metrics::gauge!("confab_rooms_active").set(rooms_active as f64);
        metrics::gauge!("confab_members_online").set(members_online as f64);
        metrics::gauge!("confab_room_logs_bytes").set(log_bytes as f64);
    }
}
