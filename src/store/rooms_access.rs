//! Who may read and moderate a room: its visibility and topic (columns of `rooms`), its members
//! with their roles, and its bans. Both SQL backends run the same statements (`$n` parameters,
//! as in [`super::accounts`]), generated once per pool type by [`sql_rooms_access!`].
//!
//! Rows written here never touch `rooms.last_seq` or `rooms.last_active`: those belong to the
//! message writer, which reads a room's counter from its row the first time it stores into it,
//! so a row made here (with `last_seq` 0) is one it simply finds.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{DisplayName, Role, RoomName, User, UserId, Visibility};

/// A room's stored settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRow {
    pub name: RoomName,
    pub visibility: Visibility,
    pub topic: String,
}

/// One member of a room with their role, as `GET /api/rooms/{name}` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub user: User,
    pub username: Option<String>,
    pub role: Role,
}

/// The other person of a direct-message room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectRoom {
    pub room: RoomName,
    pub with: User,
    pub username: Option<String>,
}

/// Rooms' access rules. Every node reads them from the shared store; a node caches them (see
/// `rooms::access`) and forgets a room's entry when any node says it changed.
#[async_trait]
pub trait RoomsAccess: Send + Sync {
    /// Stores a new room with its first members. Returns false, changing nothing, if a row
    /// for that name exists already.
    async fn create_room(
        &self,
        room: &RoomRow,
        members: &[(UserId, Role)],
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Gives a room that exists only because people joined it a (public) row, so it can hold
    /// an owner or a ban. Does nothing if it has one.
    async fn ensure_room(&self, room: &RoomName, now: i64) -> Result<(), StoreError>;

    async fn room_row(&self, room: &RoomName) -> Result<Option<RoomRow>, StoreError>;

    /// Every member of `room` with their role.
    async fn room_roles(&self, room: &RoomName) -> Result<Vec<(UserId, Role)>, StoreError>;

    /// Everyone banned from `room`.
    async fn room_bans(&self, room: &RoomName) -> Result<Vec<UserId>, StoreError>;

    /// The first `limit` members (owner, then moderators, then members; by name) and how
    /// many there are.
    async fn members_page(
        &self,
        room: &RoomName,
        limit: u32,
    ) -> Result<(Vec<MemberRow>, u64), StoreError>;

    /// Makes `user` a member of `room` with `role` (adding or changing their row).
    async fn set_role(
        &self,
        room: &RoomName,
        user: &UserId,
        role: Role,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Removes `user`'s membership. Returns whether they had one.
    async fn remove_member(&self, room: &RoomName, user: &UserId) -> Result<bool, StoreError>;

    /// Bans `user` from `room` and ends their membership, in one transaction.
    async fn ban(
        &self,
        room: &RoomName,
        user: &UserId,
        by: &UserId,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Lifts a ban. Returns whether there was one.
    async fn unban(&self, room: &RoomName, user: &UserId) -> Result<bool, StoreError>;

    async fn set_topic(&self, room: &RoomName, topic: &str) -> Result<(), StoreError>;

    /// The private rooms `user` is a member of (direct messages included), by name.
    async fn private_rooms_of(
        &self,
        user: &UserId,
        limit: u32,
    ) -> Result<Vec<RoomName>, StoreError>;

    /// `user`'s direct-message rooms (rooms named `dm-…`) with the other member of each.
    async fn direct_rooms_of(&self, user: &UserId) -> Result<Vec<DirectRoom>, StoreError>;

    /// Like `Store::room_activity`, public rooms only: what the shared lobby may list.
    async fn public_room_activity(&self, limit: u32) -> Result<Vec<(RoomName, i64)>, StoreError>;
}

pub(crate) fn room_name(raw: String) -> Result<RoomName, StoreError> {
    RoomName::parse(&raw).map_err(|_| StoreError::Corrupt(format!("bad stored room {raw:?}")))
}

pub(crate) fn role(raw: &str) -> Result<Role, StoreError> {
    Role::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("bad stored role {raw:?}")))
}

pub(crate) fn user_from(
    id: String,
    name: String,
    username: Option<String>,
) -> Result<(User, Option<String>), StoreError> {
    let name = DisplayName::parse(&name)
        .map_err(|_| StoreError::Corrupt(format!("bad stored name {name:?}")))?;
    let user = User {
        id: UserId::from_trusted(id),
        name,
        guest: username.is_none(),
    };
    Ok((user, username))
}

/// The `rooms` columns of one room as read.
pub(crate) type RoomTuple = (String, String, String);
/// A member as read: user id, name, username, role.
pub(crate) type MemberTuple = (String, String, Option<String>, String);

/// Implements [`RoomsAccess`] for `$store`, reading through `$read` and writing through
/// `$write` (fields of `self` holding a sqlx pool).
macro_rules! sql_rooms_access {
    ($store:ty, read: $read:ident, write: $write:ident) => {
        #[async_trait::async_trait]
        impl $crate::store::rooms_access::RoomsAccess for $store {
            async fn create_room(
                &self,
                room: &$crate::store::rooms_access::RoomRow,
                members: &[($crate::domain::UserId, $crate::domain::Role)],
                now: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.$write.begin().await?;
                let done = sqlx::query(
                    "INSERT INTO rooms (name, last_seq, created_at, last_active, visibility, topic)
                     VALUES ($1, 0, $2, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                )
                .bind(room.name.as_str())
                .bind(now)
                .bind(room.visibility.as_str())
                .bind(&room.topic)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                for (user, role) in members {
                    sqlx::query(
                        "INSERT INTO room_members (room, user_id, role, added_at)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (room, user_id) DO UPDATE SET role = excluded.role",
                    )
                    .bind(room.name.as_str())
                    .bind(user.as_str())
                    .bind(role.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn ensure_room(
                &self,
                room: &$crate::domain::RoomName,
                now: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO rooms (name, last_seq, created_at, last_active)
                     VALUES ($1, 0, $2, $2) ON CONFLICT (name) DO NOTHING",
                )
                .bind(room.as_str())
                .bind(now)
                .execute(&self.$write)
                .await?;
                Ok(())
            }

            async fn room_row(
                &self,
                room: &$crate::domain::RoomName,
            ) -> Result<Option<$crate::store::rooms_access::RoomRow>, $crate::store::StoreError>
            {
                let row: Option<$crate::store::rooms_access::RoomTuple> = sqlx::query_as(
                    "SELECT name, visibility, topic FROM rooms WHERE name = $1",
                )
                .bind(room.as_str())
                .fetch_optional(&self.$read)
                .await?;
                row.map(|(name, visibility, topic)| {
                    Ok($crate::store::rooms_access::RoomRow {
                        name: $crate::store::rooms_access::room_name(name)?,
                        visibility: $crate::domain::Visibility::from_stored(&visibility),
                        topic,
                    })
                })
                .transpose()
            }

            async fn room_roles(
                &self,
                room: &$crate::domain::RoomName,
            ) -> Result<Vec<($crate::domain::UserId, $crate::domain::Role)>, $crate::store::StoreError>
            {
                let rows: Vec<(String, String)> =
                    sqlx::query_as("SELECT user_id, role FROM room_members WHERE room = $1")
                        .bind(room.as_str())
                        .fetch_all(&self.$read)
                        .await?;
                rows.into_iter()
                    .map(|(user, role)| {
                        Ok((
                            $crate::domain::UserId::from_trusted(user),
                            $crate::store::rooms_access::role(&role)?,
                        ))
                    })
                    .collect()
            }

            async fn room_bans(
                &self,
                room: &$crate::domain::RoomName,
            ) -> Result<Vec<$crate::domain::UserId>, $crate::store::StoreError> {
                let rows: Vec<String> =
                    sqlx::query_scalar("SELECT user_id FROM room_bans WHERE room = $1")
                        .bind(room.as_str())
                        .fetch_all(&self.$read)
                        .await?;
                Ok(rows
                    .into_iter()
                    .map($crate::domain::UserId::from_trusted)
                    .collect())
            }

            async fn members_page(
                &self,
                room: &$crate::domain::RoomName,
                limit: u32,
            ) -> Result<(Vec<$crate::store::rooms_access::MemberRow>, u64), $crate::store::StoreError>
            {
                let rows: Vec<$crate::store::rooms_access::MemberTuple> = sqlx::query_as(
                    "SELECT u.id, u.name, u.username, m.role
                     FROM room_members m JOIN users u ON u.id = m.user_id
                     WHERE m.room = $1
                     ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'moderator' THEN 1 ELSE 2 END,
                              u.name, u.id
                     LIMIT $2",
                )
                .bind(room.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.$read)
                .await?;
                let count: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM room_members WHERE room = $1")
                        .bind(room.as_str())
                        .fetch_one(&self.$read)
                        .await?;
                let members = rows
                    .into_iter()
                    .map(|(id, name, username, role)| {
                        let (user, username) =
                            $crate::store::rooms_access::user_from(id, name, username)?;
                        Ok($crate::store::rooms_access::MemberRow {
                            user,
                            username,
                            role: $crate::store::rooms_access::role(&role)?,
                        })
                    })
                    .collect::<Result<Vec<_>, $crate::store::StoreError>>()?;
                Ok((members, u64::try_from(count).unwrap_or(0)))
            }

            async fn set_role(
                &self,
                room: &$crate::domain::RoomName,
                user: &$crate::domain::UserId,
                role: $crate::domain::Role,
                now: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO room_members (room, user_id, role, added_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (room, user_id) DO UPDATE SET role = excluded.role",
                )
                .bind(room.as_str())
                .bind(user.as_str())
                .bind(role.as_str())
                .bind(now)
                .execute(&self.$write)
                .await?;
                Ok(())
            }

            async fn remove_member(
                &self,
                room: &$crate::domain::RoomName,
                user: &$crate::domain::UserId,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query("DELETE FROM room_members WHERE room = $1 AND user_id = $2")
                    .bind(room.as_str())
                    .bind(user.as_str())
                    .execute(&self.$write)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn ban(
                &self,
                room: &$crate::domain::RoomName,
                user: &$crate::domain::UserId,
                by: &$crate::domain::UserId,
                now: i64,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.$write.begin().await?;
                sqlx::query("DELETE FROM room_members WHERE room = $1 AND user_id = $2")
                    .bind(room.as_str())
                    .bind(user.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO room_bans (room, user_id, banned_by, banned_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (room, user_id) DO NOTHING",
                )
                .bind(room.as_str())
                .bind(user.as_str())
                .bind(by.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn unban(
                &self,
                room: &$crate::domain::RoomName,
                user: &$crate::domain::UserId,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query("DELETE FROM room_bans WHERE room = $1 AND user_id = $2")
                    .bind(room.as_str())
                    .bind(user.as_str())
                    .execute(&self.$write)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_topic(
                &self,
                room: &$crate::domain::RoomName,
                topic: &str,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE rooms SET topic = $1 WHERE name = $2")
                    .bind(topic)
                    .bind(room.as_str())
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn private_rooms_of(
                &self,
                user: &$crate::domain::UserId,
                limit: u32,
            ) -> Result<Vec<$crate::domain::RoomName>, $crate::store::StoreError> {
                let rows: Vec<String> = sqlx::query_scalar(
                    "SELECT r.name FROM room_members m JOIN rooms r ON r.name = m.room
                     WHERE m.user_id = $1 AND r.visibility = 'private'
                     ORDER BY r.last_active DESC, r.name LIMIT $2",
                )
                .bind(user.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.$read)
                .await?;
                rows.into_iter()
                    .map($crate::store::rooms_access::room_name)
                    .collect()
            }

            async fn direct_rooms_of(
                &self,
                user: &$crate::domain::UserId,
            ) -> Result<Vec<$crate::store::rooms_access::DirectRoom>, $crate::store::StoreError>
            {
                let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
                    "SELECT me.room, u.id, u.name, u.username
                     FROM room_members me
                     JOIN room_members other ON other.room = me.room AND other.user_id <> me.user_id
                     JOIN users u ON u.id = other.user_id
                     JOIN rooms r ON r.name = me.room
                     WHERE me.user_id = $1 AND me.room LIKE 'dm-%'
                     ORDER BY r.last_active DESC, me.room",
                )
                .bind(user.as_str())
                .fetch_all(&self.$read)
                .await?;
                rows.into_iter()
                    .map(|(room, id, name, username)| {
                        let (with, username) =
                            $crate::store::rooms_access::user_from(id, name, username)?;
                        Ok($crate::store::rooms_access::DirectRoom {
                            room: $crate::store::rooms_access::room_name(room)?,
                            with,
                            username,
                        })
                    })
                    .collect()
            }

            async fn public_room_activity(
                &self,
                limit: u32,
            ) -> Result<Vec<($crate::domain::RoomName, i64)>, $crate::store::StoreError> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT name, last_active FROM rooms WHERE visibility = 'public'
                     ORDER BY last_active DESC LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.$read)
                .await?;
                $crate::store::activity_from_rows(rows)
            }
        }
    };
}

pub(crate) use sql_rooms_access;
