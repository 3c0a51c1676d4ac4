//! Users and their sessions, in whichever engine holds the messages. Both SQL backends run the
//! same statements (written with `$n` parameters, which SQLite numbers by first appearance as
//! PostgreSQL does), generated once for each pool type by [`sql_accounts!`].

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{DisplayName, User, UserId};

/// A user row: who they are, and what only the server may know about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: User,
    /// Lowercase; `None` for guests.
    pub username: Option<String>,
    pub admin: bool,
    /// The argon2id PHC string; `None` for guests.
    pub password_hash: Option<String>,
    /// Banned from the server by an administrator: no session of theirs is honoured.
    pub banned: bool,
}

/// One live session of a user, as `GET /api/sessions` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub sid: String,
    pub user_id: UserId,
    /// Milliseconds since the epoch.
    pub created: i64,
    pub last_seen: i64,
    pub expires_at: i64,
    pub user_agent: String,
}

/// Why an account change was refused by the store.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("that username is taken")]
    UsernameTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AccountError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(error))
    }
}

/// Users and sessions. Every node reads them from the shared store, so a change (a new name, a
/// revoked session, an administrator granted) holds on every node from the moment it returns.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Stores a new user (a guest when `username` is `None`).
    async fn create_user(&self, account: &Account, now: i64) -> Result<(), AccountError>;

    /// Turns the guest `id` into an account: username, password and (optionally) a new name.
    /// Returns false if `id` is not a guest's (it may be missing: the caller then creates it).
    async fn register_guest(
        &self,
        id: &UserId,
        username: &str,
        password_hash: &str,
        name: &DisplayName,
    ) -> Result<bool, AccountError>;

    async fn account_by_username(&self, username: &str) -> Result<Option<Account>, StoreError>;

    async fn account_by_id(&self, id: &UserId) -> Result<Option<Account>, StoreError>;

    /// Changes a user's display name.
    async fn set_name(&self, id: &UserId, name: &DisplayName) -> Result<(), StoreError>;

    async fn set_password(&self, id: &UserId, password_hash: &str) -> Result<(), StoreError>;

    /// Grants or revokes server administration. Returns false for an unknown username.
    async fn set_admin(&self, username: &str, admin: bool) -> Result<bool, StoreError>;

    /// Bans (`true`) or unbans a user server-wide. Returns false for an unknown id.
    async fn set_banned(&self, id: &UserId, banned: bool) -> Result<bool, StoreError>;

    /// The banned users, by name, at most `limit` of them.
    async fn banned_users(&self, limit: u32) -> Result<Vec<Account>, StoreError>;

    /// Records a new session of an existing user.
    async fn start_session(&self, session: &SessionRow) -> Result<(), StoreError>;

    /// A live session and its user's current account, if the session exists and has not
    /// expired at `now`.
    async fn session(
        &self,
        sid: &str,
        now: i64,
    ) -> Result<Option<(SessionRow, Account)>, StoreError>;

    /// Moves a session's `last_seen`.
    async fn touch_session(&self, sid: &str, now: i64) -> Result<(), StoreError>;

    /// A user's live sessions at `now`, oldest first.
    async fn sessions_of(&self, user: &UserId, now: i64) -> Result<Vec<SessionRow>, StoreError>;

    /// Ends one session of `user`. Returns it if it existed. The caller revokes its id too
    /// (see [`super::Sessions`]), so a cookie naming it is refused even on a node that
    /// missed the news.
    async fn end_session(&self, user: &UserId, sid: &str)
    -> Result<Option<SessionRow>, StoreError>;

    /// Ends every session of `user` but `keep`; returns the ended ones.
    async fn end_sessions_of(
        &self,
        user: &UserId,
        keep: Option<&str>,
    ) -> Result<Vec<SessionRow>, StoreError>;
}

pub(crate) type AccountTuple = (String, String, Option<String>, bool, Option<String>, bool);
type SessionTuple = (String, String, i64, i64, i64, String);

pub(crate) fn account_from(row: AccountTuple) -> Result<Account, StoreError> {
    let (id, name, username, admin, password_hash, banned) = row;
    let name = DisplayName::parse(&name)
        .map_err(|_| StoreError::Corrupt(format!("bad stored name {name:?}")))?;
    Ok(Account {
        user: User {
            id: UserId::from_trusted(id),
            name,
            guest: username.is_none(),
        },
        username,
        admin,
        password_hash,
        banned,
    })
}

