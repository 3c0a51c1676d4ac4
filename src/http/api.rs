//! JSON endpoints that are not about the caller: the lobby list (`/api/rooms`); plus how every
//! JSON route reads a body. (The probes live in `health`.)

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::ApiError;
use super::serve::BodyTimedOut;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/rooms", get(rooms))
}

/// A body that could not be read as JSON: too large (413), too slow (408) or malformed (400).
pub(super) fn body_error(rejection: JsonRejection) -> ApiError {
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

/// The lobby's public rooms, and the caller's own private rooms marked `private`.
async fn rooms(
    State(state): State<AppState>,
    caller: Option<crate::accounts::Caller>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let viewer = caller.as_ref().map(|caller| &caller.user.id);
    let store = state.store.as_ref();
    let mut rooms = state
        .hub
        .lobby_for(store, viewer)
        .await
        .map_err(ApiError::Unavailable)?;
    if let Some(caller) = &caller {
        let username = caller.username.as_deref();
        crate::rooms::unread::annotate(store, &caller.user, username, &mut rooms)
            .await
            .map_err(ApiError::Unavailable)?;
    }
    Ok(Json(json!({ "rooms": rooms })))
}
