//! PostgreSQL, row by row: batches with events or replies, which check what they refer to
//! (possibly stored earlier in the same batch) and change the room's state (a tombstone, an
//! edited text, a reaction). Their rooms are locked already, so nothing changes under them
//! until the commit. Rare next to plain messages, which keep the multi-row path.

use std::collections::HashMap;

use sqlx::{Postgres, Row, Transaction};

use super::{RoomCounter, to_i64};
use crate::domain::{Event, Message, RoomName};
use crate::store::{
    Appended, MAX_EMOJI_PER_MESSAGE, NewMessage, Refusal, StoreError, message_from_row,
    row_columns, storable_text, stored_message,
};

type Tx<'c> = Transaction<'c, Postgres>;

/// Stores `batch` in order, one row at a time, numbering from `counters`.
pub(super) async fn append(
    tx: &mut Tx<'_>,
    batch: &[NewMessage],
    counters: &mut HashMap<String, RoomCounter>,
) -> Result<Vec<Appended>, StoreError> {
    let mut outcomes = Vec::with_capacity(batch.len());
    for new in batch {
        if let Some(original) = stored_by_client_id(tx, new).await? {
            outcomes.push(Appended::Duplicate(original));
            continue;
        }
        let counter = counters
            .get_mut(new.room.as_str())
            .ok_or_else(|| StoreError::Corrupt(format!("room {} not locked", new.room)))?;
        let seq = counter.last_seq + 1;
        if let Some(refusal) = apply(tx, new, seq).await? {
            outcomes.push(Appended::Refused(refusal));
            continue;
        }
        let text = storable_text(&new.text);
        sqlx::query(
            "INSERT INTO messages (room, seq, id, ts, user_id, user_name, user_guest, text,
                                   client_id, kind, target, reply_to, added)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(new.room.as_str())
        .bind(seq)
        .bind(&new.id)
        .bind(new.ts)
        .bind(new.user.id.as_str())
        .bind(new.user.name.as_str())
        .bind(new.user.guest)
        .bind(text.as_ref())
        .bind(new.client_id.as_str())
        .bind(new.event.kind())
        .bind(new.event.target().map(to_i64))
        .bind(new.reply_to.map(to_i64))
        .bind(new.event.added())
        .execute(&mut **tx)
        .await?;
        counter.last_seq = seq;
        counter.last_active = Some(new.ts);
        let seq = u64::try_from(seq).unwrap_or_default();
        outcomes.push(Appended::Stored(stored_message(
            new,
            seq,
            text.into_owned(),
        )));
    }
    Ok(outcomes)
}

/// Moves the counters of the rooms the batch stored into.
pub(super) async fn save_counters(
    tx: &mut Tx<'_>,
    counters: &HashMap<String, RoomCounter>,
) -> Result<(), StoreError> {
    let (rooms, (seqs, active)): (Vec<&str>, (Vec<i64>, Vec<i64>)) = counters
        .iter()
        .filter_map(|(name, c)| Some((name.as_str(), (c.last_seq, c.last_active?))))
        .unzip();
    sqlx::query(
        "UPDATE rooms SET last_seq = t.last_seq,
             last_active = GREATEST(rooms.last_active, t.last_active)
         FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) AS t(name, last_seq, last_active)
         WHERE rooms.name = t.name",
    )
    .bind(&rooms)
    .bind(&seqs)
    .bind(&active)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn stored_by_client_id(
    tx: &mut Tx<'_>,
    new: &NewMessage,
) -> Result<Option<Message>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        row_columns!(),
        " FROM messages WHERE room = $1 AND user_id = $2 AND client_id = $3"
    ))
    .bind(new.room.as_str())
    .bind(new.user.id.as_str())
    .bind(new.client_id.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| message_from_row(&new.room, &row)).transpose()
}

/// Author and deleted flag of message `seq` of `room`; `None` if there is no such message.
async fn message_at(
    tx: &mut Tx<'_>,
    room: &RoomName,
    seq: u64,
) -> Result<Option<(String, bool)>, StoreError> {
    let row = sqlx::query(
        "SELECT user_id, deleted FROM messages WHERE room = $1 AND seq = $2 AND kind = 'message'",
    )
    .bind(room.as_str())
    .bind(to_i64(seq))
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| Ok((row.try_get("user_id")?, row.try_get("deleted")?)))
        .transpose()
}

