//! `--retention-days N`: a background task that deletes what is older than N days, once at
//! start and then every few minutes, through [`Store::purge_before`] (which says exactly what
//! goes, in batches that never hold the writer up for long).
//!
//! What a server still holds in memory is not purged with the rows: a room's recent log may
//! keep a purged message until newer ones push it out, and a `join {since}` served from that
//! log lists it. That is still exact (every item after `since`, once); retention is a bound on
//! what is kept on disk, not a promise that a message vanishes from every cache at the
//! horizon.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// How often the purge runs after the first one at start.
const EVERY: Duration = Duration::from_secs(5 * 60);
/// Items per delete transaction, which holds SQLite's write lock (and so may hold the message
/// writer up) for as long as it runs. Keeping the full-text index in step costs most of it:
/// on the 2-core test machine a debug build (SQLite unoptimised) took about 0.9 ms per item,
/// so 200 items stay near 0.2 s there and a small fraction of that in a release build.
pub const BATCH: u32 = 200;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Runs until `stop`: purges everything older than `days` days now, then every [`EVERY`].
/// A purge in progress when `stop` fires is abandoned (its current batch rolls back).
pub async fn run(store: Arc<dyn Store>, days: u32, stop: CancellationToken) {
    loop {
        let horizon = now_ms() - i64::from(days) * DAY_MS;
        tokio::select! {
            () = stop.cancelled() => return,
            purged = store.purge_before(horizon, BATCH) => match purged {
                Ok(0) => tracing::debug!(days, "retention: nothing to purge"),
                Ok(items) => tracing::info!(days, items, "retention: purged old messages"),
                Err(error) => tracing::warn!(%error, "retention: purge failed, retrying later"),
            },
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
