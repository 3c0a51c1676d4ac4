//! The admin view over HTTP, for server administrators only: `GET /admin` (the page),
//! `GET /api/admin/stats` (everything the page shows, for scripts and tests), and the actions
//! `POST`/`DELETE /api/admin/users/{user}/ban` and `POST /api/admin/users/{user}/disconnect`,
//! where `{user}` is a username or a user id. Deleting a message is the ordinary
//! `DELETE /api/rooms/{name}/messages/{seq}`, which administrators may use in every room.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::ApiError;
use crate::accounts::Caller;
use crate::admin::{self, ActionError, Stats};
use crate::state::AppState;
use crate::store::accounts::Account;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/stats", get(stats))
        .route("/api/admin/users/{user}/ban", post(ban).delete(unban))
        .route("/api/admin/users/{user}/disconnect", post(disconnect))
}

/// The caller, if a server administrator (as stored now): 401 without a session, 403 for
/// everyone else.
fn administrator(caller: Caller) -> Result<Caller, ApiError> {
    if caller.admin {
        Ok(caller)
    } else {
        Err(ApiError::Forbidden(
            "only server administrators may use the admin view",
        ))
    }
}

/// The caller, if an administrator, and the user `key` names.
async fn administrator_and_target(
    state: &AppState,
    caller: Caller,
    key: &str,
) -> Result<(Caller, Account), ApiError> {
    let caller = administrator(caller)?;
    let target = admin::find_user(state, key).await.map_err(action_error)?;
    Ok((caller, target))
}

fn action_error(error: ActionError) -> ApiError {
    match error {
        ActionError::NoSuchUser => ApiError::NotFound("no user has that username or id"),
        ActionError::TargetIsAdmin => ApiError::Forbidden(
            "administrators cannot be banned; revoke administration first (confab admin revoke)",
        ),
        ActionError::Store(error) => ApiError::Unavailable(error),
    }
}

async fn stats(State(state): State<AppState>, caller: Caller) -> Result<Json<Stats>, ApiError> {
    administrator(caller)?;
    admin::stats(&state)
        .await
        .map(Json)
        .map_err(ApiError::Unavailable)
}

async fn ban(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (caller, target) = administrator_and_target(&state, caller, &user).await?;
    if target.user.id == caller.user.id {
        return Err(ApiError::Forbidden("you cannot ban yourself"));
    }
    admin::ban(&state, &target).await.map_err(action_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unban(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (_, target) = administrator_and_target(&state, caller, &user).await?;
    admin::unban(&state, &target).await.map_err(action_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn disconnect(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (_, target) = administrator_and_target(&state, caller, &user).await?;
    admin::disconnect(&state, &target.user.id).await;
    Ok(StatusCode::NO_CONTENT)
}
