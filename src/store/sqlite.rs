//! The embedded default: SQLite in WAL mode in the data folder. One connection writes (SQLite
//! has one writer anyway, and a single owner never meets `SQLITE_BUSY`); a small pool reads
//! concurrently beside it, which WAL allows.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::{Appended, NewMessage, Page, Store, StoreError};
use crate::domain::{DisplayName, Message, RoomName, User, UserId};

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

fn message_from_row(room: &RoomName, row: &SqliteRow) -> Result<Message, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    let name: String = row.try_get("user_name")?;
    let name = DisplayName::parse(&name)
        .map_err(|_| StoreError::Corrupt(format!("bad stored name {name:?}")))?;
    Ok(Message {
        room: room.clone(),
        seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("negative seq {seq}")))?,
        id: row.try_get("id")?,
        ts: row.try_get("ts")?,
        user: User {
            id: UserId::from_trusted(row.try_get("user_id")?),
            name,
        },
        text: row.try_get("text")?,
        client_id: row.try_get("client_id")?,
    })
}

fn page_from_rows(room: &RoomName, rows: &[SqliteRow]) -> Result<Page, StoreError> {
    let messages = rows
        .iter()
        .map(|row| message_from_row(room, row))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_newest_first(messages))
}

#[async_trait]
impl Store for SqliteStore {
    async fn append(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
        let mut tx = self.writer.begin().await?;
        // Next seq per room touched by this batch; read once per room, written back once.
        let mut next_seq: HashMap<&RoomName, (i64, i64)> = HashMap::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        for new in batch {
            let next = match next_seq.get(&new.room) {
                Some(&(next, _)) => next,
                None => {
                    let last: Option<i64> =
                        sqlx::query_scalar("SELECT last_seq FROM rooms WHERE name = ?")
                            .bind(new.room.as_str())
                            .fetch_optional(&mut *tx)
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
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                next_seq.insert(&new.room, (next + 1, new.ts));
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
                let ts = next_seq.get(&new.room).map_or(0, |&(_, ts)| ts);
                next_seq.insert(&new.room, (next, ts));
                let row = sqlx::query(
                    "SELECT seq, id, ts, user_id, user_name, text, client_id FROM messages
                     WHERE room = ? AND user_id = ? AND client_id = ?",
                )
                .bind(new.room.as_str())
                .bind(new.user.id.as_str())
                .bind(new.client_id.as_str())
                .fetch_one(&mut *tx)
                .await?;
                outcomes.push(Appended::Duplicate(message_from_row(&new.room, &row)?));
            }
        }
        for (room, (next, ts)) in next_seq {
            if ts == 0 {
                continue; // only duplicates: nothing moved
            }
            sqlx::query(
                "INSERT INTO rooms (name, last_seq, created_at, last_active) VALUES (?, ?, ?, ?)
                 ON CONFLICT (name) DO UPDATE
                 SET last_seq = excluded.last_seq, last_active = excluded.last_active",
            )
            .bind(room.as_str())
            .bind(next - 1)
            .bind(ts)
            .bind(ts)
            .execute(&mut *tx)
            .await?;
        }
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
}
