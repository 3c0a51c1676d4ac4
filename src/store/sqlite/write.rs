//! SQLite's write side: one rusqlite connection driven synchronously by the caller of `append`
//! (the message writer's own thread), with every room's last seq kept in memory.
//!
//! Why not sqlx here: sqlx runs each SQLite statement on a worker thread and answers through a
//! channel, so a batch touching 1,000 rooms paid thousands of thread hops for what SQLite does
//! in microseconds. Here a batch is a few prepared statements run in place:
//! one multi-row insert per 128 messages, one multi-row counter upsert per 128 rooms, and a
//! `SELECT last_seq` only the first time a room is written after the process started.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{
    CachedStatement, Connection, OpenFlags, OptionalExtension, Statement, TransactionBehavior,
};

use crate::domain::{Event, Message, RoomName};
use crate::store::{
    Appended, MAX_EMOJI_PER_MESSAGE, NewMessage, Refusal, StoreError, StoredRow, row_columns,
    storable_text, stored_message,
};

/// Rows per multi-row statement are taken from these sizes, largest first, so a batch of any
/// length uses at most 8 distinct statements per table and every one stays prepared in the
/// connection's statement cache. 128 rows × 13 parameters is far under SQLite's 32,766.
const CHUNKS: [usize; 8] = [128, 64, 32, 16, 8, 4, 2, 1];
/// Prepared statements kept: 8 multi-row insert shapes, the one-row insert, 8 upsert shapes and
/// the few single statements.
const STATEMENT_CACHE: usize = 32;
/// Rooms whose last seq is kept in memory. Past this the whole map is forgotten and refilled
/// from disk on demand (one indexed read per room), so a server that has seen millions of
/// rooms holds at most this many entries (about 100 bytes each).
const MAX_KNOWN_ROOMS: usize = 100_000;

/// Columns of one `messages` row, as [`INSERT_ROW`] binds them.
const COLUMNS: usize = 13;
const INSERT_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const COUNTER_ROW: &str = "(?, ?, ?, ?)";

pub(super) struct WriteSide {
    conn: Connection,
    /// Each room's last committed seq. This connection is the only writer of the database (the
    /// store opens it once per data folder), so once read the value stays true until this side
    /// moves it, which it does only after a commit: a failed batch burns no seq (and its rooms
    /// are read again from the file next time).
    last_seq: HashMap<RoomName, i64>,
}

/// How often the checkpointer copies the WAL back into the database file. The WAL holds about
/// this much of the writer's output (at 100,000 messages/s of 100 bytes, some tens of MiB).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Checkpoints the WAL on a thread of its own, so the writer never waits for one. PASSIVE
/// checkpoints copy what they can without blocking the writer or readers; the writer starts
/// the WAL over once a checkpoint has caught up with it.
pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(super) fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // After a checkpoint the WAL file is cut back to this size instead of staying as large
        // as the busiest second made it.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("confab-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    if let Err(error) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
                        tracing::warn!(%error, "WAL checkpoint failed; retrying in a second");
                    }
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A room's numbering while its batch is being stored.
struct Numbering {
    last_seq: i64,
    /// The ts of the newest message this batch stores in the room; `None` while it has only
    /// duplicates there, which are not activity and leave the room's row alone.
    last_active: Option<i64>,
}

