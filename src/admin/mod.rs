//! The admin view's server side: what `/admin` shows (this node's traffic from
//! `telemetry::stats`, the busiest rooms with their members, the banned users) and what it
//! does (ban or unban a user server-wide, close a user's connections). The HTTP routes are in
//! `http::admin`, the live feed (`admin_watch`) in [`watch`]; deleting a message is the
//! ordinary deletion, which administrators may make in every room.

pub mod watch;

use std::collections::HashSet;

use serde::Serialize;

use crate::broker::Control;
use crate::domain::{User, UserId, Username};
use crate::protocol::close;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::accounts::Account;
use crate::telemetry::stats::{self, Traffic};

/// How many rooms the view lists, and members per room.
pub const BUSIEST_ROOMS: usize = 10;
pub const MEMBERS_SHOWN: usize = 20;
/// How many banned users the view lists.
pub const BANNED_SHOWN: u32 = 100;

/// Everything the admin view shows: `GET /api/admin/stats` and each `admin_stats` frame.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub version: &'static str,
    #[serde(flatten)]
    pub traffic: Traffic,
    /// Rooms with someone in them (on any node), and their members summed over rooms.
    pub rooms_active: usize,
    pub members_online: u64,
    /// The rooms with the most members online, most first.
    pub busiest_rooms: Vec<BusyRoom>,
    pub banned: Vec<BannedUser>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BusyRoom {
    pub name: String,
    pub online: u32,
    pub visibility: &'static str,
    /// The first [`MEMBERS_SHOWN`] members in id order, when this node hosts the room (a room
    /// whose members are all on other nodes shows its count only).
    pub members: Vec<User>,
    pub more_members: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct BannedUser {
    #[serde(flatten)]
    pub user: User,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// The figures now.
pub async fn stats(state: &AppState) -> Result<Stats, StoreError> {
    let store = state.store.as_ref();
    let mut rooms = state.hub.occupied_rooms();
    let members_online = rooms.iter().map(|room| u64::from(room.online)).sum();
    let rooms_active = rooms.len();
    rooms.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.name.cmp(&b.name)));
    rooms.truncate(BUSIEST_ROOMS);
    let names = rooms.iter().map(|room| room.name.clone()).collect();
    let public: HashSet<_> = state
        .hub
        .access
        .public_only(store, names)
        .await
        .into_iter()
        .collect();
    let busiest_rooms = rooms
        .into_iter()
        .map(|room| {
            let (members, more_members) = state
                .hub
                .member_page(&room.name, MEMBERS_SHOWN)
                .unwrap_or_default();
            BusyRoom {
                visibility: if public.contains(&room.name) {
                    "public"
                } else {
                    "private"
                },
                name: room.name.as_str().to_owned(),
                online: room.online,
                members,
                more_members,
            }
        })
        .collect();
    let banned = store
        .banned_users(BANNED_SHOWN)
        .await?
        .into_iter()
        .map(|account| BannedUser {
            user: account.user,
            username: account.username,
        })
        .collect();
    Ok(Stats {
        version: env!("CARGO_PKG_VERSION"),
        traffic: stats::traffic(),
        rooms_active,
        members_online,
        busiest_rooms,
        banned,
    })
}

/// Why an administrator's action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no user has that username or id")]
    NoSuchUser,
    #[error("administrators cannot be banned; revoke administration first (confab admin revoke)")]
    TargetIsAdmin,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The user `key` names: a username (any case), else a user id (guests have only that).
pub async fn find_user(state: &AppState, key: &str) -> Result<Account, ActionError> {
    let store = state.store.as_ref();
    if let Ok(username) = Username::parse(&key.to_ascii_lowercase())
        && let Some(account) = store.account_by_username(username.as_str()).await?
    {
        return Ok(account);
    }
    if key.is_empty() || key.len() > 64 {
        return Err(ActionError::NoSuchUser);
    }
    store
        .account_by_id(&UserId::from_trusted(key.to_owned()))
        .await?
        .ok_or(ActionError::NoSuchUser)
}

/// Bans `target` from the server: the flag first (so no session of theirs is honoured from
/// now on, on any node), then their sessions end and every connection of theirs closes with
/// 4005. Banning twice changes nothing.
pub async fn ban(state: &AppState, target: &Account) -> Result<(), ActionError> {
    if target.admin {
        return Err(ActionError::TargetIsAdmin);
    }
    let store = state.store.as_ref();
    store.set_banned(&target.user.id, true).await?;
    for ended in store.end_sessions_of(&target.user.id, None).await? {
        store.revoke_session(&ended.sid, ended.expires_at).await?;
    }
    close_everywhere(state, &target.user.id, close::BANNED).await;
    tracing::info!(user = %target.user.id.as_str(), "banned from the server");
    Ok(())
}

/// Lifts a ban: the user may sign in again (their old sessions stay ended).
pub async fn unban(state: &AppState, target: &Account) -> Result<(), ActionError> {
    state.store.set_banned(&target.user.id, false).await?;
    tracing::info!(user = %target.user.id.as_str(), "ban lifted");
    Ok(())
}

/// Closes every connection of `user`, on every node, with 4004. Their sessions stay: the
/// client may reconnect (the web page asks its user first).
pub async fn disconnect(state: &AppState, user: &UserId) {
    close_everywhere(state, user, close::CLOSED_BY_ADMIN).await;
    tracing::info!(user = %user.as_str(), "connections closed by an administrator");
}

async fn close_everywhere(state: &AppState, user: &UserId, code: u16) {
    let control = Control::UserClosed {
        user: user.clone(),
        code,
    };
    if let Err(error) = state.broker.control(control.clone()).await {
        // This node's connections close anyway; other nodes' at their next session check
        // (a banned user's sessions are refused already).
        tracing::warn!(%error, "could not tell other nodes to close a user's connections");
        state.hub.connections.close_user(user, code);
    }
}
