//! The shared backend for several nodes: PostgreSQL through one connection pool per node.
//! Seqs are assigned inside the storing transaction under a lock on the room's row, so any
//! number of nodes can append to one room at once and its seqs stay gapless and unique.
//!
//! An append costs the same handful of round-trips whatever the batch size: the writer hands
//! over up to 4,096 messages at a time, and every statement takes the whole batch as arrays
//! (`UNNEST`) instead of one statement per message.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{
    Appended, NewMessage, Page, Store, StoreError, attach_reactions, message_from_row,
    page_from_rows, page_with_end, reaction_range, reads, row_columns, search_page, storable_text,
};
use crate::domain::{Event, Message, RoomName};

/// One node's connections, shared by the writer and every reader. The writer holds at most
/// one at a time (it appends batch after batch); the rest serve history reads.
const POOL_SIZE: u32 = 8;

/// How long an operation waits for a connection, including reconnecting to a database that
/// went away, before it fails with `StoreError`. A caller waiting longer than this would rather
/// tell its client "unavailable" than hang; the pool keeps trying on the next call.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Server-side limits on every session, so a stuck peer cannot stall a room forever:
/// - `lock_timeout`: an append waiting this long for a room's lock fails instead of queueing
///   behind it indefinitely (a batch normally holds the lock for milliseconds).
/// - `idle_in_transaction_session_timeout`: a node that vanishes mid-transaction without its
///   socket closing (power cut, partition) loses its session and its room locks after this,
///   rather than after the server's TCP keepalive (hours by default).
/// - `statement_timeout`: no read or write runs longer than this.
const SESSION_SETTINGS: [(&str, &str); 3] = [
    ("lock_timeout", "5s"),
    ("idle_in_transaction_session_timeout", "10s"),
    ("statement_timeout", "15s"),
];

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the database at `url` and brings its schema up to date. Several nodes may
    /// start at once: sqlx's migrator holds an advisory lock while it migrates.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?
            .application_name("confab")
            .options(SESSION_SETTINGS);
        // `test_before_acquire` (sqlx's default, kept on purpose) pings an idle connection
        // before handing it out, so one the server has dropped (restart, admin kill) is
        // replaced by a fresh one instead of failing the caller's next query.
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(true)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }
}

/// Retention's advisory lock key, in confab's lock class beside the publish-order buckets
/// (0..64), which it never collides with.
const RETENTION_LOCK: i32 = 1_000;

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The de-duplication key: one message per (room, user, client_id).
type DedupeKey<'a> = (&'a str, &'a str, &'a str);

/// A room's counter while its batch is being numbered.
struct RoomCounter {
    last_seq: i64,
    /// The `ts` of the room's last message stored by this batch; `None` while the batch has
    /// only duplicates for the room, which leave the row untouched.
    last_active: Option<i64>,
}

mod each;