impl WriteSide {
    /// Opens the database file (already created and migrated through sqlx).
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // The journal mode (WAL) is a property of the file, set when sqlx created it. NORMAL
        // loses nothing on a process crash (kill -9) in WAL mode: a commit is in the WAL file
        // before it returns. Only an OS crash or power cut can drop the last commits.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // A batch over 1,000 rooms touches a leaf page per room in the (room, seq) index (and
        // did in the client_id index too, before it led with the client_id): with SQLite's
        // default 2 MiB cache those pages were read back from the file and spilled
        // mid-transaction on every batch (the profile of a 300-room load was mostly
        // `readDbPage` and `pagerStress`). That working set was about 8 MiB (2 × 1,000 pages
        // of 4 KiB); 16 MiB keeps it with room to spare. Not more: the cache fills as the
        // database grows, so its size is part of the server's steady RSS (64 MiB kept a soak's
        // RSS climbing for 40 minutes).
        conn.pragma_update(None, "cache_size", -16_384)?;
        // Statement journals, if SQLite needs one, in memory rather than in a temporary file.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Checkpoints (copying the WAL back into the database, with an fsync) run on a thread
        // of their own ([`Checkpointer`]), not in whichever commit crosses SQLite's default
        // 1,000-page mark: a batch over 1,000 rooms dirties about 2,000 pages, so every commit
        // paid a checkpoint. This limit is only a backstop if that thread falls far behind.
        conn.pragma_update(None, "wal_autocheckpoint", 100_000)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Self {
            conn,
            last_seq: HashMap::new(),
        })
    }

    /// Stores a batch in one transaction; see [`crate::store::Store::append`].
    pub(super) fn append(&mut self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
        let stored = self.append_in_transaction(batch);
        if stored.is_err() {
            // Memory did not move, so no seq is burnt. The batch's rooms are also forgotten, to
            // be read again from the file: if the failure came from the file changing under
            // this connection (another process, a restored backup), a stale counter would
            // otherwise fail every later batch of those rooms too.
            for new in batch {
                self.last_seq.remove(&new.room);
            }
        }
        stored
    }

    fn append_in_transaction(&mut self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // Events and replies check what they refer to first, which the multi-row path cannot:
        // they go row by row, as does a batch that repeats a client_id.
        if !has_repeated_key(batch) && !batch.iter().any(refers) {
            // The common case: every row in a few multi-row statements.
            if let Some(outcomes) = self.store(batch, true)? {
                return Ok(outcomes);
            }
            // A client_id stored by an earlier batch made them insert fewer rows than asked:
            // that transaction was rolled back, and row by row tells stored from duplicate
            // exactly. Rolling back the whole transaction instead of a savepoint keeps the
            // common case from journaling every page it changes (a batch over 1,000 rooms
            // changes about 2,000).
        }
        self.store(batch, false)?
            .ok_or_else(|| StoreError::Corrupt("storing row by row gave up".into()))
    }

    /// Stores the batch in one transaction, `at_once` in multi-row statements (`None` if one
    /// of its client_ids was stored before: nothing is stored then) or else row by row.
    fn store(
        &mut self,
        batch: &[NewMessage],
        at_once: bool,
    ) -> Result<Option<Vec<Appended>>, StoreError> {
        // IMMEDIATE: take the write lock up front instead of upgrading half way through.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut rooms: HashMap<&RoomName, Numbering> = HashMap::new();
        for new in batch {
            if rooms.contains_key(&new.room) {
                continue;
            }
            let last_seq = match self.last_seq.get(&new.room) {
                Some(&known) => known,
                None => load_last_seq(&tx, &new.room)?,
            };
            rooms.insert(
                &new.room,
                Numbering {
                    last_seq,
                    last_active: None,
                },
            );
        }
        let outcomes = if at_once {
            match append_at_once(&tx, batch, &mut rooms)? {
                Some(outcomes) => outcomes,
                // Dropping the transaction rolls it back; memory has not moved.
                None => return Ok(None),
            }
        } else {
            append_one_by_one(&tx, batch, &mut rooms)?
        };
        save_counters(&tx, &rooms, batch)?;
        tx.commit()?;

        // Committed: only now does memory move (a failure above returned early, and dropping
        // the transaction rolled it back).
        if self.last_seq.len() + rooms.len() > MAX_KNOWN_ROOMS {
            self.last_seq.clear();
        }
        for (room, numbering) in rooms {
            self.last_seq.insert(room.clone(), numbering.last_seq);
        }
        Ok(Some(outcomes))
    }
}

fn load_last_seq(conn: &Connection, room: &RoomName) -> Result<i64, StoreError> {
    let last = conn
        .prepare_cached("SELECT last_seq FROM rooms WHERE name = ?")?
        .query_row([room.as_str()], |row| row.get::<_, i64>(0))
        .optional()?;
    Ok(last.unwrap_or(0))
}

type Key<'a> = (&'a str, &'a str, &'a str);

fn key(new: &NewMessage) -> Key<'_> {
    (
        new.room.as_str(),
        new.user.id.as_str(),
        new.client_id.as_str(),
    )
}

fn has_repeated_key(batch: &[NewMessage]) -> bool {
    let mut seen = HashSet::with_capacity(batch.len());
    !batch.iter().all(|new| seen.insert(key(new)))
}

fn next_seq(
    rooms: &mut HashMap<&RoomName, Numbering>,
    new: &NewMessage,
) -> Result<i64, StoreError> {
    let numbering = rooms
        .get_mut(&new.room)
        .ok_or_else(|| StoreError::Corrupt(format!("room {} was not numbered", new.room)))?;
    numbering.last_seq += 1;
    numbering.last_active = Some(new.ts);
    Ok(numbering.last_seq)
}

