//! Rooms over HTTP: creating rooms (public or private), a room's details and members, the
//! moderation routes (members, bans, roles, topic) and direct messages. Who may do what is
//! decided by `rooms::access`; every change drops the room's cached rules on every node
//! (`Control::AccessChanged`), and a kick or ban takes the user's connections out of the room
//! on every node (`Control::Removed`).
//!
//! A private room the caller may not see answers 404 exactly like a room that does not exist.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::api::body_error;
use crate::accounts::{self, Caller, user_json};
use crate::broker::{Control, Removal};
use crate::domain::{Role, RoomName, UserId, Username, Visibility};
use crate::rooms::access::{self, Rank, RoomAccess};
use crate::state::AppState;
use crate::store::accounts::Account;
use crate::store::rooms_access::{MemberRow, RoomRow};

/// Members `GET /api/rooms/{name}` lists; `member_count` tells how many there are.
const LISTED_MEMBERS: u32 = 100;
/// The longest topic, in characters.
const MAX_TOPIC_CHARS: usize = 256;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/rooms", post(create))
        .route("/api/rooms/{name}", get(details).patch(update))
        .route(
            "/api/rooms/{name}/members/{user}",
            put(add_member).delete(remove_member),
        )
        .route("/api/rooms/{name}/bans/{user}", put(ban).delete(unban))
        .route("/api/rooms/{name}/roles/{user}", put(set_role))
        .route("/api/dm", get(direct_rooms))
        .route("/api/dm/{user}", post(direct))
}

fn unavailable(error: crate::store::StoreError) -> ApiError {
    ApiError::Unavailable(error)
}

fn parse_room(raw: &str) -> Result<RoomName, ApiError> {
    RoomName::parse(raw)
        .map_err(|_| ApiError::BadRequest("a room name is 1-64 of A-Z, a-z, 0-9, _ and -".into()))
}

fn parse_topic(raw: &str) -> Result<String, ApiError> {
    let topic = raw.trim();
    if topic.chars().count() > MAX_TOPIC_CHARS || topic.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "a topic is at most {MAX_TOPIC_CHARS} characters, without control characters"
        )));
    }
    Ok(topic.to_owned())
}

/// Tells every node (this one first, before the answer) that `room`'s access changed.
async fn changed(state: &AppState, room: &RoomName) {
    let control = Control::AccessChanged { room: room.clone() };
    if let Err(error) = state.broker.control(control).await {
        // This node has forgotten already; others' entries expire (see `rooms::access`).
        tracing::warn!(%error, room = %room, "could not tell other nodes a room's access changed");
    }
}

/// Takes `user` out of `room` on every node, telling their connections why.
async fn remove(state: &AppState, room: &RoomName, user: &UserId, reason: Removal) {
    let control = Control::Removed {
        room: room.clone(),
        user: user.clone(),
        reason,
    };
    if let Err(error) = state.broker.control(control).await {
        tracing::warn!(%error, room = %room, "could not tell other nodes of a removal");
    }
}

/// A room the caller may know of, with its current rules; 404 for a room that does not exist
/// (no row and nobody in it) and for a private room the caller is not in.
async fn visible_room(
    state: &AppState,
    caller: &Caller,
    raw: &str,
) -> Result<(RoomName, Arc<RoomAccess>), ApiError> {
    let hidden = ApiError::NotFound("no such room");
    let room = RoomName::parse(raw).map_err(|_| ApiError::NotFound("no such room"))?;
    let rules = state
        .hub
        .access
        .get(state.store.as_ref(), &room)
        .await
        .map_err(unavailable)?;
    if !rules.visible_to(&caller.user.id, caller.admin) {
        return Err(hidden);
    }
    if !rules.stored && state.hub.online(&room) == 0 {
        return Err(hidden);
    }
    Ok((room, rules))
}

