//! The embedded default: SQLite in WAL mode in the data folder. One connection writes (SQLite
//! has one writer anyway, and a single owner never meets `SQLITE_BUSY`); a small pool reads
//! concurrently beside it, which WAL allows.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{Appended, NewMessage, Page, Store, StoreError, message_from_row, page_from_rows};
use crate::domain::{Message, RoomName};

const DATABASE_FILE: &str = "confab.db";
const READERS: u32 = 4;

pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) `confab.db` in `data_dir` and brings its schema up to date.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(DATABASE_FILE);
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL loses nothing on a process crash (kill -9): a commit is in the
            // WAL file before it returns. Only an OS crash or power cut can drop the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { writer, readers })
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

/// Rows per multi-row INSERT: 8 parameters each, well under SQLite's 32,766.
const ROWS_PER_INSERT: usize = 256;

async fn last_seq(tx: &mut Tx, room: &RoomName) -> Result<i64, StoreError> {
    let last: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM rooms WHERE name = ?")
        .bind(room.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(last.unwrap_or(0))
}

async fn save_counter(
    tx: &mut Tx,
    room: &RoomName,
    last_seq: i64,
    ts: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO rooms (name, last_seq, created_at, last_active) VALUES (?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE
         SET last_seq = excluded.last_seq, last_active = excluded.last_active",
    )
    .bind(room.as_str())
    .bind(last_seq)
    .bind(ts)
    .bind(ts)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn stored(new: &NewMessage, seq: i64) -> Appended {
    Appended::Stored(Message {
        room: new.room.clone(),
        seq: u64::try_from(seq).unwrap_or_default(),
        id: new.id.clone(),
        ts: new.ts,
        user: new.user.clone(),
        text: new.text.clone(),
        client_id: new.client_id.as_str().to_owned(),
    })
}

/// Stores the whole batch assuming no client_id repeats; `None` if one did (nothing to keep).
async fn append_at_once(
    tx: &mut Tx,
    batch: &[NewMessage],
) -> Result<Option<Vec<Appended>>, StoreError> {
    let mut next: HashMap<&RoomName, (i64, i64)> = HashMap::new();
    let mut seqs = Vec::with_capacity(batch.len());
    for new in batch {
        let entry = match next.get_mut(&new.room) {
            Some(entry) => entry,
            None => {
                let last = last_seq(tx, &new.room).await?;
                next.entry(&new.room).or_insert((last + 1, new.ts))
            }
        };
        seqs.push(entry.0);
        *entry = (entry.0 + 1, new.ts);
    }
    let mut inserted = 0;
    for (rows, seqs) in batch
        .chunks(ROWS_PER_INSERT)
        .zip(seqs.chunks(ROWS_PER_INSERT))
    {
        let mut sql = String::from(
            "INSERT INTO messages (room, seq, id, ts, user_id, user_name, text, client_id) VALUES ",
        );
        for i in 0..rows.len() {
            sql.push_str(if i == 0 {
                "(?, ?, ?, ?, ?, ?, ?, ?)"
            } else {
                ", (?, ?, ?, ?, ?, ?, ?, ?)"
            });
        }
        sql.push_str(" ON CONFLICT (room, user_id, client_id) DO NOTHING");
        // Only placeholders are spliced in; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (new, seq) in rows.iter().zip(seqs) {
            query = query
                .bind(new.room.as_str())
                .bind(*seq)
                .bind(&new.id)
                .bind(new.ts)
                .bind(new.user.id.as_str())
                .bind(new.user.name.as_str())
                .bind(&new.text)
                .bind(new.client_id.as_str());
        }
        inserted += query.execute(&mut **tx).await?.rows_affected();
    }
    if inserted != batch.len() as u64 {
        return Ok(None);
    }
    for (room, (next, ts)) in next {
        save_counter(tx, room, next - 1, ts).await?;
    }
    Ok(Some(
        batch
            .iter()
            .zip(seqs)
            .map(|(new, seq)| stored(new, seq))
            .collect(),
    ))
}

/// Row by row: slower, but tells a stored message from a repeated client_id.
async fn append_one_by_one(tx: &mut Tx, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
    // Per room touched by this batch: the next seq, and the time of its newest stored
    // message if any was stored (duplicates move nothing). Read once, written back once.
    let mut next_seq: HashMap<&RoomName, (i64, Option<i64>)> = HashMap::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    for new in batch {
        let next = match next_seq.get(&new.room) {
            Some(&(next, _)) => next,
            None => {
                let last: Option<i64> =
                    sqlx::query_scalar("SELECT last_seq FROM rooms WHERE name = ?")
                        .bind(new.room.as_str())
                        .fetch_optional(&mut **tx)
                        .await?;
                last.unwrap_or(0) + 1
            }
        };
        let inserted = sqlx::query(
            "INSERT INTO messages (room, seq, id, ts, user_id, user_name, text, client_id)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (room, user_id, client_id) DO NOTHING",
        )
        .bind(new.room.as_str())
        .bind(next)
        .bind(&new.id)
        .bind(new.ts)
        .bind(new.user.id.as_str())
        .bind(new.user.name.as_str())
        .bind(&new.text)
        .bind(new.client_id.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            next_seq.insert(&new.room, (next + 1, Some(new.ts)));
            outcomes.push(Appended::Stored(Message {
                room: new.room.clone(),
                seq: u64::try_from(next).unwrap_or_default(),
                id: new.id.clone(),
                ts: new.ts,
                user: new.user.clone(),
                text: new.text.clone(),
                client_id: new.client_id.as_str().to_owned(),
            }));
        } else {
            // Keep the counter as it was: a duplicate takes no seq.
            let ts = next_seq.get(&new.room).and_then(|&(_, ts)| ts);
            next_seq.insert(&new.room, (next, ts));
            let row = sqlx::query(
                "SELECT seq, id, ts, user_id, user_name, text, client_id FROM messages
                     WHERE room = ? AND user_id = ? AND client_id = ?",
            )
            .bind(new.room.as_str())
            .bind(new.user.id.as_str())
            .bind(new.client_id.as_str())
            .fetch_one(&mut **tx)
            .await?;
            outcomes.push(Appended::Duplicate(message_from_row(&new.room, &row)?));
        }
    }
    for (room, (next, ts)) in next_seq {
        let Some(ts) = ts else {
            continue; // only duplicates: nothing moved
        };
        sqlx::query(
            "INSERT INTO rooms (name, last_seq, created_at, last_active) VALUES (?, ?, ?, ?)
                 ON CONFLICT (name) DO UPDATE
                 SET last_seq = excluded.last_seq, last_active = excluded.last_active",
        )
        .bind(room.as_str())
        .bind(next - 1)
        .bind(ts)
        .bind(ts)
        .execute(&mut **tx)
        .await?;
    }
    Ok(outcomes)
}

#[async_trait]
impl Store for SqliteStore {
    async fn append(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
        let mut tx = self.writer.begin().await?;
        // The common case, no repeated client_id: every row in a few multi-row statements.
        // A repeat makes the fast path insert fewer rows than asked; then it is undone and the
        // batch goes row by row, which tells stored from duplicate exactly.
        sqlx::query("SAVEPOINT fast").execute(&mut *tx).await?;
        let outcomes = match append_at_once(&mut tx, batch).await? {
            Some(outcomes) => {
                sqlx::query("RELEASE fast").execute(&mut *tx).await?;
                outcomes
            }
            None => {
                sqlx::query("ROLLBACK TO fast").execute(&mut *tx).await?;
                sqlx::query("RELEASE fast").execute(&mut *tx).await?;
                append_one_by_one(&mut tx, batch).await?
            }
        };
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn latest(&self, room: &RoomName, limit: u32) -> Result<Page, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, id, ts, user_id, user_name, text, client_id FROM messages
             WHERE room = ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(room.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        page_from_rows(room, &rows)
    }

    async fn after(&self, room: &RoomName, since: u64, cap: u32) -> Result<Page, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, id, ts, user_id, user_name, text, client_id FROM messages
             WHERE room = ? AND seq > ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(room.as_str())
        .bind(to_i64(since))
        .bind(i64::from(cap))
        .fetch_all(&self.readers)
        .await?;
        page_from_rows(room, &rows)
    }

    async fn before(&self, room: &RoomName, before: u64, limit: u32) -> Result<Page, StoreError> {
        let before = if before == 0 {
            i64::MAX
        } else {
            to_i64(before)
        };
        let rows = sqlx::query(
            "SELECT seq, id, ts, user_id, user_name, text, client_id FROM messages
             WHERE room = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(room.as_str())
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        page_from_rows(room, &rows)
    }

    async fn recent_rooms(&self, limit: u32) -> Result<Vec<RoomName>, StoreError> {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT name FROM rooms ORDER BY last_active DESC LIMIT ?")
                .bind(i64::from(limit))
                .fetch_all(&self.readers)
                .await?;
        names
            .iter()
            .map(|name| {
                RoomName::parse(name)
                    .map_err(|_| StoreError::Corrupt(format!("bad stored room {name:?}")))
            })
            .collect()
    }

    async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }

    async fn room_activity(&self, limit: u32) -> Result<Vec<(RoomName, i64)>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, last_active FROM rooms ORDER BY last_active DESC LIMIT ?")
                .bind(i64::from(limit))
                .fetch_all(&self.readers)
                .await?;
        super::activity_from_rows(rows)
    }
}

#[async_trait]
impl super::Sessions for SqliteStore {
    async fn revoke_session(&self, sid: &str, expires_at: i64) -> Result<(), StoreError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        sqlx::query("DELETE FROM revoked_sessions WHERE expires_at < ?")
            .bind(now)
            .execute(&self.writer)
            .await?;
        sqlx::query(
            "INSERT INTO revoked_sessions (sid, expires_at) VALUES (?, ?) ON CONFLICT (sid) DO NOTHING",
        )
        .bind(sid)
        .bind(expires_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn is_session_revoked(&self, sid: &str) -> Result<bool, StoreError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT expires_at FROM revoked_sessions WHERE sid = ?")
                .bind(sid)
                .fetch_optional(&self.readers)
                .await?;
        Ok(found.is_some())
    }
}
