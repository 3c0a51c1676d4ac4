//! What confab tells its operators: log lines ([`logs`]: text or JSON, one line per connection
//! opened and closed) and Prometheus metrics ([`metrics`]: counters and histograms recorded on
//! the hot paths, rendered by the metrics listener in `http::metrics`), and the always-on
//! figures of the admin view ([`stats`]), fed by the same recording calls.
//!
//! Imports nothing else of ours, so every layer (edges, rooms, brokers, limits) may record.

pub mod logs;
pub mod metrics;
pub mod stats;
