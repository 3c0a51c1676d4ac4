//! Retention (`--retention-days`) in the store: what a purge deletes, in SQL every backend
//! shares.
//!
//! A purge deletes, room by room, the **oldest run** of the room's stream whose items were all
//! stored before the horizon: every seq up to (not including) the first item stored at or after
//! it. So what is left of a room is always a gapless run of seqs up to its last one, and `since`
//! stays exact: a cursor inside the purged run gets `truncated: true` and the first seq kept. An
//! item out of clock order (a node's clock behind) ends the run early rather than leaving a hole.
//!
//! With a message go its reactions (the `reactions` rows) and the events before the cut, which
//! are about messages before it too. Events after the cut about a purged message (an edit today
//! of a message from last year) stay: they are part of the stream a resuming client may need,
//! and a client that does not know their target ignores them. A reply keeps its `reply_to`
//! when the message it answers is purged; the original is simply not found any more.
//!
//! Each room's counter (`rooms.last_seq`) is never touched: seqs are never reused, even in a
//! room purged empty. The search index follows the rows it indexes (a trigger on SQLite, the
//! expression index on PostgreSQL).
//!
//! Deletion runs in transactions of at most `batch` items, pausing between them, so the writer
//! (which needs SQLite's one write lock, or PostgreSQL's row locks on nothing we touch) waits at
//! most one batch.

use std::time::Duration;

/// Pause between two batches: long enough for a writer waiting on SQLite's busy handler (which
/// retries every few to 100 ms) to get the write lock in between.
pub(crate) const PAUSE: Duration = Duration::from_millis(50);

/// `$1` after (a room name), `$2` limit: rooms in name order, a page at a time.
pub(crate) const ROOMS: &str = "SELECT name FROM rooms WHERE name > $1 ORDER BY name LIMIT $2";
/// `$1` room: its oldest item's seq and time.
pub(crate) const OLDEST: &str = "SELECT seq, ts FROM messages WHERE room = $1 ORDER BY seq LIMIT 1";
/// `$1` room, `$2` horizon: the first item stored at or after the horizon (the first kept).
pub(crate) const FIRST_KEPT: &str =
    "SELECT seq FROM messages WHERE room = $1 AND ts >= $2 ORDER BY seq LIMIT 1";
/// `$1` room: its newest item.
pub(crate) const NEWEST: &str =
    "SELECT seq FROM messages WHERE room = $1 ORDER BY seq DESC LIMIT 1";
/// `$1` room, `$2` cut, `$3` batch − 1: the last seq of the next batch, if the batch is full.
pub(crate) const BATCH_END: &str = "SELECT seq FROM messages WHERE room = $1 AND seq <= $2
     ORDER BY seq LIMIT 1 OFFSET $3";
/// `$1` room, `$2` up to: reactions to the purged messages.
pub(crate) const DELETE_REACTIONS: &str = "DELETE FROM reactions WHERE room = $1 AND target <= $2";
/// `$1` room, `$2` up to: the purged items.
pub(crate) const DELETE_ITEMS: &str = "DELETE FROM messages WHERE room = $1 AND seq <= $2";

/// Rooms read per page while a purge walks them.
pub(crate) const ROOMS_PAGE: i64 = 500;

/// The purge, for a backend whose connection `$conn` (a `&mut` sqlx connection, held for the
/// whole purge) runs the SQL above. Evaluates to `Result<u64, StoreError>`: items deleted.
macro_rules! purge_with {
    ($conn:expr, $horizon:expr, $batch:expr) => {{
        use sqlx::Acquire as _;
        use $crate::store::retention as sql;
        let conn = $conn;
        let horizon: i64 = $horizon;
        let batch = i64::from(std::cmp::max($batch, 1u32));
        let mut deleted: u64 = 0;
        let mut after = String::new();
        loop {
            let rooms: Vec<String> = sqlx::query_scalar(sql::ROOMS)
                .bind(&after)
                .bind(sql::ROOMS_PAGE)
                .fetch_all(&mut *conn)
                .await?;
            let Some(last) = rooms.last() else {
                break;
            };
            after = last.clone();
            for room in &rooms {
                let oldest: Option<(i64, i64)> = sqlx::query_as(sql::OLDEST)
                    .bind(room)
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some((oldest, oldest_ts)) = oldest else {
                    continue;
                };
                if oldest_ts >= horizon {
                    continue; // the common case: nothing of this room is that old
                }
                let first_kept: Option<i64> = sqlx::query_scalar(sql::FIRST_KEPT)
                    .bind(room)
                    .bind(horizon)
                    .fetch_optional(&mut *conn)
                    .await?;
                let cut = match first_kept {
                    Some(first_kept) => first_kept - 1,
                    None => sqlx::query_scalar(sql::NEWEST)
                        .bind(room)
                        .fetch_optional(&mut *conn)
                        .await?
                        .unwrap_or(oldest),
                };
                loop {
                    let end: Option<i64> = sqlx::query_scalar(sql::BATCH_END)
                        .bind(room)
                        .bind(cut)
                        .bind(batch - 1)
                        .fetch_optional(&mut *conn)
                        .await?;
                    let end = end.unwrap_or(cut);
                    let mut tx = (&mut *conn).begin().await?;
                    sqlx::query(sql::DELETE_REACTIONS)
                        .bind(room)
                        .bind(end)
                        .execute(&mut *tx)
                        .await?;
                    let gone = sqlx::query(sql::DELETE_ITEMS)
                        .bind(room)
                        .bind(end)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    tx.commit().await?;
                    deleted += gone;
                    if end >= cut {
                        break;
                    }
                    tokio::time::sleep(sql::PAUSE).await;
                }
                tokio::time::sleep(sql::PAUSE).await;
            }
        }
        Ok::<u64, $crate::store::StoreError>(deleted)
    }};
}
pub(crate) use purge_with;
