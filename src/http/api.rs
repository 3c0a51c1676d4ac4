//! JSON endpoints: the guest session (`/api/session`), the lobby list (`/api/rooms`) and the
//! liveness probe (`/healthz`).

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use axum_extra::extract::SignedCookieJar;
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use super::edge::{ClientAddr, Secure};
use super::serve::BodyTimedOut;
use crate::domain::{DisplayName, User, UserId};
use crate::identity::{self, Session};
use crate::limits::IpKind;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/session", get(current).post(sign_in).delete(sign_out))
        .route("/api/rooms", get(rooms))
        .route("/healthz", get(|| async { "ok" }))
}

/// A body that could not be read as JSON: too large (413), too slow (408) or malformed (400).
fn body_error(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
    while let Some(error) = source {
        if error.is::<BodyTimedOut>() {
            return ApiError::BodyTimedOut;
        }
        source = error.source();
    }
    ApiError::BadRequest(rejection.body_text())
}

#[derive(Deserialize)]
struct SignIn {
    name: String,
}

async fn current(jar: SignedCookieJar) -> Result<Json<serde_json::Value>, ApiError> {
    let user = identity::user_from(&jar).ok_or(ApiError::Unauthenticated)?;
    Ok(Json(json!({ "user": user })))
}

/// Creates a guest session, or renames the current one: an existing user keeps their id, and
/// the session its id and expiry (so revoking it covers every cookie it was ever given). New
/// sessions are rate-limited per client address (renames are not: they mint nothing).
async fn sign_in(
    State(state): State<AppState>,
    Secure(secure): Secure,
    client: ClientAddr,
    jar: SignedCookieJar,
    body: Result<Json<SignIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(body_error)?;
    let name = DisplayName::parse(&body.name).map_err(|e| ApiError::InvalidName(e.to_string()))?;
    let session = match identity::session_from(&jar) {
        Some(session) => Session {
            user: User {
                id: session.user.id,
                name,
            },
            ..session
        },
        None => {
            state
                .limits
                .check_ip(IpKind::Session, client.bucket())
                .map_err(|retry| ApiError::RateLimited(retry.millis()))?;
            Session::start(User {
                id: UserId::generate(),
                name,
            })
        }
    };
    let jar = jar.add(identity::cookie_for(&session, secure));
    Ok((jar, Json(json!({ "user": session.user }))))
}

/// Signs out: the session is revoked in storage, so its cookie is refused by every node even
/// if a copy of it survives the removal asked of this browser.
async fn sign_out(
    State(state): State<AppState>,
    Secure(secure): Secure,
    jar: SignedCookieJar,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(session) = identity::session_from(&jar) {
        state
            .store
            .revoke_session(&session.sid, session.exp)
            .await
            .map_err(ApiError::Unavailable)?;
    }
    Ok((
        jar.remove(identity::removal(secure)),
        StatusCode::NO_CONTENT,
    ))
}

async fn rooms(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let rooms = state
        .hub
        .lobby_snapshot(state.store.as_ref())
        .await
        .map_err(ApiError::Unavailable)?;
    Ok(Json(json!({ "rooms": rooms })))
}
