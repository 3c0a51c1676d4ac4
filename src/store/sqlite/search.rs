//! The full-text index of the SQLite store: an FTS5 table in a file of its own (`search.db`,
//! beside `confab.db`), filled by a thread of its own that follows the messages log by position.
//!
//! Why apart: indexing was most of what a batch cost the single writer (about 20 µs of FTS5
//! work per message, in every commit). Here the writer never indexes; the indexer takes every
//! message stored since its last pass in one transaction (thousands at a time under load, which
//! costs FTS5 half as much per message) on the other core, and in another file, so it never
//! holds the writer's lock. The index is derived: it is rebuilt from the log whenever it is
//! missing, from another database, or ahead of the log (a restored backup).
//!
//! Edits and deletions need no trigger: they are events in the same log, so the indexer sees
//! them in order and indexes their target's current text again (or drops it). Retention's
//! deletions are listed in `search_forget` by a trigger, and dropped from the index here.
//!
//! A search first asks the indexer to reach the last position stored when the search arrived
//! ([`SearchIndex::catch_up`]), so it finds every message stored before it, unless the index
//! is more than [`CATCH_UP`] behind (being rebuilt, or under a load it cannot follow).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::watch;

use crate::store::StoreError;

/// The index's file in the data folder.
pub(crate) const SEARCH_FILE: &str = "search.db";
/// The index's layout; an index of another layout is rebuilt.
const LAYOUT: i64 = 1;
/// Log positions indexed per transaction at most: large enough that FTS5 flushes and merges
/// its segments rarely, small enough that a transaction stays short. 16,384 cost about 20 MiB
/// more RSS into one busy room (BENCHMARKS.md, "Persistence, third round") for no gain.
const CHUNK: i64 = 4_096;
/// How often the indexer looks for new messages when no search asks it to.
const POLL: Duration = Duration::from_secs(1);
/// How long a search waits for the index to reach the messages stored before it.
pub(super) const CATCH_UP: Duration = Duration::from_secs(2);

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS progress (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        source       TEXT NOT NULL,
        layout       INTEGER NOT NULL,
        indexed_upto INTEGER NOT NULL
    );
    -- Contentless: the text lives in the log; the index only answers which positions match.
    -- `contentless_delete` lets edits, deletions and retention remove a position.
    CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
        text,
        room_key,
        content = '',
        contentless_delete = 1,
        tokenize = 'unicode61 remove_diacritics 2'
    );";

/// The messages stored in positions `(?1, ?2]` that are neither events nor deleted. Their
/// current text: an edit already made is indexed at once.
const INDEX_MESSAGES: &str = "
    INSERT INTO messages_fts (rowid, text, room_key)
    SELECT pos, text, hex(room) FROM log.messages
    WHERE pos > ?1 AND pos <= ?2 AND kind = 'message' AND deleted = 0";
/// Messages indexed before `?1` that an edit or a deletion in `(?1, ?2]` changed.
const CHANGED_TARGETS: &str = "
    SELECT DISTINCT t.pos FROM log.messages e
    JOIN log.messages t ON t.room = e.room AND t.seq = e.target AND t.kind = 'message'
    WHERE e.pos > ?1 AND e.pos <= ?2 AND e.kind IN ('edited', 'deleted') AND t.pos <= ?1";
const UNINDEX: &str = "DELETE FROM messages_fts WHERE rowid = ?1";
const REINDEX: &str = "
    INSERT INTO messages_fts (rowid, text, room_key)
    SELECT pos, text, hex(room) FROM log.messages WHERE pos = ?1 AND deleted = 0";
const LAST_POSITION: &str =
    "SELECT COALESCE((SELECT seq FROM log.sqlite_sequence WHERE name = 'messages'), 0)";
const FORGOTTEN: &str = "SELECT pos FROM log.search_forget ORDER BY pos LIMIT 4096";

