//! Message storage behind one small trait, one module per backend. Everything above this
//! module talks to `Arc<dyn Store>` and never knows which engine holds the rows.

pub mod accounts;
pub mod advisory;
pub mod postgres;
pub mod read_state;
pub mod retention;
pub mod rooms_access;
pub mod sqlite;

use async_trait::async_trait;
use thiserror::Error;

use crate::domain::{
    ClientId, DisplayName, Event, Message, REACTION_USERS_LISTED, Reaction, RoomName, User, UserId,
};

/// A storage failure. Clients only ever learn "unavailable"; the detail goes to the log.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("sqlite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the store is closed")]
    Closed,
    #[error("{0} is in use by another confab process (one server per data folder)")]
    InUse(std::path::PathBuf),
    #[error("the database did not answer within {0:?}")]
    TimedOut(std::time::Duration),
}

/// A message or event accepted from a client, not yet stored: it has no `seq` until its batch
/// commits.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub room: RoomName,
    pub id: String,
    pub ts: i64,
    pub user: User,
    /// The message's text; empty for events without text.
    pub text: String,
    pub client_id: ClientId,
    pub event: Event,
    /// For a message: the message of the room it answers (checked by the store).
    pub reply_to: Option<u64>,
    /// The user moderates the room: they may delete others' messages too. Whether the
    /// target is theirs is checked by the store, in the transaction that deletes it.
    pub moderator: bool,
}

/// Why the store refused one item of a batch (the rest of the batch is stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The event's target (or a reply's `reply_to`) is not a message of the room, or is
    /// deleted already.
    NotFound,
    /// The target is someone else's message and the user may not change it.
    Forbidden,
    /// Nothing to do: a reaction already there, or taken back already.
    NoChange,
    /// The message has as many distinct emoji as it may.
    TooManyReactions,
}

/// Distinct emoji one message may carry.
pub const MAX_EMOJI_PER_MESSAGE: usize = 20;

/// What became of one item of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Newly stored with the next seq of its room.
    Stored(Message),
    /// The user already stored this `client_id` in this room: here is the original.
    Duplicate(Message),
    /// Not stored, and no seq taken.
    Refused(Refusal),
}

/// A run of one room's stream, oldest first: messages only (history), or messages and events
/// (a resume).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub messages: Vec<Message>,
    /// Messages older than the first one here exist (are still stored: retention may have
    /// purged a room's oldest ones).
    pub has_more: bool,
    /// The room's last seq (of any item) as of the same read, for reads that say it: the page
    /// may end before it when the newest items are events.
    pub end: Option<u64>,
}

impl Page {
    pub(crate) fn from_newest_first(mut messages: Vec<Message>) -> Self {
        messages.reverse();
        let has_more = messages.first().is_some_and(|m| m.seq > 1);
        Self {
            messages,
            has_more,
            end: None,
        }
    }

    /// The page, knowing the seq of the room's oldest message still stored (`room_first` of
    /// the reads that select it): after retention purged a room's oldest messages, seq 1 is
    /// gone and "older ones exist" means "the oldest stored one is older than our first".
    pub(crate) fn with_oldest_stored(mut self, oldest: Option<i64>) -> Self {
        self.has_more = match (self.messages.first(), oldest) {
            (Some(first), Some(oldest)) => i64::try_from(first.seq).is_ok_and(|seq| seq > oldest),
            _ => false,
        };
        self
    }

    /// The page with the room's last seq as of its read.
    pub(crate) fn ending_at(mut self, end: Option<i64>) -> Self {
        self.end = Some(end.and_then(|end| u64::try_from(end).ok()).unwrap_or(0));
        self
    }

    /// The room's last seq this page knows of: its `end`, else its newest item.
    pub fn end_seq(&self) -> Option<u64> {
        self.end.or_else(|| self.last_seq())
    }

    pub fn last_seq(&self) -> Option<u64> {
        self.messages.last().map(|m| m.seq)
    }
}

/// The columns of one `messages` row, as every backend reads them.
pub(crate) struct StoredRow {
    pub seq: i64,
    pub id: String,
    pub ts: i64,
    pub user_id: String,
    pub user_name: String,
    pub user_guest: bool,
    pub text: String,
    pub client_id: String,
    pub kind: String,
    pub target: Option<i64>,
    pub deleted: bool,
    pub edited_at: Option<i64>,
    pub reply_to: Option<i64>,
    pub added: Option<bool>,
}