fn to_seq(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("negative seq {seq}")))
}

/// The SQL of one multi-row statement: `head`, `rows` copies of `row`, then `tail`.
fn multi_row(head: &str, row: &str, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (row.len() + 2) + tail.len());
    sql.push_str(head);
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql.push_str(tail);
    sql
}

/// Splits `len` rows into runs of the [`CHUNKS`] sizes, largest first.
fn chunk_sizes(mut len: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let size = CHUNKS.into_iter().find(|&size| size <= len)?;
        len -= size;
        Some(size)
    })
}

const INSERT_HEAD: &str = "INTO messages (room, seq, id, ts, user_id, user_name, user_guest, text, client_id, kind, target, reply_to, added) VALUES ";

/// One message, skipped if its client_id is stored; any other conflict (a seq taken behind
/// the writer's back) is an error.
fn insert_statement(conn: &Connection) -> rusqlite::Result<CachedStatement<'_>> {
    conn.prepare_cached(&multi_row(
        &format!("INSERT {INSERT_HEAD}"),
        INSERT_ROW,
        1,
        " ON CONFLICT (room, user_id, client_id) DO NOTHING",
    ))
}

/// `rows` messages, each skipped on any conflict: the caller checks that all went in, and
/// otherwise rolls the transaction back and stores the batch with [`insert_statement`]. Why
/// OR IGNORE: a statement that may fail half way makes SQLite copy every page it changes
/// into a statement journal first, and one that cannot fail does not.
fn insert_all_statement(conn: &Connection, rows: usize) -> rusqlite::Result<CachedStatement<'_>> {
    conn.prepare_cached(&multi_row(
        &format!("INSERT OR IGNORE {INSERT_HEAD}"),
        INSERT_ROW,
        rows,
        "",
    ))
}

/// Binds one message's [`COLUMNS`] columns starting at parameter `at` (1-based).
fn bind_message(
    statement: &mut Statement<'_>,
    at: usize,
    new: &NewMessage,
    seq: i64,
    text: &str,
) -> rusqlite::Result<()> {
    statement.raw_bind_parameter(at, new.room.as_str())?;
    statement.raw_bind_parameter(at + 1, seq)?;
    statement.raw_bind_parameter(at + 2, new.id.as_str())?;
    statement.raw_bind_parameter(at + 3, new.ts)?;
    statement.raw_bind_parameter(at + 4, new.user.id.as_str())?;
    statement.raw_bind_parameter(at + 5, new.user.name.as_str())?;
    statement.raw_bind_parameter(at + 6, new.user.guest)?;
    statement.raw_bind_parameter(at + 7, text)?;
    statement.raw_bind_parameter(at + 8, new.client_id.as_str())?;
    statement.raw_bind_parameter(at + 9, new.event.kind())?;
    statement.raw_bind_parameter(at + 10, new.event.target().map(to_i64))?;
    statement.raw_bind_parameter(at + 11, new.reply_to.map(to_i64))?;
    statement.raw_bind_parameter(at + 12, new.event.added())
}

/// Stores the whole batch assuming no client_id of it is stored yet; `None` if one was
/// (the caller undoes what was inserted).
fn append_at_once(
    conn: &Connection,
    batch: &[NewMessage],
    rooms: &mut HashMap<&RoomName, Numbering>,
) -> Result<Option<Vec<Appended>>, StoreError> {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut rest = batch;
    for size in chunk_sizes(batch.len()) {
        let (chunk, after) = rest.split_at(size);
        rest = after;
        let mut statement = insert_all_statement(conn, size)?;
        let mut messages = Vec::with_capacity(size);
        for (i, new) in chunk.iter().enumerate() {
            let seq = next_seq(rooms, new)?;
            let text = storable_text(&new.text);
            bind_message(&mut statement, 1 + i * COLUMNS, new, seq, &text)?;
            messages.push(stored_message(new, to_seq(seq)?, text.into_owned()));
        }
        if statement.raw_execute()? != size {
            return Ok(None);
        }
        outcomes.extend(messages.into_iter().map(Appended::Stored));
    }
    Ok(Some(outcomes))
}

