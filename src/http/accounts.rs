//! Sessions and accounts over HTTP: guest sessions (`/api/session`), registration and sign-in,
//! the caller's sessions (list, revoke), and their own name and password. Every route answers
//! errors with the documented body; sessions that end are closed on every node (4003).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use axum_extra::extract::SignedCookieJar;
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use super::api::body_error;
use super::edge::{ClientAddr, Secure};
use crate::accounts::{self, Caller, password};
use crate::broker::Control;
use crate::domain::{DisplayName, Password, User, Username};
use crate::identity::{self, Session};
use crate::limits::IpKind;
use crate::state::AppState;
use crate::store::accounts::{Account, AccountError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/session", get(current).post(guest).delete(sign_out))
        .route("/api/register", post(register))
        .route("/api/login", post(login))
        .route("/api/sessions", get(sessions))
        .route("/api/sessions/{id}", delete(revoke))
        .route("/api/me", patch(update_me))
        .route("/api/me/password", post(change_password))
}

fn user_agent(headers: &HeaderMap) -> &str {
    headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

fn store_error(error: AccountError) -> ApiError {
    match error {
        AccountError::UsernameTaken => ApiError::UsernameTaken,
        AccountError::Store(error) => ApiError::Unavailable(error),
    }
}

fn hash_error(error: password::HashError) -> ApiError {
    ApiError::Unavailable(crate::store::StoreError::Corrupt(error.to_string()))
}

fn parse_name(raw: &str) -> Result<DisplayName, ApiError> {
    DisplayName::parse(raw).map_err(|e| ApiError::InvalidName(e.to_string()))
}

/// Ends `session` everywhere: its row goes, its id is refused from now on (also by a node that
/// has not heard yet), and its open connections on every node close with 4003.
async fn end(state: &AppState, sid: &str, expires_at: i64) -> Result<(), ApiError> {
    state
        .store
        .revoke_session(sid, expires_at)
        .await
        .map_err(ApiError::Unavailable)?;
    if let Err(error) = state
        .broker
        .control(Control::SessionEnded {
            sid: sid.to_owned(),
        })
        .await
    {
        // Other nodes refuse the cookie already; its sockets there close at their next check.
        tracing::warn!(%error, "could not tell other nodes that a session ended");
    }
    Ok(())
}

/// Ends the caller's current session (before giving them a new one).
async fn end_current(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    state
        .store
        .end_session(&caller.user.id, &caller.session.sid)
        .await
        .map_err(ApiError::Unavailable)?;
    end(state, &caller.session.sid, caller.session.exp).await
}

async fn current(caller: Caller) -> Json<serde_json::Value> {
    Json(json!({ "user": caller.json() }))
}

#[derive(Deserialize)]
struct GuestBody {
    name: String,
}

/// Starts a guest session, or renames the caller (guest or account; the session stays). New
/// sessions are rate-limited per client address (renames are not: they mint nothing).
async fn guest(
    State(state): State<AppState>,
    Secure(secure): Secure,
    client: ClientAddr,
    caller: Option<Caller>,
    headers: HeaderMap,
    jar: SignedCookieJar,
    body: Result<Json<GuestBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(body_error)?;
    let name = parse_name(&body.name)?;
    let (session, username, admin) = match caller {
        Some(caller) => {
            state
                .store
                .set_name(&caller.user.id, &name)
                .await
                .map_err(ApiError::Unavailable)?;
            let user = User {
                name,
                ..caller.user
            };
            (
                Session {
                    user,
                    ..caller.session
                },
                caller.username,
                caller.admin,
            )
        }
        None => {
            state
                .limits
                .check_ip(IpKind::Session, client.bucket())
                .map_err(|retry| ApiError::RateLimited(retry.millis()))?;
            let account = accounts::guest_account(User::new_guest(name));
            state
                .store
                .create_user(&account, accounts::now_ms())
                .await
                .map_err(store_error)?;
            let session =
                accounts::start_session(state.store.as_ref(), account.user, user_agent(&headers))
                    .await
                    .map_err(ApiError::Unavailable)?;
            (session, None, false)
        }
    };
    let user = accounts::self_json(&session.user, username.as_deref(), admin);
    let jar = jar.add(identity::cookie_for(&session, secure));
    Ok((jar, Json(json!({ "user": user }))))
}

/// Signs out: the session ends everywhere, so its cookie is refused by every node even if a
/// copy of it survives the removal asked of this browser.
async fn sign_out(
    State(state): State<AppState>,
    Secure(secure): Secure,
    caller: Option<Caller>,
    jar: SignedCookieJar,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(caller) = caller {
        end_current(&state, &caller).await?;
    }
    Ok((
        jar.remove(identity::removal(secure)),
        StatusCode::NO_CONTENT,
    ))
}

#[derive(Deserialize)]
struct RegisterBody {
    username: String,
    password: String,
    name: Option<String>,
}

/// Takes a sign-in token for this IP and this username.
fn check_sign_in(state: &AppState, client: ClientAddr, username: &str) -> Result<(), ApiError> {
    let limited = |retry: crate::limits::RetryAfter| ApiError::RateLimited(retry.millis());
    state
        .limits
        .check_ip(IpKind::SignIn, client.bucket())
        .map_err(limited)?;
    state.limits.check_username(username).map_err(limited)
}

/// Creates an account. A guest who registers keeps their user id (their messages stay theirs)
/// and, without `name`, their display name; their guest session is replaced by a new one.
#[allow(clippy::too_many_arguments)]
async fn register(
    State(state): State<AppState>,
    Secure(secure): Secure,
    client: ClientAddr,
    caller: Option<Caller>,
    headers: HeaderMap,
    jar: SignedCookieJar,
    body: Result<Json<RegisterBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(body_error)?;
    let username =
        Username::parse(&body.username).map_err(|e| ApiError::InvalidUsername(e.to_string()))?;
    let password =
        Password::parse(body.password).map_err(|e| ApiError::InvalidPassword(e.to_string()))?;
    let name = body.name.as_deref().map(parse_name).transpose()?;
    check_sign_in(&state, client, username.as_str())?;
    let hash = password::hash(&password).await.map_err(hash_error)?;
    let guest = caller.as_ref().filter(|caller| caller.user.guest);
    let user = match guest {
        Some(caller) => {
            let name = name.unwrap_or_else(|| caller.user.name.clone());
            let upgraded = state
                .store
                .register_guest(&caller.user.id, username.as_str(), &hash, &name)
                .await
                .map_err(store_error)?;
            if !upgraded {
                return Err(ApiError::Forbidden("this guest is an account already"));
            }
            User {
                id: caller.user.id.clone(),
                name,
                guest: false,
            }
        }
        None => {
            let name = match name {
                Some(name) => name,
                None => parse_name(username.as_str())?,
            };
            let account = Account {
                user: User {
                    guest: false,
                    ..User::new_guest(name)
                },
                username: Some(username.as_str().to_owned()),
                admin: false,
                banned: false,
                password_hash: Some(hash),
            };
            state
                .store
                .create_user(&account, accounts::now_ms())
                .await
                .map_err(store_error)?;
            account.user
        }
    };
    if let Some(caller) = &caller {
        end_current(&state, caller).await?;
    }
    let session = accounts::start_session(state.store.as_ref(), user, user_agent(&headers))
        .await
        .map_err(ApiError::Unavailable)?;
    let user = accounts::self_json(&session.user, Some(username.as_str()), false);
    let jar = jar.add(identity::cookie_for(&session, secure));
    Ok((StatusCode::CREATED, jar, Json(json!({ "user": user }))))
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

/// Signs in. A wrong username and a wrong password get the same answer in about the same
/// time (an unknown username is checked against a decoy hash).
#[allow(clippy::too_many_arguments)]
async fn login(
    State(state): State<AppState>,
    Secure(secure): Secure,
    client: ClientAddr,
    caller: Option<Caller>,
    headers: HeaderMap,
    jar: SignedCookieJar,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(body_error)?;
    // Any case signs in; a name that cannot be a username is simply not one.
    let username = body.username.to_ascii_lowercase();
    check_sign_in(&state, client, &username)?;
    let account = match Username::parse(&username) {
        Ok(username) => state
            .store
            .account_by_username(username.as_str())
            .await
            .map_err(ApiError::Unavailable)?,
        Err(_) => None,
    };
    let hash = account.as_ref().and_then(|a| a.password_hash.as_deref());
    let matches = password::verify(&body.password, hash)
        .await
        .map_err(hash_error)?;
    let Some(account) = account.filter(|_| matches) else {
        return Err(ApiError::InvalidCredentials);
    };
    // Said only to whoever knows the password: a ban is not a way to probe usernames.
    if account.banned {
        return Err(ApiError::Banned);
    }
    if let Some(caller) = &caller {
        end_current(&state, caller).await?;
    }
    let session = accounts::start_session(state.store.as_ref(), account.user, user_agent(&headers))
        .await
        .map_err(ApiError::Unavailable)?;
    let user = accounts::self_json(&session.user, account.username.as_deref(), account.admin);
    let jar = jar.add(identity::cookie_for(&session, secure));
    Ok((jar, Json(json!({ "user": user }))))
}

async fn sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rows = state
        .store
        .sessions_of(&caller.user.id, accounts::now_ms())
        .await
        .map_err(ApiError::Unavailable)?;
    let sessions: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            json!({
                "id": row.sid,
                "created": row.created,
                "last_seen": row.last_seen,
                "user_agent": row.user_agent,
                "current": row.sid == caller.session.sid,
            })
        })
        .collect();
    Ok(Json(json!({ "sessions": sessions })))
}