#[async_trait]
impl Store for PostgresStore {
    async fn append(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // The batch's rooms, sorted: rooms are locked in this order, so two batches that share
        // several rooms always take their locks in the same order and cannot deadlock. Each
        // comes with the ts of its first message, a new room's `created_at`.
        let mut first_ts: BTreeMap<&RoomName, i64> = BTreeMap::new();
        for new in batch {
            first_ts.entry(&new.room).or_insert(new.ts);
        }
        let rooms: Vec<&RoomName> = first_ts.keys().copied().collect();
        let room_names: Vec<&str> = rooms.iter().map(|room| room.as_str()).collect();
        let first_ts: Vec<i64> = first_ts.into_values().collect();

        let mut tx = self.pool.begin().await?;

        // 1. Create missing rooms and lock every room of the batch, in one statement. The no-op
        //    DO UPDATE takes the row lock (waiting for any other node's batch on that room to
        //    commit) and returns the counter as that batch left it. Rows are processed in the
        //    input order (ORDINALITY), which is the sorted order above.
        let locked = sqlx::query(
            "INSERT INTO rooms (name, last_seq, created_at, last_active)
             SELECT name, 0, ts, ts FROM UNNEST($1::text[], $2::bigint[]) WITH ORDINALITY
                 AS t(name, ts, ord)
             ORDER BY ord
             ON CONFLICT (name) DO UPDATE SET last_seq = rooms.last_seq
             RETURNING name, last_seq",
        )
        .bind(&room_names)
        .bind(&first_ts)
        .fetch_all(&mut *tx)
        .await?;
        let mut counters: HashMap<String, RoomCounter> = HashMap::with_capacity(locked.len());
        for row in &locked {
            counters.insert(
                row.try_get("name")?,
                RoomCounter {
                    last_seq: row.try_get("last_seq")?,
                    last_active: None,
                },
            );
        }

        if batch.iter().any(refers) {
            let outcomes = each::append(&mut tx, batch, &mut counters).await?;
            each::save_counters(&mut tx, &counters).await?;
            tx.commit().await?;
            return Ok(outcomes);
        }

        // 2. Find client_ids that are already stored. This statement's snapshot is taken after
        //    the locks above were granted, and every append holds its rooms' locks while it
        //    inserts, so nothing can be added to these rooms between this look-up and our insert.
        let mut keys: Vec<DedupeKey<'_>> = batch
            .iter()
            .map(|new| {
                (
                    new.room.as_str(),
                    new.user.id.as_str(),
                    new.client_id.as_str(),
                )
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let (key_rooms, (key_users, key_clients)): (Vec<&str>, (Vec<&str>, Vec<&str>)) =
            keys.iter().map(|&(r, u, c)| (r, (u, c))).unzip();
        let rows = sqlx::query(
            "SELECT m.room, m.seq, m.id, m.ts, m.user_id, m.user_name, m.user_guest, m.text,
                    m.client_id, m.kind, m.target, m.deleted, m.edited_at, m.reply_to, m.added
             FROM UNNEST($1::text[], $2::text[], $3::text[]) AS k(room, user_id, client_id)
             JOIN messages m
               ON m.room = k.room AND m.user_id = k.user_id AND m.client_id = k.client_id",
        )
        .bind(&key_rooms)
        .bind(&key_users)
        .bind(&key_clients)
        .fetch_all(&mut *tx)
        .await?;
        let mut originals: Vec<Message> = Vec::with_capacity(rows.len());
        for row in &rows {
            let name: String = row.try_get("room")?;
            let room = rooms
                .binary_search_by(|room| room.as_str().cmp(&name))
                .map(|at| rooms[at])
                .map_err(|_| StoreError::Corrupt(format!("unexpected room {name:?}")))?;
            originals.push(message_from_row(room, row)?);
        }

        // 3. Number the batch in input order. A message whose key is already stored, or stored
        //    earlier in this same batch, is a duplicate and takes no seq.
        let mut known: HashMap<DedupeKey<'_>, Message> = originals
            .iter()
            .map(|m| {
                let key = (m.room.as_str(), m.user.id.as_str(), m.client_id.as_str());
                (key, m.clone())
            })
            .collect();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut stored: Vec<Message> = Vec::with_capacity(batch.len());
        for new in batch {
            let key = (
                new.room.as_str(),
                new.user.id.as_str(),
                new.client_id.as_str(),
            );
            if let Some(original) = known.get(&key) {
                outcomes.push(Appended::Duplicate(original.clone()));
                continue;
            }
            let counter = counters
                .get_mut(new.room.as_str())
                .ok_or_else(|| StoreError::Corrupt(format!("room {} not locked", new.room)))?;
            counter.last_seq += 1;
            counter.last_active = Some(new.ts);
            let message = Message {
                room: new.room.clone(),
                seq: u64::try_from(counter.last_seq).unwrap_or_default(),
                id: new.id.clone(),
                ts: new.ts,
                user: new.user.clone(),
                text: storable_text(&new.text).into_owned(),
                client_id: new.client_id.as_str().to_owned(),
                event: new.event,
                deleted: false,
                edited_at: None,
                reply_to: new.reply_to,
                reactions: Vec::new(),
            };
            known.insert(key, message.clone());
            stored.push(message.clone());
            outcomes.push(Appended::Stored(message));
        }

        // 4. Insert the new messages and move the counters in one statement. No ON CONFLICT: a
        //    conflict here would mean the locking above is broken, and the batch must fail.
        if !stored.is_empty() {
            let mut columns = MessageColumns::with_capacity(stored.len());
            for message in &stored {
                columns.push(message);
            }
            let (moved_rooms, (moved_seqs, moved_active)): (Vec<&str>, (Vec<i64>, Vec<i64>)) =
                counters
                    .iter()
                    .filter_map(|(name, counter)| {
                        let active = counter.last_active?;
                        Some((name.as_str(), (counter.last_seq, active)))
                    })
                    .unzip();
            sqlx::query(
                "WITH stored AS (
                     INSERT INTO messages (room, seq, id, ts, user_id, user_name, user_guest, text,
                                           client_id, kind, target, deleted, reply_to)
                     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[],
                                          $5::text[], $6::text[], $7::boolean[], $8::text[],
                                          $9::text[], $13::text[], $14::bigint[], $15::boolean[],
                                          $16::bigint[])
                 )
                 UPDATE rooms
                 SET last_seq = t.last_seq,
                     -- nodes' clocks may disagree: activity only moves forward
                     last_active = GREATEST(rooms.last_active, t.last_active)
                 FROM UNNEST($10::text[], $11::bigint[], $12::bigint[])
                     AS t(name, last_seq, last_active)
                 WHERE rooms.name = t.name",
            )
            .bind(&columns.room)
            .bind(&columns.seq)
            .bind(&columns.id)
            .bind(&columns.ts)
            .bind(&columns.user_id)
            .bind(&columns.user_name)
            .bind(&columns.user_guest)
            .bind(&columns.text)
            .bind(&columns.client_id)
            .bind(&moved_rooms)
            .bind(&moved_seqs)
            .bind(&moved_active)
            .bind(&columns.kind)
            .bind(&columns.target)
            .bind(&columns.deleted)
            .bind(&columns.reply_to)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(outcomes)
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
        let before = if before == 0 {
            i64::MAX
        } else {
            to_i64(before)
        };
        // plainto_tsquery reads plain words (every one required) and ignores operators.
        let rows = sqlx::query(concat!(
            "SELECT ",
            row_columns!(),
            " FROM messages
             WHERE room = $1 AND kind = 'message' AND NOT deleted AND seq < $3
               AND to_tsvector('simple', text) @@ plainto_tsquery('simple', $2)
             ORDER BY seq DESC LIMIT $4"
        ))
        .bind(room.as_str())
        .bind(words.join(" "))
        .bind(before)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
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
            sqlx::query_scalar("SELECT name FROM rooms ORDER BY last_active DESC LIMIT $1")
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
        names
            .iter()
            .map(|name| {
                RoomName::parse(name)
                    .map_err(|_| StoreError::Corrupt(format!("bad stored room {name:?}")))
            })
            .collect()
    }

    async fn shared_secret(&self, proposed: &str) -> Result<Option<String>, StoreError> {
        // First writer wins; everyone, the first included, reads back the same value.
        sqlx::query("INSERT INTO settings (name, value) VALUES ('session_secret', $1) ON CONFLICT (name) DO NOTHING")
            .bind(proposed)
            .execute(&self.pool)
            .await?;
        let secret: String =
            sqlx::query_scalar("SELECT value FROM settings WHERE name = 'session_secret'")
                .fetch_one(&self.pool)
                .await?;
        Ok(Some(secret))
    }

    /// Under a session advisory lock, so one node purges at a time: the others find it taken
    /// and skip this round (`pg_try_advisory_lock` never waits). The lock is held by a
    /// connection taken out of the pool for the purge and closed after it, so it is released
    /// whatever happens: a purge that fails, is cancelled at shutdown, or a node that dies.
    async fn purge_before(&self, horizon: i64, batch: u32) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await?.detach();
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(super::advisory::LOCK_CLASS)
            .bind(RETENTION_LOCK)
            .fetch_one(&mut conn)
            .await?;
        let purged = if locked {
            async { super::retention::purge_with!(&mut conn, horizon, batch) }.await
        } else {
            Ok(0)
        };
        let _ = sqlx::Connection::close(conn).await;
        purged
    }