impl StoredRow {
    /// Checked on the way in: stored data is trusted, not blindly.
    pub(crate) fn into_message(self, room: &RoomName) -> Result<Message, StoreError> {
        let name = DisplayName::parse(&self.user_name)
            .map_err(|_| StoreError::Corrupt(format!("bad stored name {:?}", self.user_name)))?;
        let seq = u64::try_from(self.seq)
            .map_err(|_| StoreError::Corrupt(format!("negative seq {}", self.seq)))?;
        let target = self.target.and_then(|target| u64::try_from(target).ok());
        let event = Event::from_stored(&self.kind, target, self.added)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown event kind {:?}", self.kind)))?;
        Ok(Message {
            room: room.clone(),
            seq,
            id: self.id,
            ts: self.ts,
            user: User {
                id: UserId::from_trusted(self.user_id),
                name,
                guest: self.user_guest,
            },
            text: self.text,
            client_id: self.client_id,
            event,
            deleted: self.deleted,
            edited_at: self.edited_at,
            reply_to: self.reply_to.and_then(|seq| u64::try_from(seq).ok()),
            reactions: Vec::new(),
        })
    }
}

/// The columns every read of `messages` selects, for `concat!` into static SQL.
macro_rules! row_columns {
    () => {
        "seq, id, ts, user_id, user_name, user_guest, text, client_id, kind, target, deleted, \
         edited_at, reply_to, added"
    };
}
pub(crate) use row_columns;

/// One `messages` row read through sqlx (the columns of [`row_columns!`]).
pub(crate) fn message_from_row<'r, R>(room: &RoomName, row: &'r R) -> Result<Message, StoreError>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    StoredRow {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        ts: row.try_get("ts")?,
        user_id: row.try_get("user_id")?,
        user_name: row.try_get("user_name")?,
        user_guest: row.try_get("user_guest")?,
        text: row.try_get("text")?,
        client_id: row.try_get("client_id")?,
        kind: row.try_get("kind")?,
        target: row.try_get("target")?,
        deleted: row.try_get("deleted")?,
        edited_at: row.try_get("edited_at")?,
        reply_to: row.try_get("reply_to")?,
        added: row.try_get("added")?,
    }
    .into_message(room)
}

/// PostgreSQL's TEXT cannot hold U+0000, and one such message would fail its whole batch (every
/// other user's messages with it). The edge lets NUL through today, so every backend replaces
/// it (one contract, whatever the engine), and the stored message, which is what gets
/// broadcast, carries the replacement.
pub(crate) fn storable_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// A new message as stored with `seq`: what its sender and the fan-out see.
pub(crate) fn stored_message(new: &NewMessage, seq: u64, text: String) -> Message {
    Message {
        room: new.room.clone(),
        seq,
        id: new.id.clone(),
        ts: new.ts,
        user: new.user.clone(),
        text,
        client_id: new.client_id.as_str().to_owned(),
        event: new.event,
        deleted: false,
        edited_at: None,
        reply_to: new.reply_to,
        reactions: Vec::new(),
    }
}

/// The reads of a room's stream, the same SQL on every backend (`$n` parameters, which SQLite
/// numbers as PostgreSQL does). Pages that say the room's last seq read it in the same
/// statement, so it is from the same snapshot as the page: a later value would let a join's
/// cursor skip items committed between the two reads.
pub(crate) mod reads {
    /// The seq of the room's (`$1`) oldest stored message: 1 unless retention purged some.
    /// Ordered and limited rather than `min()`, so both engines walk the primary key from the
    /// start and stop at the first message.
    macro_rules! oldest_message {
        () => {
            "(SELECT seq FROM messages WHERE room = $1 AND kind = 'message' ORDER BY seq LIMIT 1)"
        };
    }
    /// `$1` room, `$2` limit: the newest messages, with `room_end` and `room_first`.
    pub const LATEST: &str = concat!(
        "SELECT (SELECT last_seq FROM rooms WHERE name = $1) AS room_end, ",
        oldest_message!(),
        " AS room_first, p.*
         FROM (SELECT 1) AS one LEFT JOIN (SELECT ",
        row_columns!(),
        " FROM messages WHERE room = $1 AND kind = 'message'
          ORDER BY seq DESC LIMIT $2) AS p ON TRUE"
    );
    /// `$1` room, `$2` since, `$3` cap: the newest items after `since`, with `room_end` and
    /// `room_first`.
    pub const AFTER: &str = concat!(
        "SELECT (SELECT last_seq FROM rooms WHERE name = $1) AS room_end, ",
        oldest_message!(),
        " AS room_first, p.*
         FROM (SELECT 1) AS one LEFT JOIN (SELECT ",
        row_columns!(),
        " FROM messages WHERE room = $1 AND seq > $2
          ORDER BY seq DESC LIMIT $3) AS p ON TRUE"
    );
    /// `$1` room, `$2` before, `$3` limit: messages, newest first, each with `room_first`.
    pub const BEFORE: &str = concat!(
        "SELECT ",
        oldest_message!(),
        " AS room_first, ",
        row_columns!(),
        " FROM messages WHERE room = $1 AND seq < $2 AND kind = 'message'
          ORDER BY seq DESC LIMIT $3"
    );
    /// `$1` room, `$2`..=`$3` a range of seqs: who reacted with what to the messages there,
    /// in the order the reactions were given.
    pub const REACTIONS: &str = "SELECT target, emoji, user_id, user_name, user_guest
         FROM reactions WHERE room = $1 AND target BETWEEN $2 AND $3
         ORDER BY target, seq";
    /// `$1` room, `$2` after, `$3` limit: items, oldest first.
    pub const STREAM_AFTER: &str = concat!(
        "SELECT ",
        row_columns!(),
        " FROM messages WHERE room = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    );
}

/// Rows of [`reads::LATEST`] or [`reads::AFTER`] (newest first, each with `room_end`; one row of
/// NULLs when the page is empty) into a page that knows the room's last seq.
pub(crate) fn page_with_end<'r, R>(room: &RoomName, rows: &'r [R]) -> Result<Page, StoreError>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let (end, oldest): (Option<i64>, Option<i64>) = match rows.first() {
        Some(row) => (row.try_get("room_end")?, row.try_get("room_first")?),
        None => (None, None),
    };
    let mut messages = Vec::with_capacity(rows.len());
    for row in rows {
        let seq: Option<i64> = row.try_get("seq")?;
        if seq.is_some() {
            messages.push(message_from_row(room, row)?);
        }
    }
    Ok(Page::from_newest_first(messages)
        .ending_at(end)
        .with_oldest_stored(oldest))
}

