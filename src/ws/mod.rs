//! The WebSocket edge: `/ws` authenticates the upgrade ([`router`]), then each connection runs
//! a session ([`session`]: reads and answers frames) beside a writer ([`writer`]: drains the
//! connection's queue into the socket, pings, closes).

mod session;
mod writer;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum_extra::extract::SignedCookieJar;
use serde::Deserialize;

use crate::domain::{DisplayName, User, UserId};
use crate::http::ApiError;
use crate::identity;
use crate::limits::{self, Payer};
use crate::protocol::MAX_FRAME_BYTES;
use crate::state::AppState;

/// tungstenite's own ceiling, above the protocol's 64 KiB, so that a frame between the two is
/// read whole and refused by us with a clean 1009 rather than a transport error.
const TRANSPORT_MAX_FRAME: usize = 16 * MAX_FRAME_BYTES;
/// Read buffer per connection, allocated up front (tungstenite's default is 128 KiB). Client
/// frames are small and rare; the buffer grows to fit a larger one, so this only bounds what
/// one read syscall takes, and keeps idle connections cheap.
const READ_BUFFER: usize = 512;
/// Frames are gathered up to this size before a write; the writer flushes after each drain
/// of its queue anyway, so this only caps how much one write carries.
const WRITE_BUFFER: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

#[derive(Deserialize)]
struct Params {
    name: Option<String>,
}

async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: SignedCookieJar,
    Query(params): Query<Params>,
    socket: WebSocketUpgrade,
) -> Response {
    // TODO(http helper): take the client IP from `ClientAddr` (trusted proxies) once it lands.
    let ip = peer.ip();
    let (user, payer) = match (identity::user_from(&jar), params.name) {
        (Some(user), _) => {
            let payer = Payer::User(user.id.clone());
            (user, payer)
        }
        // A new id on every connect: the IP pays, so reconnecting buys no fresh burst.
        (None, Some(name)) => match DisplayName::parse(&name) {
            Ok(name) => (
                User {
                    id: UserId::generate(),
                    name,
                },
                Payer::Anonymous(ip),
            ),
            Err(invalid) => return ApiError::InvalidName(invalid.to_string()).into_response(),
        },
        (None, None) => return ApiError::Unauthenticated.into_response(),
    };
    let sessions = state.sessions.clone();
    let limits = limits::Connection::new(state.limits.clone(), payer, ip);
    socket
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(TRANSPORT_MAX_FRAME)
        .max_frame_size(TRANSPORT_MAX_FRAME)
        .on_upgrade(move |socket| sessions.track_future(session::run(socket, user, limits, state)))
}
