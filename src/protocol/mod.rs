//! Protocol v1 on the wire (see `docs/protocol.md`): parsing client frames into validated
//! requests, encoding server frames once, and the stable error and close codes.

pub mod client;
pub mod server;

use serde::Serialize;

/// Largest text frame a client may send; larger ones close the connection with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Messages in `joined` for a join without `since`.
pub const JOIN_PAGE: u32 = 50;
/// Most messages a `join` with `since` brings back before it says `truncated`.
pub const RESUME_CAP: u32 = 200;
/// Largest `history.limit`.
pub const MAX_HISTORY_LIMIT: u32 = 100;
/// Largest `members.limit` (and its default).
pub const MAX_MEMBERS_LIMIT: u32 = 100;
/// Rooms one connection may be in at once.
pub const MAX_ROOMS_PER_CONNECTION: usize = 100;

/// WebSocket close codes the server uses, beyond the standard ones.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const INVALID_DATA: u16 = 1007;
    /// The connection kept going well past its rate limits.
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    /// The server is restarting (SIGTERM): reconnect shortly.
    pub const SERVICE_RESTART: u16 = 1012;
    /// Nothing arrived for `idle_timeout` seconds.
    pub const IDLE_TIMEOUT: u16 = 4000;
    /// The connection made no write progress for the stall timeout while data waited for it,
    /// or what waited for it outgrew its byte bound.
    pub const TOO_SLOW: u16 = 4001;
    /// A room's live stream had a hole (e.g. a node died between commit and publish); resume
    /// with `since` and the store fills it.
    pub const RESYNC: u16 = 4002;
    /// The connection's session was signed out or revoked (on any node): sign in again.
    pub const SESSION_REVOKED: u16 = 4003;
    /// A server administrator closed the user's connections (the admin view's "Disconnect").
    pub const CLOSED_BY_ADMIN: u16 = 4004;
    /// The user was banned from the server: their sessions ended and they may not sign in.
    pub const BANNED: u16 = 4005;
}

/// The stable `code` of an `error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadJson,
    UnknownType,
    BadFrame,
    InvalidRoom,
    InvalidName,
    InvalidText,
    InvalidClientId,
    InvalidLimit,
    NotJoined,
    AlreadyJoined,
    TooManyRooms,
    Unavailable,
    Internal,
    /// The store cannot keep up; nothing was stored. Comes with `retry_after_ms`.
    Overloaded,
    /// Over a rate limit; the request had no effect. Comes with `retry_after_ms`.
    RateLimited,
    /// The caller may not do this here (a private room they are not in, a ban, a role).
    Forbidden,
    /// The thing named does not exist (or the caller may not know it does).
    NotFound,
    /// A reaction that is not one emoji.
    InvalidEmoji,
    /// The message carries as many distinct emoji as it may.
    TooManyReactions,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadJson => "bad_json",
            Self::UnknownType => "unknown_type",
            Self::BadFrame => "bad_frame",
            Self::InvalidRoom => "invalid_room",
            Self::InvalidName => "invalid_name",
            Self::InvalidText => "invalid_text",
            Self::InvalidClientId => "invalid_client_id",
            Self::InvalidLimit => "invalid_limit",
            Self::NotJoined => "not_joined",
            Self::AlreadyJoined => "already_joined",
            Self::TooManyRooms => "too_many_rooms",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::Overloaded => "overloaded",
            Self::RateLimited => "rate_limited",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::InvalidEmoji => "invalid_emoji",
            Self::TooManyReactions => "too_many_reactions",
        }
    }
}

impl From<crate::domain::InvalidValue> for ErrorCode {
    fn from(value: crate::domain::InvalidValue) -> Self {
        use crate::domain::InvalidValue;
        match value {
            InvalidValue::Room => Self::InvalidRoom,
            InvalidValue::Name => Self::InvalidName,
            InvalidValue::Text => Self::InvalidText,
            InvalidValue::ClientId => Self::InvalidClientId,
            // Not part of any frame today; HTTP routes give them their own codes.
            InvalidValue::Username | InvalidValue::Password => Self::BadFrame,
            InvalidValue::Emoji => Self::InvalidEmoji,
        }
    }
}