pub(crate) fn session_from(row: SessionTuple) -> SessionRow {
    let (sid, user_id, created, last_seen, expires_at, user_agent) = row;
    SessionRow {
        sid,
        user_id: UserId::from_trusted(user_id),
        created,
        last_seen,
        expires_at,
        user_agent,
    }
}

/// Whether a database error is a unique-constraint violation (a username taken meanwhile).
fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Implements [`Accounts`] for `$store`, reading through `$read` and writing through `$write`
/// (expressions on `self` giving a sqlx pool).
macro_rules! sql_accounts {
    ($store:ty, read: $read:ident, write: $write:ident) => {
        #[async_trait::async_trait]
        impl $crate::store::accounts::Accounts for $store {
            async fn create_user(
                &self,
                account: &$crate::store::accounts::Account,
                now: i64,
            ) -> Result<(), $crate::store::accounts::AccountError> {
                $crate::store::accounts::map_unique(
                    sqlx::query(
                        "INSERT INTO users (id, name, username, password_hash, admin, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(account.user.id.as_str())
                    .bind(account.user.name.as_str())
                    .bind(account.username.as_deref())
                    .bind(account.password_hash.as_deref())
                    .bind(account.admin)
                    .bind(now)
                    .execute(&self.$write)
                    .await,
                )
                .map(|_| ())
            }

            async fn register_guest(
                &self,
                id: &$crate::domain::UserId,
                username: &str,
                password_hash: &str,
                name: &$crate::domain::DisplayName,
            ) -> Result<bool, $crate::store::accounts::AccountError> {
                let done = $crate::store::accounts::map_unique(
                    sqlx::query(
                        "UPDATE users SET username = $1, password_hash = $2, name = $3
                         WHERE id = $4 AND username IS NULL",
                    )
                    .bind(username)
                    .bind(password_hash)
                    .bind(name.as_str())
                    .bind(id.as_str())
                    .execute(&self.$write)
                    .await,
                )?;
                Ok(done.rows_affected() == 1)
            }

            async fn account_by_username(
                &self,
                username: &str,
            ) -> Result<Option<$crate::store::accounts::Account>, $crate::store::StoreError> {
                let sql = "SELECT u.id, u.name, u.username, u.admin, u.password_hash, u.banned FROM users u WHERE u.username = $1";
                sqlx::query_as(sql)
                    .bind(username)
                    .fetch_optional(&self.$read)
                    .await?
                    .map($crate::store::accounts::account_from)
                    .transpose()
            }

            async fn account_by_id(
                &self,
                id: &$crate::domain::UserId,
            ) -> Result<Option<$crate::store::accounts::Account>, $crate::store::StoreError> {
                let sql = "SELECT u.id, u.name, u.username, u.admin, u.password_hash, u.banned FROM users u WHERE u.id = $1";
                sqlx::query_as(sql)
                    .bind(id.as_str())
                    .fetch_optional(&self.$read)
                    .await?
                    .map($crate::store::accounts::account_from)
                    .transpose()
            }

            async fn set_name(
                &self,
                id: &$crate::domain::UserId,
                name: &$crate::domain::DisplayName,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE users SET name = $1 WHERE id = $2")
                    .bind(name.as_str())
                    .bind(id.as_str())
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn set_password(
                &self,
                id: &$crate::domain::UserId,
                password_hash: &str,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(password_hash)
                    .bind(id.as_str())
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn set_admin(
                &self,
                username: &str,
                admin: bool,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query("UPDATE users SET admin = $1 WHERE username = $2")
                    .bind(admin)
                    .bind(username)
                    .execute(&self.$write)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_banned(
                &self,
                id: &$crate::domain::UserId,
                banned: bool,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query("UPDATE users SET banned = $1 WHERE id = $2")
                    .bind(banned)
                    .bind(id.as_str())
                    .execute(&self.$write)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn banned_users(
                &self,
                limit: u32,
            ) -> Result<Vec<$crate::store::accounts::Account>, $crate::store::StoreError> {
                let sql = "SELECT u.id, u.name, u.username, u.admin, u.password_hash, u.banned
                     FROM users u WHERE u.banned ORDER BY u.name, u.id LIMIT $1";
                let rows: Vec<$crate::store::accounts::AccountTuple> = sqlx::query_as(sql)
                    .bind(i64::from(limit))
                    .fetch_all(&self.$read)
                    .await?;
                rows.into_iter()
                    .map($crate::store::accounts::account_from)
                    .collect()
            }

            async fn start_session(
                &self,
                session: &$crate::store::accounts::SessionRow,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO sessions (sid, user_id, created_at, last_seen, expires_at, user_agent)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&session.sid)
                .bind(session.user_id.as_str())
                .bind(session.created)
                .bind(session.last_seen)
                .bind(session.expires_at)
                .bind(&session.user_agent)
                .execute(&self.$write)
                .await?;
                Ok(())
            }

            async fn session(
                &self,
                sid: &str,
                now: i64,
            ) -> Result<
                Option<(
                    $crate::store::accounts::SessionRow,
                    $crate::store::accounts::Account,
                )>,
                $crate::store::StoreError,
            > {
                let sql = "SELECT s.sid, s.user_id, s.created_at, s.last_seen, s.expires_at,
                            s.user_agent, u.id, u.name, u.username, u.admin, u.password_hash, u.banned
                     FROM sessions s JOIN users u ON u.id = s.user_id
                     WHERE s.sid = $1 AND s.expires_at > $2";
                let row: Option<(
                    String,
                    String,
                    i64,
                    i64,
                    i64,
                    String,
                    String,
                    String,
                    Option<String>,
                    bool,
                    Option<String>,
                    bool,
                )> = sqlx::query_as(sql)
                    .bind(sid)
                    .bind(now)
                    .fetch_optional(&self.$read)
                    .await?;
                row.map(|r| {
                    let session =
                        $crate::store::accounts::session_from((r.0, r.1, r.2, r.3, r.4, r.5));
                    let account =
                        $crate::store::accounts::account_from((r.6, r.7, r.8, r.9, r.10, r.11))?;
                    Ok((session, account))
                })
                .transpose()
            }

            async fn touch_session(&self, sid: &str, now: i64) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE sessions SET last_seen = $1 WHERE sid = $2")
                    .bind(now)
                    .bind(sid)
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn sessions_of(
                &self,
                user: &$crate::domain::UserId,
                now: i64,
            ) -> Result<Vec<$crate::store::accounts::SessionRow>, $crate::store::StoreError> {
                let sql = "SELECT sid, user_id, created_at, last_seen, expires_at, user_agent FROM sessions WHERE user_id = $1 AND expires_at > $2
                     ORDER BY created_at, sid";
                let rows: Vec<$crate::store::accounts::SessionTupleRow> = sqlx::query_as(sql)
                    .bind(user.as_str())
                    .bind(now)
                    .fetch_all(&self.$read)
                    .await?;
                Ok(rows.into_iter().map($crate::store::accounts::session_from).collect())
            }

            async fn end_session(
                &self,
                user: &$crate::domain::UserId,
                sid: &str,
            ) -> Result<Option<$crate::store::accounts::SessionRow>, $crate::store::StoreError> {
                let sql = "DELETE FROM sessions WHERE user_id = $1 AND sid = $2 RETURNING sid, user_id, created_at, last_seen, expires_at, user_agent";
                let row: Option<$crate::store::accounts::SessionTupleRow> = sqlx::query_as(sql)
                    .bind(user.as_str())
                    .bind(sid)
                    .fetch_optional(&self.$write)
                    .await?;
                Ok(row.map($crate::store::accounts::session_from))
            }

            async fn end_sessions_of(
                &self,
                user: &$crate::domain::UserId,
                keep: Option<&str>,
            ) -> Result<Vec<$crate::store::accounts::SessionRow>, $crate::store::StoreError> {
                let sql = "DELETE FROM sessions WHERE user_id = $1 AND sid <> $2 RETURNING sid, user_id, created_at, last_seen, expires_at, user_agent";
                let rows: Vec<$crate::store::accounts::SessionTupleRow> = sqlx::query_as(sql)
                    .bind(user.as_str())
                    .bind(keep.unwrap_or(""))
                    .fetch_all(&self.$write)
                    .await?;
                Ok(rows.into_iter().map($crate::store::accounts::session_from).collect())
            }
        }
    };
}

pub(crate) use sql_accounts;

pub(crate) type SessionTupleRow = SessionTuple;

/// A write's result, with a unique violation (on `users.username`) told apart.
pub(crate) fn map_unique<T>(result: Result<T, sqlx::Error>) -> Result<T, AccountError> {
    result.map_err(|error| {
        if is_unique_violation(&error) {
            AccountError::UsernameTaken
        } else {
            AccountError::Store(StoreError::Database(error))
        }
    })
}
