//! The WebSocket edge: `/ws` authenticates and upgrades ([`router`]), then each connection is
//! one task ([`connection`]: reads and decodes client frames, writes shared pre-encoded frames
//! many at a time, pings, closes) driving a session ([`session`]: answers requests).
//!
//! The handshake and framing are confab's own ([`frame`]) rather than a WebSocket library's:
//! server frames are built once per message and the same bytes are written to every socket
//! (many frames per `writev`), which a library that copies each payload into a per-connection
//! buffer cannot do, and every client violation gets the close code RFC 6455 asks for.

mod connection;
pub mod frame;
mod session;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use futures_util::FutureExt;
use futures_util::future::Either;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use sha1::{Digest, Sha1};
use tokio::net::TcpStream;

use crate::accounts::Caller;
use crate::domain::{DisplayName, User};
use crate::http::{ApiError, ClientAddr, ConnectionPermit};
use crate::limits::{self, Payer};
use crate::state::AppState;

/// RFC 6455's fixed GUID for the `Sec-WebSocket-Accept` answer.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

pub fn router() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

#[derive(Deserialize)]
struct Params {
    name: Option<String>,
}

async fn upgrade(
    State(state): State<AppState>,
    client: ClientAddr,
    caller: Option<Caller>,
    Query(params): Query<Params>,
    mut request: Request,
) -> Response {
    let ip = client.bucket();
    let (identity, payer) = match (caller, params.name) {
        (Some(caller), _) => {
            let payer = Payer::User(caller.user.id.clone());
            let identity = session::Identity {
                user: caller.user,
                sid: Some(caller.session.sid),
                admin: caller.admin,
                username: caller.username,
            };
            (identity, payer)
        }
        // A new id on every connect: the IP pays, so reconnecting buys no fresh burst.
        (None, Some(name)) => match DisplayName::parse(&name) {
            Ok(name) => {
                let identity = session::Identity {
                    user: User::new_guest(name),
                    sid: None,
                    admin: false,
                    username: None,
                };
                (identity, Payer::Anonymous(ip))
            }
            Err(invalid) => return ApiError::InvalidName(invalid.to_string()).into_response(),
        },
        (None, None) => return ApiError::Unauthenticated.into_response(),
    };
    let accept = match accept_key(request.headers()) {
        Ok(accept) => accept,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return (
            StatusCode::BAD_REQUEST,
            "this connection cannot be upgraded",
        )
            .into_response();
    };
    // The connection counts against the connection caps (`http::edge`) until it ends.
    let permit = request.extensions_mut().remove::<ConnectionPermit>();
    let sessions = state.sessions.clone();
    let limits = limits::Connection::new(state.limits.clone(), payer, ip);
    // Built from combinators, not an `async` block: a block keeps what it captured (the
    // identity, limits, state) beside the connection they were moved into for the task's whole
    // life, and the task's size is every idle connection's memory. `then` drops its closure
    // once the upgrade is done, and `Either` holds one connection future, not both.
    let serve = on_upgrade
        .then(move |upgraded| match upgraded {
            // Plain TCP: split without a lock, and write with `writev`. Anything else (TLS)
            // goes through a generic split.
            Ok(upgraded) => match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(parts) => {
                    let (reader, writer) = parts.io.into_inner().into_split();
                    let leftover = parts.read_buf;
                    Either::Left(Either::Left(connection::run(
                        reader, writer, leftover, identity, limits, state,
                    )))
                }
                Err(upgraded) => {
                    let (reader, writer) = tokio::io::split(TokioIo::new(upgraded));
                    let leftover = bytes::Bytes::new();
                    Either::Left(Either::Right(connection::run(
                        reader, writer, leftover, identity, limits, state,
                    )))
                }
            },
            Err(error) => {
                tracing::debug!(%error, "upgrade failed");
                Either::Right(std::future::ready(()))
            }
        })
        // The permit is released when the connection ends.
        .map(move |()| drop(permit));
    sessions.spawn(serve);
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// Why an upgrade request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BadUpgrade {
    NotWebSocket,
    Version,
    Key,
}

impl IntoResponse for BadUpgrade {
    fn into_response(self) -> Response {
        match self {
            Self::NotWebSocket => {
                (StatusCode::BAD_REQUEST, "expected a WebSocket upgrade").into_response()
            }
            Self::Version => {
                let mut response =
                    (StatusCode::UPGRADE_REQUIRED, "WebSocket version 13 only").into_response();
                response.headers_mut().insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
                response
            }
            Self::Key => {
                (StatusCode::BAD_REQUEST, "missing or bad Sec-WebSocket-Key").into_response()
            }
        }
    }
}

/// Checks the upgrade request (RFC 6455 §4.2.1) and derives the `Sec-WebSocket-Accept` value.
fn accept_key(headers: &HeaderMap) -> Result<HeaderValue, BadUpgrade> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|value| {
                value
                    .split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return Err(BadUpgrade::NotWebSocket);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(BadUpgrade::Version);
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
        .filter(|key| {
            base64::engine::general_purpose::STANDARD
                .decode(key)
                .is_ok_and(|nonce| nonce.len() == 16)
        })
        .ok_or(BadUpgrade::Key)?;
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(ACCEPT_GUID);
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    // Base64 is always a valid header value.
    HeaderValue::from_str(&accept).map_err(|_| BadUpgrade::Key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_is_the_one_rfc_6455_gives() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        assert_eq!(
            accept_key(&headers).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        assert_eq!(accept_key(&headers).unwrap_err(), BadUpgrade::Version);
    }
}