/// The words of a search query, taken literally: split on white space, without the ones that
/// hold no letter or digit (they match nothing), at most 20.
pub fn search_words(query: &str) -> Vec<String> {
    query
        .split_whitespace()
        .filter(|word| word.chars().any(char::is_alphanumeric))
        .take(20)
        .map(str::to_owned)
        .collect()
}

/// Rows of a search (newest first, `limit + 1` asked for) into the page and whether more match.
pub(crate) fn search_page<'r, R>(
    room: &RoomName,
    rows: &'r [R],
    limit: u32,
) -> Result<(Vec<Message>, bool), StoreError>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    let messages = rows
        .iter()
        .take(limit)
        .map(|row| message_from_row(room, row))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((messages, more))
}

/// The seqs a page's reactions are read for, if it holds messages that are not deleted. By
/// lowest and highest, not first and last: pages are read in either order.
pub(crate) fn reaction_range(page: &Page) -> Option<(i64, i64)> {
    let live = page
        .messages
        .iter()
        .filter(|m| m.event == Event::Message && !m.deleted)
        .map(|m| i64::try_from(m.seq).unwrap_or(i64::MAX));
    live.fold(None, |range, seq| match range {
        None => Some((seq, seq)),
        Some((low, high)) => Some((seq.min(low), seq.max(high))),
    })
}

/// Rows of [`reads::REACTIONS`] summed up onto the page's messages: per emoji, in the order it
/// was first given, how many reacted and the first [`REACTION_USERS_LISTED`] of them.
pub(crate) fn attach_reactions<'r, R>(page: &mut Page, rows: &'r [R]) -> Result<(), StoreError>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut by_target: std::collections::HashMap<u64, Vec<Reaction>> =
        std::collections::HashMap::new();
    for row in rows {
        let target: i64 = row.try_get("target")?;
        let emoji: String = row.try_get("emoji")?;
        let name: String = row.try_get("user_name")?;
        let user = User {
            id: UserId::from_trusted(row.try_get("user_id")?),
            name: DisplayName::parse(&name)
                .map_err(|_| StoreError::Corrupt(format!("bad stored name {name:?}")))?,
            guest: row.try_get("user_guest")?,
        };
        let reactions = by_target
            .entry(u64::try_from(target).unwrap_or_default())
            .or_default();
        match reactions.iter_mut().find(|r| r.emoji == emoji) {
            Some(reaction) => {
                reaction.count += 1;
                if reaction.users.len() < REACTION_USERS_LISTED {
                    reaction.users.push(user);
                }
            }
            None => reactions.push(Reaction {
                emoji,
                count: 1,
                users: vec![user],
            }),
        }
    }
    for message in &mut page.messages {
        if message.event == Event::Message
            && let Some(reactions) = by_target.remove(&message.seq)
        {
            message.reactions = reactions;
        }
    }
    Ok(())
}

/// Rows read newest first (as `ORDER BY seq DESC LIMIT n` gives them) into a page.
pub(crate) fn page_from_rows<'r, R>(room: &RoomName, rows: &'r [R]) -> Result<Page, StoreError>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let messages = rows
        .iter()
        .map(|row| message_from_row(room, row))
        .collect::<Result<Vec<_>, _>>()?;
    let page = Page::from_newest_first(messages);
    // Reads that select `room_first` (history's) say exactly whether older messages exist;
    // the others (a reader catching up) keep the plain answer.
    match rows
        .first()
        .map(|row| row.try_get::<Option<i64>, _>("room_first"))
    {
        Some(Ok(oldest)) => Ok(page.with_oldest_stored(oldest)),
        Some(Err(sqlx::Error::ColumnNotFound(_))) | None => Ok(page),
        Some(Err(error)) => Err(error.into()),
    }
}

