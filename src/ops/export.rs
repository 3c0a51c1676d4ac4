//! `confab export --room NAME`: a room's messages as JSON lines, oldest first, each in its
//! current state (edited text, tombstones, reactions, `reply_to`) and in the shape `history`
//! gives them (docs/protocol.md), for archiving or moving a room elsewhere.
//!
//! It pages through the room's stream a few hundred items at a time and writes each page out
//! before reading the next, so memory stays bounded whatever the room's size. Events (edits,
//! deletions, reactions) are not written as lines of their own: the messages they changed
//! already show their effect. Each page is its own read snapshot; on a server that is running,
//! a message edited while the export runs shows whichever text the page read, and messages
//! stored after the export reached the end are not in it.

use std::io::Write;

use crate::domain::{Event, RoomName};
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteReader;
use crate::store::{Page, Store, StoreError};

/// Items read per page: small enough that a page of long messages stays a few MB.
const PAGE: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

/// Where the messages are read from: the data folder's SQLite file (beside a running server)
/// or the PostgreSQL database.
pub enum Source {
    Sqlite(SqliteReader),
    Postgres(PostgresStore),
}

impl Source {
    async fn page(&self, room: &RoomName, after: u64) -> Result<Page, StoreError> {
        match self {
            Self::Sqlite(reader) => reader.stream_after(room, after, PAGE).await,
            Self::Postgres(store) => store.stream_after(room, after, PAGE).await,
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(reader) => reader.close().await,
            Self::Postgres(store) => store.close().await,
        }
    }
}

/// Writes every message of `room` to `out`, one JSON object per line in seq order. Returns how
/// many were written (a room that does not exist has none).
pub async fn export(
    source: &Source,
    room: &RoomName,
    out: &mut impl Write,
) -> Result<u64, ExportError> {
    let mut after = 0;
    let mut written = 0;
    loop {
        let page = source.page(room, after).await?;
        let Some(last) = page.last_seq() else {
            break;
        };
        for message in page.messages.iter().filter(|m| m.event == Event::Message) {
            out.write_all(crate::protocol::server::export_line(message).as_bytes())?;
            out.write_all(b"\n")?;
            written += 1;
        }
        after = last;
    }
    out.flush()?;
    Ok(written)
}