/// The user a route's `{user}` names: a username, or else a user id (guests have only ids).
async fn target(state: &AppState, raw: &str) -> Result<Account, ApiError> {
    let lower = raw.to_ascii_lowercase();
    if let Ok(username) = Username::parse(&lower)
        && let Some(account) = state
            .store
            .account_by_username(username.as_str())
            .await
            .map_err(unavailable)?
    {
        return Ok(account);
    }
    state
        .store
        .account_by_id(&UserId::from_trusted(raw.to_owned()))
        .await
        .map_err(unavailable)?
        .ok_or(ApiError::NotFound("no such user"))
}

fn member_json(member: &MemberRow) -> Value {
    let mut json = user_json(&member.user, member.username.as_deref());
    json["role"] = member.role.as_str().into();
    json
}

fn account_json(account: &Account, role: Option<Role>) -> Value {
    let mut json = user_json(&account.user, account.username.as_deref());
    json["role"] = role.map(Role::as_str).into();
    json
}

/// `{room: {name, visibility, topic, owner, members, member_count, role}}`.
async fn room_view(
    state: &AppState,
    caller: &Caller,
    room: &RoomName,
    rules: &RoomAccess,
) -> Result<Value, ApiError> {
    let (members, count) = state
        .store
        .members_page(room, LISTED_MEMBERS)
        .await
        .map_err(unavailable)?;
    // The owner sorts first.
    let owner = members
        .first()
        .filter(|member| member.role == Role::Owner)
        .map(|owner| user_json(&owner.user, owner.username.as_deref()));
    Ok(json!({
        "room": {
            "name": room,
            "visibility": rules.visibility.as_str(),
            "topic": rules.topic,
            "owner": owner,
            "members": members.iter().map(member_json).collect::<Vec<_>>(),
            "member_count": count,
            "role": rules.role(&caller.user.id).map(Role::as_str),
        }
    }))
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    visibility: Option<Visibility>,
    topic: Option<String>,
}

/// Creates a room with the caller as its owner. A name that exists in any way (a stored room,
/// or one people are in now on any node) is refused, as is a name reserved for DMs.
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(body_error)?;
    let room = parse_room(&body.name)?;
    if access::is_direct(&room) {
        return Err(ApiError::BadRequest(format!(
            "room names starting with {} are reserved for direct messages",
            access::DIRECT_PREFIX
        )));
    }
    let visibility = body.visibility.unwrap_or(Visibility::Public);
    if visibility == Visibility::Private && caller.user.guest {
        return Err(ApiError::AccountRequired);
    }
    let topic = parse_topic(body.topic.as_deref().unwrap_or(""))?;
    if state.hub.online(&room) > 0 {
        return Err(ApiError::RoomExists);
    }
    let row = RoomRow {
        name: room.clone(),
        visibility,
        topic,
    };
    let owner = [(caller.user.id.clone(), Role::Owner)];
    if !state
        .store
        .create_room(&row, &owner, accounts::now_ms())
        .await
        .map_err(unavailable)?
    {
        return Err(ApiError::RoomExists);
    }
    // Nodes may have cached the name as an unstored public room.
    changed(&state, &room).await;
    let body = json!({
        "room": {
            "name": room,
            "visibility": visibility.as_str(),
            "topic": row.topic,
            "owner": caller.json(),
        }
    });
    Ok((StatusCode::CREATED, Json(body)))
}

async fn details(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (room, rules) = visible_room(&state, &caller, &name).await?;
    Ok(Json(room_view(&state, &caller, &room, &rules).await?))
}

/// The caller's say in the room, refused (403) below `needed`.
fn require(rules: &RoomAccess, caller: &Caller, needed: Rank) -> Result<Rank, ApiError> {
    let rank = rules.rank(&caller.user.id, caller.admin);
    if rank < needed {
        return Err(ApiError::Forbidden(
            "your role in this room does not allow this",
        ));
    }
    Ok(rank)
}

#[derive(Deserialize)]
struct UpdateBody {
    topic: Option<String>,
}

