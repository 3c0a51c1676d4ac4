//! Who is calling: the session a signed cookie names, checked against the store on every HTTP
//! API request and WebSocket upgrade, and the account behind it. Guests and accounts are both
//! users with a row and sessions; an account also has a username and a password
//! ([`password`]). The routes live in `http::accounts`.

pub mod admin;
pub mod password;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;

use crate::domain::User;
use crate::http::ApiError;
use crate::identity::Session;
use crate::store::accounts::{Account, SessionRow};
use crate::store::{Store, StoreError};

/// `last_seen` is written at most this often per session (every request would be a write).
const TOUCH_EVERY_MS: i64 = 60_000;

/// The signed-in caller of a request: set by the edge on every `/api/*` and `/ws` request
/// whose cookie names a live session. Extracting it where there is none answers 401.
#[derive(Debug, Clone)]
pub struct Caller {
    /// As stored now (a name changed on another device shows here at once).
    pub user: User,
    pub username: Option<String>,
    pub admin: bool,
    pub session: Session,
}

impl Caller {
    fn new(account: Account, session: Session) -> Self {
        Self {
            user: account.user,
            username: account.username,
            admin: account.admin,
            session,
        }
    }

    /// How `/api/session` and the account routes show the caller.
    pub fn json(&self) -> serde_json::Value {
        self_json(&self.user, self.username.as_deref(), self.admin)
    }
}

/// `{id, name, username?, guest}`: a user as HTTP routes show them.
pub fn user_json(user: &User, username: Option<&str>) -> serde_json::Value {
    let mut json = serde_json::json!({
        "id": user.id,
        "name": user.name,
        "guest": user.guest,
    });
    if let Some(username) = username {
        json["username"] = username.into();
    }
    json
}

/// A user as the account routes show them to themselves: with `admin`.
pub fn self_json(user: &User, username: Option<&str>, admin: bool) -> serde_json::Value {
    let mut json = user_json(user, username);
    json["admin"] = admin.into();
    json
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or(ApiError::Unauthenticated)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned())
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// The caller a cookie's session stands for, if that session is live.
///
/// Sessions from before sessions were stored (guests only) are not in the store: unless
/// revoked, such a session is adopted (its user and itself get rows), once.
pub async fn resolve(
    store: &dyn Store,
    cookie: Session,
    user_agent: &str,
) -> Result<Option<Caller>, StoreError> {
    let now = now_ms();
    if let Some((row, account)) = store.session(&cookie.sid, now).await? {
        if row.user_id != cookie.user.id || account.banned {
            return Ok(None);
        }
        if now - row.last_seen >= TOUCH_EVERY_MS {
            store.touch_session(&row.sid, now).await?;
        }
        return Ok(Some(Caller::new(account, cookie)));
    }
    if !cookie.user.guest || store.is_session_revoked(&cookie.sid).await? {
        return Ok(None);
    }
    let account = match store.account_by_id(&cookie.user.id).await? {
        Some(account) if account.banned => return Ok(None),
        Some(account) if account.user.guest => account,
        Some(_) => return Ok(None), // the guest registered since: this cookie is history
        None => {
            let account = guest_account(cookie.user.clone());
            // Another request of the same browser may adopt it at the same moment.
            if let Err(error) = store.create_user(&account, now).await
                && store.account_by_id(&account.user.id).await?.is_none()
            {
                return Err(match error {
                    crate::store::accounts::AccountError::Store(error) => error,
                    crate::store::accounts::AccountError::UsernameTaken => {
                        StoreError::Corrupt("user id taken".into())
                    }
                });
            }
            account
        }
    };
    let row = session_row(&cookie, now, user_agent);
    if store.start_session(&row).await.is_err() && store.session(&cookie.sid, now).await?.is_none()
    {
        return Ok(None);
    }
    Ok(Some(Caller::new(account, cookie)))
}

pub fn guest_account(user: User) -> Account {
    Account {
        user,
        username: None,
        admin: false,
        banned: false,
        password_hash: None,
    }
}

fn session_row(session: &Session, now: i64, user_agent: &str) -> SessionRow {
    SessionRow {
        sid: session.sid.clone(),
        user_id: session.user.id.clone(),
        created: now,
        last_seen: now,
        expires_at: session.exp,
        user_agent: user_agent.chars().take(256).collect(),
    }
}

/// Starts and stores a new session for `user`, who has a row already.
pub async fn start_session(
    store: &dyn Store,
    user: User,
    user_agent: &str,
) -> Result<Session, StoreError> {
    let session = Session::start(user);
    store
        .start_session(&session_row(&session, now_ms(), user_agent))
        .await?;
    Ok(session)
}
