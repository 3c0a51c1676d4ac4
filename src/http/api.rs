//! JSON endpoints: the guest session (`/api/session`), the lobby list (`/api/rooms`) and the
//! liveness probe (`/healthz`).

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use axum_extra::extract::SignedCookieJar;
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use crate::domain::{DisplayName, User, UserId};
use crate::identity;
use crate::limits::IpKind;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/session", get(current).post(sign_in).delete(sign_out))
        .route("/api/rooms", get(rooms))
        .route("/healthz", get(|| async { "ok" }))
}

#[derive(Deserialize)]
struct SignIn {
    name: String,
}

async fn current(jar: SignedCookieJar) -> Result<Json<serde_json::Value>, ApiError> {
    let user = identity::user_from(&jar).ok_or(ApiError::Unauthenticated)?;
    Ok(Json(json!({ "user": user })))
}

/// Creates a guest session, or renames the current one: an existing user keeps their id.
/// New sessions are rate-limited per IP (renames are not: they mint nothing).
async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: SignedCookieJar,
    body: Result<Json<SignIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let name = DisplayName::parse(&body.name).map_err(|e| ApiError::InvalidName(e.to_string()))?;
    let id = match identity::user_from(&jar) {
        Some(user) => user.id,
        None => {
            // TODO(http helper): the client IP from `ClientAddr` (trusted proxies) once it lands.
            state
                .limits
                .check_ip(IpKind::Session, peer.ip())
                .map_err(|retry| ApiError::RateLimited(retry.millis()))?;
            UserId::generate()
        }
    };
    let user = User { id, name };
    let jar = jar.add(identity::cookie_for(&user));
    Ok((jar, Json(json!({ "user": user }))))
}

async fn sign_out(jar: SignedCookieJar) -> impl IntoResponse {
    (jar.remove(identity::removal()), StatusCode::NO_CONTENT)
}

async fn rooms(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let rooms = state
        .hub
        .snapshot(state.store.as_ref())
        .await
        .map_err(ApiError::Unavailable)?;
    Ok(Json(json!({ "rooms": rooms })))
}