/// Changes the topic (moderators and up).
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<Json<UpdateBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(body_error)?;
    let (room, rules) = visible_room(&state, &caller, &name).await?;
    require(&rules, &caller, Rank::Moderator)?;
    let rules = match body.topic {
        Some(topic) => {
            let topic = parse_topic(&topic)?;
            let store = &state.store;
            store
                .ensure_room(&room, accounts::now_ms())
                .await
                .map_err(unavailable)?;
            store.set_topic(&room, &topic).await.map_err(unavailable)?;
            changed(&state, &room).await;
            state
                .hub
                .access
                .get(store.as_ref(), &room)
                .await
                .map_err(unavailable)?
        }
        None => rules,
    };
    Ok(Json(room_view(&state, &caller, &room, &rules).await?))
}

/// Adds a member (moderators and up): how a private room lets someone in. Someone who is a
/// member already keeps their role; a banned user must have the ban lifted first.
async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, user)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (room, rules) = visible_room(&state, &caller, &name).await?;
    require(&rules, &caller, Rank::Moderator)?;
    let target = target(&state, &user).await?;
    if rules.is_banned(&target.user.id) {
        return Err(ApiError::Forbidden(
            "that user is banned here: lift the ban first",
        ));
    }
    let role = match rules.role(&target.user.id) {
        Some(role) => role,
        None => {
            let now = accounts::now_ms();
            state
                .store
                .ensure_room(&room, now)
                .await
                .map_err(unavailable)?;
            state
                .store
                .set_role(&room, &target.user.id, Role::Member, now)
                .await
                .map_err(unavailable)?;
            changed(&state, &room).await;
            Role::Member
        }
    };
    Ok(Json(json!({ "member": account_json(&target, Some(role)) })))
}

/// Whether `caller` may remove (kick or ban) `target`: a moderator may remove members and
/// people without a role, an owner moderators too, an administrator anyone but the owner;
/// nobody removes someone of their own rank or above.
fn may_remove(rules: &RoomAccess, caller: &Caller, target: &UserId) -> Result<(), ApiError> {
    let rank = require(rules, caller, Rank::Moderator)?;
    if rules.rank_of(target) >= rank {
        return Err(ApiError::Forbidden(
            "you may not remove someone of your own role or above",
        ));
    }
    Ok(())
}

/// Removes a member (a kick). Their connections leave the room on every node and are told
/// `removed {reason: "kicked"}`; a public room they may join again, a private one not. Anyone
/// may remove themselves (leave for good) except the owner, who hands the room on first.
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (room, rules) = visible_room(&state, &caller, &name).await?;
    let target = target(&state, &user).await?;
    if target.user.id == caller.user.id {
        if rules.role(&caller.user.id) == Some(Role::Owner) {
            return Err(ApiError::BadRequest(
                "the owner cannot leave: give the room another owner first".into(),
            ));
        }
    } else {
        may_remove(&rules, &caller, &target.user.id)?;
    }
    let was_member = state
        .store
        .remove_member(&room, &target.user.id)
        .await
        .map_err(unavailable)?;
    if was_member {
        changed(&state, &room).await;
    }
    remove(&state, &room, &target.user.id, Removal::Kicked).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Bans a user (their membership ends too); they are removed with `reason: "banned"` and