/// Revokes one of the caller's sessions ("sign out other devices"; their own current one too).
async fn revoke(
    State(state): State<AppState>,
    Secure(secure): Secure,
    caller: Caller,
    jar: SignedCookieJar,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let ended = state
        .store
        .end_session(&caller.user.id, &id)
        .await
        .map_err(ApiError::Unavailable)?
        .ok_or(ApiError::NotFound("no such session of yours"))?;
    end(&state, &ended.sid, ended.expires_at).await?;
    let jar = if ended.sid == caller.session.sid {
        jar.remove(identity::removal(secure))
    } else {
        jar
    };
    Ok((jar, StatusCode::NO_CONTENT))
}

#[derive(Deserialize)]
struct MeBody {
    name: Option<String>,
}

async fn update_me(
    State(state): State<AppState>,
    Secure(secure): Secure,
    caller: Caller,
    jar: SignedCookieJar,
    body: Result<Json<MeBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(body_error)?;
    let mut user = caller.user.clone();
    if let Some(name) = body.name {
        user.name = parse_name(&name)?;
        state
            .store
            .set_name(&user.id, &user.name)
            .await
            .map_err(ApiError::Unavailable)?;
    }
    let session = Session {
        user,
        ..caller.session
    };
    let json = accounts::self_json(&session.user, caller.username.as_deref(), caller.admin);
    let jar = jar.add(identity::cookie_for(&session, secure));
    Ok((jar, Json(json!({ "user": json }))))
}

