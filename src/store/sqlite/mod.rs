//! The embedded default: SQLite in WAL mode in the data folder. One connection writes (SQLite
//! has one writer anyway, and a single owner never meets `SQLITE_BUSY`), synchronously on the
//! message writer's thread ([`write`]); a small sqlx pool reads concurrently beside it, which
//! WAL allows. The full-text index is a file of its own, kept by a thread of its own
//! ([`search`]).

mod search;
mod write;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{
    Appended, NewMessage, Page, Store, StoreError, attach_reactions, page_from_rows, page_with_end,
    reaction_range, reads, search_page,
};
use crate::domain::{Message, RoomName};
use search::SearchIndex;
use write::{Checkpointer, WriteSide};

pub(crate) const DATABASE_FILE: &str = "confab.db";
pub(crate) use search::remove_search_index;
/// Held locked (an OS file lock) while a server uses the data folder.
pub(crate) const LOCK_FILE: &str = "confab.lock";
const READERS: u32 = 4;

/// Removes `path`; a file that is not there is already removed.
pub(crate) fn remove_if_there(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

pub struct SqliteStore {
    /// The one write connection, `None` once closed. A std mutex: it is taken only by the
    /// writer (one batch at a time) and never held across an await, so it is never contended
    /// in a running server.
    write: Mutex<Option<WriteSide>>,
    /// Stopped (and joined) on close, before the write connection goes.
    checkpointer: Mutex<Option<Checkpointer>>,
    /// The full-text index and its thread, stopped on close.
    search: SearchIndex,
    readers: SqlitePool,
    /// One sqlx connection for the rare writes outside messages (session revocations): they
    /// touch no room, so the writer's in-memory counters stay true, and the writer's busy
    /// timeout covers the moment either holds SQLite's write lock.
    admin: SqlitePool,
    /// One connection for retention's deletes, opened on first use (see `purge_before`).
    purger: SqlitePool,
    /// The data folder's lock, released on close: the writer keeps each room's next seq in
    /// memory, so a second process writing the same file would hand out seqs this one does not
    /// know of.
    lock: Mutex<Option<std::fs::File>>,
}

impl SqliteStore {
    /// Opens (creating if needed) `confab.db` in `data_dir` and brings its schema up to date.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let lock = crate::identity::open_private_file(&data_dir.join(LOCK_FILE))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::InUse(data_dir.to_path_buf()));
        }
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
        // sqlx creates the file, sets WAL and migrates; then the write side takes over messages.
        let admin = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&admin).await?;
        let write = WriteSide::open(&path)?;
        let checkpointer = Checkpointer::start(&path)?;
        // Before the readers: they attach its file.
        let search = SearchIndex::start(data_dir, &path)?;
        let index = search.path().to_string_lossy().into_owned();
        let purger = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options.clone());
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .after_connect(move |conn, _| {
                let index = index.clone();
                Box::pin(async move {
                    sqlx::query("ATTACH DATABASE ? AS search")
                        .bind(index)
                        .execute(conn)
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            write: Mutex::new(Some(write)),
            checkpointer: Mutex::new(Some(checkpointer)),
            search,
            readers,
            admin,
            purger,
            lock: Mutex::new(Some(lock)),
        })
    }
}

/// Connection options for the data folder's existing `confab.db` (tools beside a server never
/// create one); `hint` says what to check when it is missing.
fn existing_database(data_dir: &Path, hint: &str) -> Result<SqliteConnectOptions, StoreError> {
    let path = data_dir.join(DATABASE_FILE);
    if !path.exists() {
        return Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} does not exist: {hint}", path.display()),
        )));
    }
    Ok(SqliteConnectOptions::from_str("sqlite:")?
        .filename(&path)
        .busy_timeout(Duration::from_secs(5)))
}

/// The data folder's database for maintenance commands beside a running server: accounts only,
/// without the folder's lock (messages stay the server's alone: their seqs live in its memory).
pub struct SqliteAccounts {
    pool: SqlitePool,
}