    async fn close(&self) {
        // Waits for checked-out connections (an append in flight) to come back, then closes.
        self.pool.close().await;
    }

    async fn room_activity(&self, limit: u32) -> Result<Vec<(RoomName, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT name, last_active FROM rooms ORDER BY last_active DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        super::activity_from_rows(rows)
    }
}

/// New messages as one array per column, the shape `UNNEST` takes.
struct MessageColumns<'a> {
    room: Vec<&'a str>,
    seq: Vec<i64>,
    id: Vec<&'a str>,
    ts: Vec<i64>,
    user_id: Vec<&'a str>,
    user_name: Vec<&'a str>,
    user_guest: Vec<bool>,
    kind: Vec<&'static str>,
    target: Vec<Option<i64>>,
    deleted: Vec<bool>,
    reply_to: Vec<Option<i64>>,
    text: Vec<&'a str>,
    client_id: Vec<&'a str>,
}

impl<'a> MessageColumns<'a> {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            room: Vec::with_capacity(capacity),
            seq: Vec::with_capacity(capacity),
            id: Vec::with_capacity(capacity),
            ts: Vec::with_capacity(capacity),
            user_id: Vec::with_capacity(capacity),
            user_name: Vec::with_capacity(capacity),
            user_guest: Vec::with_capacity(capacity),
            kind: Vec::with_capacity(capacity),
            target: Vec::with_capacity(capacity),
            deleted: Vec::with_capacity(capacity),
            reply_to: Vec::with_capacity(capacity),
            text: Vec::with_capacity(capacity),
            client_id: Vec::with_capacity(capacity),
        }
    }

    fn push(&mut self, message: &'a Message) {
        self.room.push(message.room.as_str());
        self.seq.push(to_i64(message.seq));
        self.id.push(&message.id);
        self.ts.push(message.ts);
        self.user_id.push(message.user.id.as_str());
        self.user_name.push(message.user.name.as_str());
        self.user_guest.push(message.user.guest);
        self.kind.push(message.event.kind());
        self.target.push(message.event.target().map(to_i64));
        self.deleted.push(message.deleted);
        self.reply_to.push(message.reply_to.map(to_i64));
        self.text.push(&message.text);
        self.client_id.push(&message.client_id);
    }
}