/// The running indexer, and what a search needs of it.
pub(super) struct SearchIndex {
    path: PathBuf,
    wake: SyncSender<()>,
    stop: Arc<AtomicBool>,
    indexed: watch::Receiver<i64>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SearchIndex {
    /// Opens (creating or rebuilding as needed) the index of `database` in `data_dir` and
    /// starts following the log.
    pub(super) fn start(data_dir: &Path, database: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(SEARCH_FILE);
        let mut indexer = match Indexer::open(&path, database) {
            Ok(indexer) => indexer,
            // Derived data: an index file that cannot be opened (damaged, or not a database)
            // is started over rather than keeping the server from starting.
            Err(error) => {
                tracing::warn!(%error, "the search index cannot be opened; rebuilding it");
                remove_search_index(data_dir)?;
                Indexer::open(&path, database)?
            }
        };
        let (progress, indexed) = watch::channel(indexer.indexed);
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("confab-search".into())
            .spawn(move || {
                loop {
                    if let Err(error) = indexer.catch_up(&progress, &stopping) {
                        tracing::warn!(%error, "search indexing failed; retrying in a second");
                    }
                    if stopping.load(Ordering::Acquire) {
                        break;
                    }
                    match woken.recv_timeout(POLL) {
                        Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            })?;
        Ok(Self {
            path,
            wake,
            stop,
            indexed,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The index's file, for the readers to attach.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Waits until everything stored up to log position `last` is indexed, or [`CATCH_UP`]
    /// has passed: then the search answers from the index as it is.
    pub(super) async fn catch_up(&self, last: i64) {
        if *self.indexed.borrow() >= last {
            return;
        }
        // Full means a wake-up is already pending.
        let _ = self.wake.try_send(());
        let mut indexed = self.indexed.clone();
        let _ = tokio::time::timeout(CATCH_UP, indexed.wait_for(|&at| at >= last)).await;
    }

    /// Stops the indexer after the transaction it is in.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.try_send(());
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for SearchIndex {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The indexer's own connection: `search.db` as its main database, the log attached as `log`.
struct Indexer {
    conn: Connection,
    indexed: i64,
}

impl Indexer {
    fn open(path: &Path, database: &Path) -> Result<Self, StoreError> {
        // Created readable by its owner only before SQLite opens it: SQLite gives its WAL and
        // shared-memory files the file's permissions, and the index holds the words of every
        // message, private rooms' too.
        crate::identity::open_private_file(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // As the log: a process crash loses nothing committed; an OS crash at worst loses the
        // last passes, which the next start indexes again from the recorded position.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // SQLite's default page cache (2 MiB): 8 MiB stored no more and held about 10 MiB more
        // RSS into one busy room.
        conn.pragma_update(None, "cache_size", -2_048)?;
        let log = database
            .to_str()
            .ok_or_else(|| StoreError::Corrupt("the data folder's path is not UTF-8".into()))?;
        conn.execute("ATTACH DATABASE ?1 AS log", [log])?;
        conn.execute_batch(SCHEMA)?;

        let source: String =
            conn.query_row("SELECT id FROM log.search_source", [], |row| row.get(0))?;
        let last: i64 = conn.query_row(LAST_POSITION, [], |row| row.get(0))?;
        let recorded: Option<(String, i64, i64)> = conn
            .query_row(
                "SELECT source, layout, indexed_upto FROM progress WHERE id = 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        let indexed = match recorded {
            Some((from, layout, upto)) if from == source && layout == LAYOUT && upto <= last => {
                upto
            }
            stale => {
                if stale.is_some() {
                    tracing::info!("the search index is not this database's; rebuilding it");
                }
                conn.execute_batch("DROP TABLE IF EXISTS messages_fts; DELETE FROM progress;")?;
                conn.execute_batch(SCHEMA)?;
                conn.execute(
                    "INSERT INTO progress (id, source, layout, indexed_upto) VALUES (1, ?1, ?2, 0)",
                    rusqlite::params![source, LAYOUT],
                )?;
                0
            }
        };
        Ok(Self { conn, indexed })
    }

    /// Indexes everything stored since the last pass, a [`CHUNK`] per transaction, then drops
    /// what retention deleted.
    fn catch_up(
        &mut self,
        progress: &watch::Sender<i64>,
        stop: &AtomicBool,
    ) -> Result<(), StoreError> {
        loop {
            let last: i64 = self
                .conn
                .prepare_cached(LAST_POSITION)?
                .query_row([], |row| row.get(0))?;
            crate::telemetry::metrics::set_search_index_behind(last - self.indexed);
            if last <= self.indexed || stop.load(Ordering::Acquire) {
                break;
            }
            let upto = last.min(self.indexed + CHUNK);
            self.index(self.indexed, upto)?;
            self.indexed = upto;
            // The gauge first: a search that sees this progress then also sees the gauge.
            crate::telemetry::metrics::set_search_index_behind(last - upto);
            progress.send_replace(upto);
        }
        self.forget()
    }

    /// Indexes log positions `(from, upto]` in one transaction.
    fn index(&mut self, from: i64, upto: i64) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached(INDEX_MESSAGES)?.execute([from, upto])?;
        let changed: Vec<i64> = tx
            .prepare_cached(CHANGED_TARGETS)?
            .query_map([from, upto], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for pos in changed {
            tx.prepare_cached(UNINDEX)?.execute([pos])?;
            tx.prepare_cached(REINDEX)?.execute([pos])?;
        }
        tx.prepare_cached("UPDATE progress SET indexed_upto = ?1 WHERE id = 1")?
            .execute([upto])?;
        tx.commit()?;
        Ok(())
    }

    /// Drops from the index the messages retention deleted from the log.
    fn forget(&mut self) -> Result<(), StoreError> {
        let gone: Vec<i64> = self
            .conn
            .prepare_cached(FORGOTTEN)?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        if gone.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        for &pos in &gone {
            tx.prepare_cached(UNINDEX)?.execute([pos])?;
        }
        tx.commit()?;
        // Apart, and after: the list is in the log's file, and a crash in between only makes
        // the next pass delete positions that are gone already, which is harmless.
        let tx = self.conn.transaction()?;
        for &pos in &gone {
            tx.prepare_cached("DELETE FROM log.search_forget WHERE pos = ?1")?
                .execute([pos])?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Removes the index's files from `data_dir` (derived data: the next start rebuilds it).
pub(crate) fn remove_search_index(data_dir: &Path) -> std::io::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        super::remove_if_there(&data_dir.join(format!("{SEARCH_FILE}{suffix}")))?;
    }
    Ok(())
}