/// Row by row: tells a stored message from a repeated client_id, in this batch or before it.
fn append_one_by_one(
    conn: &Connection,
    batch: &[NewMessage],
    rooms: &mut HashMap<&RoomName, Numbering>,
) -> Result<Vec<Appended>, StoreError> {
    let mut earlier: HashMap<Key<'_>, Message> = HashMap::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    for new in batch {
        if let Some(original) = earlier.get(&key(new)) {
            outcomes.push(Appended::Duplicate(original.clone()));
            continue;
        }
        let numbering = rooms
            .get(&new.room)
            .ok_or_else(|| StoreError::Corrupt(format!("room {} was not numbered", new.room)))?;
        let seq = numbering.last_seq + 1;
        if refers(new) {
            // A retry first: its effect must not be applied twice.
            if let Some(original) = stored_by_client_id(conn, new)? {
                earlier.insert(key(new), original.clone());
                outcomes.push(Appended::Duplicate(original));
                continue;
            }
            if let Some(refusal) = apply(conn, new, seq)? {
                outcomes.push(Appended::Refused(refusal));
                continue;
            }
        }
        let text = storable_text(&new.text);
        let mut statement = insert_statement(conn)?;
        bind_message(&mut statement, 1, new, seq, &text)?;
        let outcome = if statement.raw_execute()? == 1 {
            next_seq(rooms, new)?;
            Appended::Stored(stored_message(new, to_seq(seq)?, text.into_owned()))
        } else {
            Appended::Duplicate(original(conn, new)?)
        };
        if let Appended::Stored(message) | Appended::Duplicate(message) = &outcome {
            earlier.insert(key(new), message.clone());
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The message already stored under `new`'s (room, user, client_id).
fn original(conn: &Connection, new: &NewMessage) -> Result<Message, StoreError> {
    stored_by_client_id(conn, new)?
        .ok_or_else(|| StoreError::Corrupt("a conflicting client_id vanished".into()))
}

fn stored_by_client_id(conn: &Connection, new: &NewMessage) -> Result<Option<Message>, StoreError> {
    let row = conn
        .prepare_cached(concat!(
            "SELECT ",
            row_columns!(),
            " FROM messages WHERE room = ? AND user_id = ? AND client_id = ?"
        ))?
        .query_row(
            [
                new.room.as_str(),
                new.user.id.as_str(),
                new.client_id.as_str(),
            ],
            |row| {
                Ok(StoredRow {
                    seq: row.get(0)?,
                    id: row.get(1)?,
                    ts: row.get(2)?,
                    user_id: row.get(3)?,
                    user_name: row.get(4)?,
                    user_guest: row.get(5)?,
                    text: row.get(6)?,
                    client_id: row.get(7)?,
                    kind: row.get(8)?,
                    target: row.get(9)?,
                    deleted: row.get(10)?,
                    edited_at: row.get(11)?,
                    reply_to: row.get(12)?,
                    added: row.get(13)?,
                })
            },
        )
        .optional()?;
    row.map(|row| row.into_message(&new.room)).transpose()
}

/// Whether `new` refers to an earlier message (an event, or a reply): it is checked and
/// applied row by row.
fn refers(new: &NewMessage) -> bool {
    new.event != Event::Message || new.reply_to.is_some()
}

/// What the store knows of message `seq` of a room: its author and whether it is deleted;
/// `None` if the room has no message (of kind `message`) with that seq.
fn message_at(
    conn: &Connection,
    room: &RoomName,
    seq: u64,
) -> Result<Option<(String, bool)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT user_id, deleted FROM messages WHERE room = ? AND seq = ? AND kind = 'message'",
        )?
        .query_row(rusqlite::params![room.as_str(), to_i64(seq)], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?)
}