#[derive(Deserialize)]
struct PasswordBody {
    old: String,
    new: String,
}

/// Changes the caller's password; every other session of theirs ends (whoever knew the old
/// password is signed out), this one stays.
async fn change_password(
    State(state): State<AppState>,
    client: ClientAddr,
    caller: Caller,
    body: Result<Json<PasswordBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(body) = body.map_err(body_error)?;
    let Some(username) = caller.username.as_deref() else {
        return Err(ApiError::AccountRequired);
    };
    let new = Password::parse(body.new).map_err(|e| ApiError::InvalidPassword(e.to_string()))?;
    check_sign_in(&state, client, username)?;
    let account = state
        .store
        .account_by_id(&caller.user.id)
        .await
        .map_err(ApiError::Unavailable)?;
    let hash = account.as_ref().and_then(|a| a.password_hash.as_deref());
    if !password::verify(&body.old, hash)
        .await
        .map_err(hash_error)?
    {
        return Err(ApiError::WrongPassword);
    }
    let hash = password::hash(&new).await.map_err(hash_error)?;
    state
        .store
        .set_password(&caller.user.id, &hash)
        .await
        .map_err(ApiError::Unavailable)?;
    let others = state
        .store
        .end_sessions_of(&caller.user.id, Some(&caller.session.sid))
        .await
        .map_err(ApiError::Unavailable)?;
    for other in others {
        end(&state, &other.sid, other.expires_at).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