impl SqliteAccounts {
    /// Opens `confab.db` in `data_dir`, which a server must have created.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let options = existing_database(data_dir, "start the server once first")?
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

impl SqliteStore {
    async fn read_page(
        &self,
        room: &RoomName,
        sql: &'static str,
        from: Option<i64>,
        limit: i64,
        with_end: bool,
    ) -> Result<Page, StoreError> {
        read_page(&self.readers, room, sql, from, limit, with_end).await
    }
}

/// One read of a room's stream (`sql` binds `$1` room, then `from` if given, then `limit`),
/// rows newest first, with its messages' reactions from the same snapshot; `with_end` for
/// reads that also select the room's last seq.
async fn read_page(
    pool: &SqlitePool,
    room: &RoomName,
    sql: &'static str,
    from: Option<i64>,
    limit: i64,
    with_end: bool,
) -> Result<Page, StoreError> {
    let mut tx = pool.begin().await?;
    let mut query = sqlx::query(sql).bind(room.as_str());
    if let Some(from) = from {
        query = query.bind(from);
    }
    let rows = query.bind(limit).fetch_all(&mut *tx).await?;
    let mut page = if with_end {
        page_with_end(room, &rows)?
    } else {
        page_from_rows(room, &rows)?
    };
    if let Some((first, last)) = reaction_range(&page) {
        let rows = sqlx::query(reads::REACTIONS)
            .bind(room.as_str())
            .bind(first)
            .bind(last)
            .fetch_all(&mut *tx)
            .await?;
        attach_reactions(&mut page, &rows)?;
    }
    tx.commit().await?;
    Ok(page)
}

/// The data folder's messages for reading beside a running server (`confab export`): a WAL
/// reader, without the folder's lock and without migrating, so it never writes.
pub struct SqliteReader {
    pool: SqlitePool,
}

impl SqliteReader {
    /// Opens `confab.db` in `data_dir`, which a server must have created.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        // Read-write without create, not read-only: a read-only connection cannot create the
        // WAL index when no server has the file open. Nothing here writes.
        let options = existing_database(data_dir, "is --data-dir right?")?;
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    /// As [`Store::stream_after`].
    pub async fn stream_after(
        &self,
        room: &RoomName,
        after: u64,
        limit: u32,
    ) -> Result<Page, StoreError> {
        let mut page = read_page(
            &self.pool,
            room,
            reads::STREAM_AFTER,
            Some(to_i64(after)),
            i64::from(limit),
            false,
        )
        .await?;
        page.messages.reverse();
        Ok(page)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

super::accounts::sql_accounts!(SqliteAccounts, read: pool, write: pool);

#[async_trait]
impl super::Sessions for SqliteAccounts {
    async fn revoke_session(&self, sid: &str, expires_at: i64) -> Result<(), StoreError> {
        revoke(&self.pool, sid, expires_at).await
    }

    async fn is_session_revoked(&self, sid: &str) -> Result<bool, StoreError> {
        is_revoked(&self.pool, sid).await
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for SqliteStore {
    /// Runs on the calling thread: the writer calls it from a thread of its own, and a batch
    /// is microseconds to milliseconds of SQLite work with nothing to wait for in between.
    async fn append(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
        let mut write = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        match write.as_mut() {
            Some(write) => write.append(batch),
            None => Err(StoreError::Closed),
        }
    }

    async fn latest(&self, room: &RoomName, limit: u32) -> Result<Page, StoreError> {
        self.read_page(room, reads::LATEST, None, i64::from(limit), true)
            .await
    }

    async fn after(&self, room: &RoomName, since: u64, cap: u32) -> Result<Page, StoreError> {
        self.read_page(
            room,
            reads::AFTER,
            Some(to_i64(since)),
            i64::from(cap),
            true,
        )
        .await
    }

    async fn before(&self, room: &RoomName, before: u64, limit: u32) -> Result<Page, StoreError> {
        // 0 means "from the newest", as in every backend.
        let before = if before == 0 {
            i64::MAX
        } else {
            to_i64(before)
        };
        self.read_page(room, reads::BEFORE, Some(before), i64::from(limit), false)
            .await
    }

    async fn search(
        &self,
        room: &RoomName,
        words: &[String],
        before: u64,
        limit: u32,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        if words.is_empty() {
            return Ok((Vec::new(), false));
        }
        // Every word a quoted FTS5 string: operators, quotes and column filters in the query
        // are text to look for, never syntax. The room narrows through its own indexed token.
        let phrases: Vec<String> = words
            .iter()
            .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
            .collect();
        let room_key = hex::encode_upper(room.as_str());
        let expression = format!("room_key : {room_key} AND text : ({})", phrases.join(" "));
        let before = if before == 0 {
            i64::MAX
        } else {
            to_i64(before)
        };
        // Everything stored before this search is in the index first (or it is far behind).
        let last: i64 = sqlx::query_scalar(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0)",
        )
        .fetch_one(&self.readers)
        .await?;
        self.search.catch_up(last).await;
        // Newest first by position: within a room, position order is seq order (the writer
        // inserts a room's messages in seq order), and FTS5 walks its matches in rowid order
        // without sorting them all, so a common word in a big room stops at `limit`.
        let rows = sqlx::query(
            "SELECT m.seq, m.id, m.ts, m.user_id, m.user_name, m.user_guest, m.text, m.client_id,
                    m.kind, m.target, m.deleted, m.edited_at, m.reply_to, m.added
             FROM search.messages_fts JOIN messages m ON m.pos = messages_fts.rowid
             WHERE messages_fts MATCH $2 AND m.room = $1 AND m.seq < $3
               AND m.kind = 'message' AND m.deleted = 0
             ORDER BY messages_fts.rowid DESC LIMIT $4",
        )
        .bind(room.as_str())
        .bind(expression)
        .bind(before)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.readers)
        .await?;
        search_page(room, &rows, limit)
    }

    async fn stream_after(
        &self,
        room: &RoomName,
        after: u64,
        limit: u32,
    ) -> Result<Page, StoreError> {
        let mut page = self
            .read_page(
                room,
                reads::STREAM_AFTER,
                Some(to_i64(after)),
                i64::from(limit),
                false,
            )
            .await?;
        // Read oldest first; `read_page` reversed it as if newest first.
        page.messages.reverse();
        page.has_more = page.messages.first().is_some_and(|m| m.seq > 1);
        Ok(page)
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

    async fn room_activity(&self, limit: u32) -> Result<Vec<(RoomName, i64)>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, last_active FROM rooms ORDER BY last_active DESC LIMIT ?")
                .bind(i64::from(limit))
                .fetch_all(&self.readers)
                .await?;
        super::activity_from_rows(rows)
    }

    /// On a connection of its own: the admin connection stays free for sign-ins meanwhile, and
    /// SQLite's busy timeout on both sides covers the moments either holds the write lock.
    async fn purge_before(&self, horizon: i64, batch: u32) -> Result<u64, StoreError> {
        let mut conn = self.purger.acquire().await?;
        super::retention::purge_with!(&mut *conn, horizon, batch)
    }

    async fn close(&self) {
        self.readers.close().await;
        self.admin.close().await;
        self.purger.close().await;
        self.search.stop();
        drop(
            self.checkpointer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        // Dropping the connection checkpoints the WAL and releases the file.
        drop(
            self.write
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        drop(
            self.lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }
}

// Users and sessions: read beside the writer, written through the admin connection.
super::accounts::sql_accounts!(SqliteStore, read: readers, write: admin);
super::read_state::sql_read_state!(SqliteStore, read: readers, write: admin);
// Rooms' access rules likewise: they touch no counter the writer keeps.
super::rooms_access::sql_rooms_access!(SqliteStore, read: readers, write: admin);

#[async_trait]
impl super::Sessions for SqliteStore {
    async fn revoke_session(&self, sid: &str, expires_at: i64) -> Result<(), StoreError> {
        revoke(&self.admin, sid, expires_at).await
    }

    async fn is_session_revoked(&self, sid: &str) -> Result<bool, StoreError> {
        is_revoked(&self.readers, sid).await
    }
}

async fn revoke(pool: &SqlitePool, sid: &str, expires_at: i64) -> Result<(), StoreError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    sqlx::query("DELETE FROM revoked_sessions WHERE expires_at < ?")
        .bind(now)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO revoked_sessions (sid, expires_at) VALUES (?, ?) ON CONFLICT (sid) DO NOTHING",
    )
    .bind(sid)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

async fn is_revoked(pool: &SqlitePool, sid: &str) -> Result<bool, StoreError> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT expires_at FROM revoked_sessions WHERE sid = ?")
            .bind(sid)
            .fetch_optional(pool)
            .await?;
    Ok(found.is_some())
}