/// The same rules as SQLite's write side (`store::sqlite::write::apply`): checks what `new`
/// refers to and applies its effect, or says why not (changing nothing).
async fn apply(tx: &mut Tx<'_>, new: &NewMessage, seq: i64) -> Result<Option<Refusal>, StoreError> {
    let room = new.room.as_str();
    let own = |author: &str| author == new.user.id.as_str();
    match new.event {
        Event::Message => match new.reply_to {
            Some(seq) if message_at(tx, &new.room, seq).await?.is_none() => {
                Ok(Some(Refusal::NotFound))
            }
            _ => Ok(None),
        },
        Event::Deleted { target } => match message_at(tx, &new.room, target).await? {
            None | Some((_, true)) => Ok(Some(Refusal::NotFound)),
            Some((author, _)) if !own(&author) && !new.moderator => Ok(Some(Refusal::Forbidden)),
            Some(_) => {
                sqlx::query(
                    "UPDATE messages SET deleted = TRUE, text = '' WHERE room = $1 AND seq = $2",
                )
                .bind(room)
                .bind(to_i64(target))
                .execute(&mut **tx)
                .await?;
                sqlx::query("DELETE FROM reactions WHERE room = $1 AND target = $2")
                    .bind(room)
                    .bind(to_i64(target))
                    .execute(&mut **tx)
                    .await?;
                Ok(None)
            }
        },
        Event::Edited { target } => match message_at(tx, &new.room, target).await? {
            None | Some((_, true)) => Ok(Some(Refusal::NotFound)),
            Some((author, _)) if !own(&author) => Ok(Some(Refusal::Forbidden)),
            Some(_) => {
                sqlx::query(
                    "UPDATE messages SET text = $1, edited_at = $2 WHERE room = $3 AND seq = $4",
                )
                .bind(storable_text(&new.text).as_ref())
                .bind(new.ts)
                .bind(room)
                .bind(to_i64(target))
                .execute(&mut **tx)
                .await?;
                Ok(None)
            }
        },
        Event::Reaction { target, added } => {
            if !matches!(message_at(tx, &new.room, target).await?, Some((_, false))) {
                return Ok(Some(Refusal::NotFound));
            }
            let row = sqlx::query(
                "SELECT COUNT(DISTINCT emoji) AS distinct_emoji,
                        COALESCE(BOOL_OR(emoji = $3), FALSE) AS present,
                        COALESCE(BOOL_OR(emoji = $3 AND user_id = $4), FALSE) AS mine
                 FROM reactions WHERE room = $1 AND target = $2",
            )
            .bind(room)
            .bind(to_i64(target))
            .bind(&new.text)
            .bind(new.user.id.as_str())
            .fetch_one(&mut **tx)
            .await?;
            let mine: bool = row.try_get("mine")?;
            if mine == added {
                return Ok(Some(Refusal::NoChange));
            }
            if added {
                let distinct: i64 = row.try_get("distinct_emoji")?;
                let present: bool = row.try_get("present")?;
                if !present && distinct >= MAX_EMOJI_PER_MESSAGE as i64 {
                    return Ok(Some(Refusal::TooManyReactions));
                }
                sqlx::query(
                    "INSERT INTO reactions (room, target, emoji, user_id, user_name, user_guest, seq)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(room)
                .bind(to_i64(target))
                .bind(&new.text)
                .bind(new.user.id.as_str())
                .bind(new.user.name.as_str())
                .bind(new.user.guest)
                .bind(seq)
                .execute(&mut **tx)
                .await?;
            } else {
                sqlx::query(
                    "DELETE FROM reactions
                     WHERE room = $1 AND target = $2 AND emoji = $3 AND user_id = $4",
                )
                .bind(room)
                .bind(to_i64(target))
                .bind(&new.text)
                .bind(new.user.id.as_str())
                .execute(&mut **tx)
                .await?;
            }
            Ok(None)
        }
    }
}