/// Keeps the publish order of some rooms across nodes: while a node holds it, no other node
/// can store-and-publish to those rooms, so publish order matches seq order everywhere.
#[async_trait]
pub trait PublishOrder: Send + Sync + 'static {
    async fn hold(&self, rooms: &[&RoomName]) -> Result<Box<dyn OrderHold>, StoreError>;
}

/// A held publish order; released once the batch is published.
#[async_trait]
pub trait OrderHold: Send {
    async fn release(self: Box<Self>);
}

/// Where messages live. Implementations must keep each room's seqs gapless and unique even
/// when several writers (nodes) append at once, and must store a batch all or nothing.
#[async_trait]
pub trait Store:
    Sessions
    + accounts::Accounts
    + rooms_access::RoomsAccess
    + read_state::ReadState
    + Send
    + Sync
    + 'static
{
    /// Stores a batch in one transaction, assigning each new message its room's next seq in
    /// batch order. Returns one outcome per input, in input order.
    async fn append(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError>;

    /// The newest `limit` messages of a room (no events; deleted ones as tombstones), with the
    /// room's last seq (`Page::end`) as of the same read.
    async fn latest(&self, room: &RoomName, limit: u32) -> Result<Page, StoreError>;

    /// Every item (messages and events) with `seq > since`; when more than `cap`, only the
    /// newest `cap`. With the room's last seq (`Page::end`) as of the same read.
    async fn after(&self, room: &RoomName, since: u64, cap: u32) -> Result<Page, StoreError>;

    /// The newest `limit` messages (no events) with `seq < before`.
    async fn before(&self, room: &RoomName, before: u64, limit: u32) -> Result<Page, StoreError>;

    /// Messages of `room` (not deleted) whose current text has every one of `words`, with a
    /// seq below `before`, newest first: at most `limit`, and whether more match.
    async fn search(
        &self,
        room: &RoomName,
        words: &[String],
        before: u64,
        limit: u32,
    ) -> Result<(Vec<Message>, bool), StoreError>;

    /// The first `limit` items (messages and events) with `seq > after`, oldest first: how a
    /// reader that fell behind the room's log catches up.
    async fn stream_after(
        &self,
        room: &RoomName,
        after: u64,
        limit: u32,
    ) -> Result<Page, StoreError>;

    /// Rooms that hold messages, most recently active first.
    async fn recent_rooms(&self, limit: u32) -> Result<Vec<RoomName>, StoreError>;

    /// The session-signing secret shared by every node on this storage: the stored one, or
    /// `proposed` if none was stored yet. `None` for storage only one node uses.
    async fn shared_secret(&self, _proposed: &str) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    /// Waits for in-flight work and releases the engine (files, connections).
    async fn close(&self);

    /// Rooms that hold messages with the time of their last message (ms since the epoch),
    /// most recently active first: what the lobby ranks by.
    async fn room_activity(&self, limit: u32) -> Result<Vec<(RoomName, i64)>, StoreError>;

    /// Retention: deletes each room's oldest run of items stored before `horizon` (ms since the
    /// epoch), with their reactions, in transactions of at most `batch` items (see
    /// [`retention`] for exactly what goes and why). Returns how many items were deleted; 0
    /// also when another node is purging the same database right now.
    async fn purge_before(&self, horizon: i64, batch: u32) -> Result<u64, StoreError>;
}

/// Rows of `(name, last_active)` checked back into room names.
pub(crate) fn activity_from_rows(
    rows: Vec<(String, i64)>,
) -> Result<Vec<(RoomName, i64)>, StoreError> {
    rows.into_iter()
        .map(|(name, last_active)| match RoomName::parse(&name) {
            Ok(room) => Ok((room, last_active)),
            Err(_) => Err(StoreError::Corrupt(format!("bad stored room {name:?}"))),
        })
        .collect()
}

/// Signed-out sessions, kept where every node reads them, so a revoked cookie is refused by
/// every node from the moment `revoke_session` returns.
#[async_trait]
pub trait Sessions: Send + Sync {
    /// Refuses session `sid` from now until `expires_at` (ms since the epoch), when its cookie
    /// expires anyway; also forgets revocations whose cookies have expired.
    async fn revoke_session(&self, sid: &str, expires_at: i64) -> Result<(), StoreError>;

    /// Whether session `sid` was revoked.
    async fn is_session_revoked(&self, sid: &str) -> Result<bool, StoreError>;
}