impl PostgresStore {
    /// One read of a room's stream (`sql` binds `$1` room, then `from` if given, then `limit`),
    /// rows newest first, with its messages' reactions from the same snapshot; `with_end` for
    /// reads that also select the room's last seq.
    async fn read_page(
        &self,
        room: &RoomName,
        sql: &'static str,
        from: Option<i64>,
        limit: i64,
        with_end: bool,
    ) -> Result<Page, StoreError> {
        let mut tx = self.pool.begin().await?;
        // One snapshot for the page and its reactions.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
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
}

/// Whether `new` refers to an earlier message (an event, or a reply): such batches are stored
/// row by row ([`each`]), so that each item sees the ones before it.
fn refers(new: &NewMessage) -> bool {
    new.event != Event::Message || new.reply_to.is_some()
}

super::accounts::sql_accounts!(PostgresStore, read: pool, write: pool);
super::read_state::sql_read_state!(PostgresStore, read: pool, write: pool);
super::rooms_access::sql_rooms_access!(PostgresStore, read: pool, write: pool);

#[async_trait]
impl super::Sessions for PostgresStore {
    async fn revoke_session(&self, sid: &str, expires_at: i64) -> Result<(), StoreError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        sqlx::query("DELETE FROM revoked_sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO revoked_sessions (sid, expires_at) VALUES ($1, $2) ON CONFLICT (sid) DO NOTHING",
        )
        .bind(sid)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn is_session_revoked(&self, sid: &str) -> Result<bool, StoreError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT expires_at FROM revoked_sessions WHERE sid = $1")
                .bind(sid)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }
}