/// cannot join again, public room or not, until the ban is lifted.
async fn ban(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (room, rules) = visible_room(&state, &caller, &name).await?;
    let target = target(&state, &user).await?;
    if target.user.id == caller.user.id {
        return Err(ApiError::BadRequest("you cannot ban yourself".into()));
    }
    may_remove(&rules, &caller, &target.user.id)?;
    let now = accounts::now_ms();
    state
        .store
        .ensure_room(&room, now)
        .await
        .map_err(unavailable)?;
    state
        .store
        .ban(&room, &target.user.id, &caller.user.id, now)
        .await
        .map_err(unavailable)?;
    // The rules first: a join racing the removal then reads the ban.
    changed(&state, &room).await;
    remove(&state, &room, &target.user.id, Removal::Banned).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts a ban (moderators and up). They may join a public room again; a private one once
/// added back.
async fn unban(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (room, rules) = visible_room(&state, &caller, &name).await?;
    require(&rules, &caller, Rank::Moderator)?;
    let target = target(&state, &user).await?;
    if state
        .store
        .unban(&room, &target.user.id)
        .await
        .map_err(unavailable)?
    {
        changed(&state, &room).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct RoleBody {
    role: String,
}

/// Sets a user's role (the owner; an administrator in an ownerless room). Giving `owner`
/// hands the room over: the previous owner becomes a moderator. The owner cannot demote
/// themselves without handing over (a room that had an owner keeps one).
async fn set_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, user)): Path<(String, String)>,
    body: Result<Json<RoleBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(body_error)?;
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError::BadRequest("role is one of \"owner\", \"moderator\", \"member\"".into())
    })?;
    let (room, rules) = visible_room(&state, &caller, &name).await?;
    require(&rules, &caller, Rank::Owner)?;
    let target = target(&state, &user).await?;
    if rules.is_banned(&target.user.id) {
        return Err(ApiError::Forbidden(
            "that user is banned here: lift the ban first",
        ));
    }
    let owner = rules.owner().cloned();
    if owner.as_ref() == Some(&target.user.id) && role != Role::Owner {
        return Err(ApiError::BadRequest(
            "the owner keeps the room until they give it to someone else".into(),
        ));
    }
    let now = accounts::now_ms();
    let store = &state.store;
    store.ensure_room(&room, now).await.map_err(unavailable)?;
    if role == Role::Owner
        && let Some(previous) = owner.filter(|previous| *previous != target.user.id)
    {
        store
            .set_role(&room, &previous, Role::Moderator, now)
            .await
            .map_err(unavailable)?;
    }
    store
        .set_role(&room, &target.user.id, role, now)
        .await
        .map_err(unavailable)?;
    changed(&state, &room).await;
    Ok(Json(json!({ "member": account_json(&target, Some(role)) })))
}

/// The caller's direct-message rooms, each with the other person.
async fn direct_rooms(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let rooms = state
        .store
        .direct_rooms_of(&caller.user.id)
        .await
        .map_err(unavailable)?;
    let rooms: Vec<Value> = rooms
        .iter()
        .map(|dm| json!({ "name": dm.room, "with": user_json(&dm.with, dm.username.as_deref()) }))
        .collect();
    Ok(Json(json!({ "rooms": rooms })))
}

/// The private two-person room of the caller and `user` (a username, or the user id of an
/// account, which is all a room's member list shows of people): created on the first ask (by
/// either), the same room after. Asking again re-adds either of them who left (not one who
/// was banned). Guests have no direct messages, so a guest's id is no such user.
async fn direct(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if caller.username.is_none() {
        return Err(ApiError::AccountRequired);
    }
    let other = target(&state, &user).await?;
    if other.username.is_none() {
        return Err(ApiError::NotFound("no such user"));
    }
    if other.user.id == caller.user.id {
        return Err(ApiError::BadRequest(
            "a direct message needs someone else".into(),
        ));
    }
    let room = access::direct_room(&caller.user.id, &other.user.id);
    let pair = [&caller.user.id, &other.user.id];
    let now = accounts::now_ms();
    let row = RoomRow {
        name: room.clone(),
        visibility: Visibility::Private,
        topic: String::new(),
    };
    let members: Vec<(UserId, Role)> = pair
        .iter()
        .map(|id| ((*id).clone(), Role::Member))
        .collect();
    let created = state
        .store
        .create_room(&row, &members, now)
        .await
        .map_err(unavailable)?;
    if !created {
        let rules = state
            .hub
            .access
            .get(state.store.as_ref(), &room)
            .await
            .map_err(unavailable)?;
        let mut readded = false;
        for id in pair {
            if rules.role(id).is_none() && !rules.is_banned(id) {
                state
                    .store
                    .set_role(&room, id, Role::Member, now)
                    .await
                    .map_err(unavailable)?;
                readded = true;
            }
        }
        if !readded {
            return Ok(Json(direct_view(&room, &other)));
        }
    }
    changed(&state, &room).await;
    Ok(Json(direct_view(&room, &other)))
}

fn direct_view(room: &RoomName, other: &Account) -> Value {
    json!({
        "room": {
            "name": room,
            "visibility": "private",
            "topic": "",
            "owner": null,
            "with": user_json(&other.user, other.username.as_deref()),
        }
    })
}
