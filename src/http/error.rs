//! The HTTP API's one error type: each variant has its status and stable code; internal
//! details are logged here, once, and never shown to clients.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("no session: sign in, post a name to /api/session, or connect with ?name=")]
    Unauthenticated,
    #[error("storage is unavailable")]
    Unavailable(#[source] crate::store::StoreError),
    #[error("this origin may not use this server (see --allowed-origins)")]
    ForbiddenOrigin,
    #[error("too many connections from your address")]
    TooManyConnections,
    #[error("the server holds as many connections as it may; try again later")]
    ServerFull,
    #[error("the request body is larger than the server accepts")]
    PayloadTooLarge,
    #[error("the request body did not arrive in time")]
    BodyTimedOut,
    #[error("{0}")]
    InvalidUsername(String),
    #[error("{0}")]
    InvalidPassword(String),
    #[error("that username is taken")]
    UsernameTaken,
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("this needs an account: sign up first")]
    AccountRequired,
    #[error("this account is banned from this server")]
    Banned,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(&'static str),
    /// The store cannot keep up; nothing was done. Carries the milliseconds to wait.
    #[error("the server cannot store changes this fast; retry after {0} ms")]
    Overloaded(u64),
    #[error("a room with that name exists")]
    RoomExists,
    /// Over a rate limit; nothing was done. Carries the milliseconds to wait.
    #[error("too many requests; retry after {0} ms")]
    RateLimited(u64),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidName(_) => (StatusCode::BAD_REQUEST, "invalid_name"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::ForbiddenOrigin => (StatusCode::FORBIDDEN, "forbidden_origin"),
            Self::TooManyConnections => (StatusCode::TOO_MANY_REQUESTS, "too_many_connections"),
            Self::ServerFull => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::BodyTimedOut => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::InvalidUsername(_) => (StatusCode::BAD_REQUEST, "invalid_username"),
            Self::InvalidPassword(_) => (StatusCode::BAD_REQUEST, "invalid_password"),
            Self::UsernameTaken => (StatusCode::CONFLICT, "username_taken"),
            Self::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            Self::WrongPassword => (StatusCode::FORBIDDEN, "wrong_password"),
            Self::AccountRequired => (StatusCode::FORBIDDEN, "account_required"),
            Self::Banned => (StatusCode::FORBIDDEN, "banned"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::RoomExists => (StatusCode::CONFLICT, "room_exists"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Unavailable(source) = &self {
            tracing::error!(error = %source, "request failed on storage");
        }
        let (status, code) = self.status_and_code();
        let mut body = json!({"error": {"code": code, "message": self.to_string()}});
        if let Self::RateLimited(millis) | Self::Overloaded(millis) = self {
            body["error"]["retry_after_ms"] = millis.into();
            let seconds = millis.div_ceil(1000).max(1);
            return (
                status,
                [(header::RETRY_AFTER, seconds.to_string())],
                Json(body),
            )
                .into_response();
        }
        (status, Json(body)).into_response()
    }
}