/// Checks what `new` (to be stored with `seq`) refers to and applies its effect on the room's state (a tombstone, an
/// edited text, a reaction). Returns why not, if it may not; nothing is changed then.
fn apply(conn: &Connection, new: &NewMessage, seq: i64) -> Result<Option<Refusal>, StoreError> {
    let room = new.room.as_str();
    let own = |author: &str| author == new.user.id.as_str();
    match new.event {
        Event::Message => {
            let replied = new
                .reply_to
                .map(|seq| message_at(conn, &new.room, seq))
                .transpose()?;
            Ok(matches!(replied, Some(None)).then_some(Refusal::NotFound))
        }
        Event::Deleted { target } => match message_at(conn, &new.room, target)? {
            None | Some((_, true)) => Ok(Some(Refusal::NotFound)),
            Some((author, _)) if !own(&author) && !new.moderator => Ok(Some(Refusal::Forbidden)),
            Some(_) => {
                conn.prepare_cached(
                    "UPDATE messages SET deleted = 1, text = '' WHERE room = ? AND seq = ?",
                )?
                .execute(rusqlite::params![room, to_i64(target)])?;
                conn.prepare_cached("DELETE FROM reactions WHERE room = ? AND target = ?")?
                    .execute(rusqlite::params![room, to_i64(target)])?;
                Ok(None)
            }
        },
        Event::Edited { target } => match message_at(conn, &new.room, target)? {
            None | Some((_, true)) => Ok(Some(Refusal::NotFound)),
            Some((author, _)) if !own(&author) => Ok(Some(Refusal::Forbidden)),
            Some(_) => {
                let text = storable_text(&new.text);
                conn.prepare_cached(
                    "UPDATE messages SET text = ?, edited_at = ? WHERE room = ? AND seq = ?",
                )?
                .execute(rusqlite::params![
                    text.as_ref(),
                    new.ts,
                    room,
                    to_i64(target)
                ])?;
                Ok(None)
            }
        },
        Event::Reaction { target, added } => {
            if !matches!(message_at(conn, &new.room, target)?, Some((_, false))) {
                return Ok(Some(Refusal::NotFound));
            }
            let params = rusqlite::params![room, to_i64(target), new.text, new.user.id.as_str()];
            let mine: bool = conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM reactions
                     WHERE room = ? AND target = ? AND emoji = ? AND user_id = ?)",
                )?
                .query_row(params, |row| row.get(0))?;
            if mine == added {
                return Ok(Some(Refusal::NoChange));
            }
            if added {
                let (distinct, present): (i64, bool) = conn
                    .prepare_cached(
                        "SELECT COUNT(DISTINCT emoji), COALESCE(MAX(emoji = ?), 0) FROM reactions
                         WHERE room = ? AND target = ?",
                    )?
                    .query_row(rusqlite::params![new.text, room, to_i64(target)], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?;
                if !present && distinct >= MAX_EMOJI_PER_MESSAGE as i64 {
                    return Ok(Some(Refusal::TooManyReactions));
                }
                conn.prepare_cached(
                    "INSERT INTO reactions (room, target, emoji, user_id, user_name, user_guest, seq)
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )?
                .execute(rusqlite::params![
                    room,
                    to_i64(target),
                    new.text,
                    new.user.id.as_str(),
                    new.user.name.as_str(),
                    new.user.guest,
                    seq
                ])?;
            } else {
                conn.prepare_cached(
                    "DELETE FROM reactions WHERE room = ? AND target = ? AND emoji = ? AND user_id = ?",
                )?
                .execute(params)?;
            }
            Ok(None)
        }
    }
}

fn to_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// Moves the counters of every room the batch stored into, in multi-row upserts.
fn save_counters(
    conn: &Connection,
    rooms: &HashMap<&RoomName, Numbering>,
    batch: &[NewMessage],
) -> Result<(), StoreError> {
    let moved: Vec<(&RoomName, i64, i64)> = rooms
        .iter()
        .filter_map(|(room, n)| Some((*room, n.last_seq, n.last_active?)))
        .collect();
    // A new room's created_at is its first message's ts; batch[0] is as good a bound as any
    // for rooms that already exist, where the value is ignored.
    let created = batch.first().map_or(0, |new| new.ts);
    let mut rest = moved.as_slice();
    for size in chunk_sizes(moved.len()) {
        let (chunk, after) = rest.split_at(size);
        rest = after;
        let mut statement = conn.prepare_cached(&multi_row(
            "INSERT INTO rooms (name, last_seq, created_at, last_active) VALUES ",
            COUNTER_ROW,
            size,
            " ON CONFLICT (name) DO UPDATE
              SET last_seq = excluded.last_seq, last_active = excluded.last_active",
        ))?;
        for (i, &(room, last_seq, last_active)) in chunk.iter().enumerate() {
            let at = 1 + i * 4;
            statement.raw_bind_parameter(at, room.as_str())?;
            statement.raw_bind_parameter(at + 1, last_seq)?;
            statement.raw_bind_parameter(at + 2, created.min(last_active))?;
            statement.raw_bind_parameter(at + 3, last_active)?;
        }
        statement.raw_execute()?;
    }
    Ok(())
}
