//! Changes to a room's messages over HTTP: `DELETE /api/rooms/{name}/messages/{seq}`, for the
//! message's author and the room's moderators (owner, moderators, server administrators). The deletion is an event with the room's next
//! seq, stored and broadcast like a message (the WebSocket `delete` frame does the same).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::delete;

use super::ApiError;
use crate::accounts::{Caller, now_ms};
use crate::domain::{ClientId, Event, RoomName};
use crate::rooms::access::Rank;
use crate::rooms::writer::{AppendError, Sent};
use crate::state::AppState;
use crate::store::{NewMessage, Refusal};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/rooms/{name}/messages/{seq}", delete(delete_message))
}

async fn delete_message(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, seq)): Path<(String, u64)>,
) -> Result<StatusCode, ApiError> {
    let room = RoomName::parse(&name).map_err(|_| ApiError::NotFound("no such room"))?;
    let access = state
        .hub
        .access
        .get(state.store.as_ref(), &room)
        .await
        .map_err(ApiError::Unavailable)?;
    // A private room the caller is not in answers as if it did not exist.
    if !access.visible_to(&caller.user.id, caller.admin) {
        return Err(ApiError::NotFound("no such room"));
    }
    let moderator = access.rank(&caller.user.id, caller.admin) >= Rank::Moderator;
    let deletion = NewMessage {
        room,
        id: uuid::Uuid::now_v7().to_string(),
        ts: now_ms(),
        user: caller.user.clone(),
        text: String::new(),
        client_id: ClientId::unique(),
        event: Event::Deleted { target: seq },
        reply_to: None,
        moderator,
    };
    let reply = state
        .writer
        .append(deletion, None)
        .await
        .map_err(append_error)?;
    match reply.await.unwrap_or(Err(AppendError::Stopped)) {
        Ok(Sent::Stored | Sent::Duplicate(_) | Sent::Refused(Refusal::NoChange)) => {
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(Sent::Refused(Refusal::NotFound)) => Err(ApiError::NotFound(
            "no such message in this room (or it is deleted already)",
        )),
        Ok(Sent::Refused(Refusal::Forbidden | Refusal::TooManyReactions)) => Err(
            ApiError::Forbidden("only its author or a moderator of the room may delete a message"),
        ),
        Err(error) => Err(append_error(error)),
    }
}

fn append_error(error: AppendError) -> ApiError {
    match error {
        AppendError::Overloaded { retry_after_ms } => ApiError::Overloaded(retry_after_ms),
        AppendError::Unavailable | AppendError::Stopped => {
            ApiError::Unavailable(crate::store::StoreError::Closed)
        }
    }
}
