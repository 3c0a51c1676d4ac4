//! Read markers: per user and room, the seq up to which the user has read, and what is unread
//! after it. Both SQL backends run the same statements, generated once per pool type by
//! [`sql_read_state!`] (as `store::accounts` does).

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{RoomName, UserId};

/// Newest unread messages whose texts are looked at for mentions.
pub const MENTION_SCAN: i64 = 500;

/// What is unread in a room for a user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unread {
    /// Messages from others, not deleted, after the user's marker.
    pub count: u64,
    /// The texts of the newest of them (at most [`MENTION_SCAN`]), to count mentions in.
    pub texts: Vec<String>,
}

#[async_trait]
pub trait ReadState: Send + Sync {
    /// Every room where `user` has a marker, with the marker.
    async fn read_markers_of(&self, user: &UserId) -> Result<Vec<(String, u64)>, StoreError>;

    /// The user's marker in `room`, moved up to their own newest message there (writing a
    /// message means having read what came before it); `None` before their first join.
    async fn read_seq(&self, user: &UserId, room: &RoomName) -> Result<Option<u64>, StoreError>;

    /// Moves the marker forward to `seq` (creating it if missing); returns it as it is now.
    async fn mark_read(&self, user: &UserId, room: &RoomName, seq: u64) -> Result<u64, StoreError>;

    /// What is unread in `room` after `marker` for `user`.
    async fn unread(
        &self,
        user: &UserId,
        room: &RoomName,
        marker: u64,
    ) -> Result<Unread, StoreError>;
}

pub(crate) fn to_seq(value: Option<i64>) -> Option<u64> {
    value.and_then(|v| u64::try_from(v).ok())
}

/// Implements [`ReadState`] for `$store`, reading through `$read`, writing through `$write`.
macro_rules! sql_read_state {
    ($store:ty, read: $read:ident, write: $write:ident) => {
        #[async_trait::async_trait]
        impl $crate::store::read_state::ReadState for $store {
            async fn read_markers_of(
                &self,
                user: &$crate::domain::UserId,
            ) -> Result<Vec<(String, u64)>, $crate::store::StoreError> {
                let rows: Vec<(String, i64)> =
                    sqlx::query_as("SELECT room, seq FROM read_markers WHERE user_id = $1")
                        .bind(user.as_str())
                        .fetch_all(&self.$read)
                        .await?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(room, seq)| Some((room, u64::try_from(seq).ok()?)))
                    .collect())
            }

            async fn read_seq(
                &self,
                user: &$crate::domain::UserId,
                room: &$crate::domain::RoomName,
            ) -> Result<Option<u64>, $crate::store::StoreError> {
                let marker: Option<i64> = sqlx::query_scalar(
                    "SELECT seq FROM read_markers WHERE user_id = $1 AND room = $2",
                )
                .bind(user.as_str())
                .bind(room.as_str())
                .fetch_optional(&self.$read)
                .await?;
                let Some(marker) = $crate::store::read_state::to_seq(marker) else {
                    return Ok(None);
                };
                let own: Option<i64> = sqlx::query_scalar(
                    "SELECT MAX(seq) FROM messages
                     WHERE room = $1 AND user_id = $2 AND kind = 'message'",
                )
                .bind(room.as_str())
                .bind(user.as_str())
                .fetch_one(&self.$read)
                .await?;
                let own = $crate::store::read_state::to_seq(own).unwrap_or(0);
                Ok(Some(marker.max(own)))
            }

            async fn mark_read(
                &self,
                user: &$crate::domain::UserId,
                room: &$crate::domain::RoomName,
                seq: u64,
            ) -> Result<u64, $crate::store::StoreError> {
                let seq = i64::try_from(seq).unwrap_or(i64::MAX);
                let now: i64 = sqlx::query_scalar(
                    "INSERT INTO read_markers (user_id, room, seq) VALUES ($1, $2, $3)
                     ON CONFLICT (user_id, room) DO UPDATE SET seq = CASE
                         WHEN excluded.seq > read_markers.seq THEN excluded.seq
                         ELSE read_markers.seq END
                     RETURNING seq",
                )
                .bind(user.as_str())
                .bind(room.as_str())
                .bind(seq)
                .fetch_one(&self.$write)
                .await?;
                Ok(u64::try_from(now).unwrap_or_default())
            }

            async fn unread(
                &self,
                user: &$crate::domain::UserId,
                room: &$crate::domain::RoomName,
                marker: u64,
            ) -> Result<$crate::store::read_state::Unread, $crate::store::StoreError> {
                let marker = i64::try_from(marker).unwrap_or(i64::MAX);
                let count: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM messages
                     WHERE room = $1 AND seq > $2 AND kind = 'message' AND NOT deleted
                       AND user_id <> $3",
                )
                .bind(room.as_str())
                .bind(marker)
                .bind(user.as_str())
                .fetch_one(&self.$read)
                .await?;
                let texts: Vec<String> = sqlx::query_scalar(
                    "SELECT text FROM messages
                     WHERE room = $1 AND seq > $2 AND kind = 'message' AND NOT deleted
                       AND user_id <> $3
                     ORDER BY seq DESC LIMIT $4",
                )
                .bind(room.as_str())
                .bind(marker)
                .bind(user.as_str())
                .bind($crate::store::read_state::MENTION_SCAN)
                .fetch_all(&self.$read)
                .await?;
                Ok($crate::store::read_state::Unread {
                    count: u64::try_from(count).unwrap_or_default(),
                    texts,
                })
            }
        }
    };
}

pub(crate) use sql_read_state;
