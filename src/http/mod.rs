//! The HTTP edge: one router merging each feature's routes, plus the layers every request and
//! response passes ([`edge`]: client address, origin, connection caps, revoked sessions, HSTS;
//! tracing, panic containment, security headers), and the accept loop that serves it
//! ([`serve`], over TCP or [`tls`]).

mod accounts;
mod admin;
mod api;
pub mod edge;
mod error;
mod health;
mod messages;
pub mod metrics;
mod pages;
mod rooms;
pub mod serve;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::state::AppState;

pub use edge::{ClientAddr, ConnectionPermit, Edge, Secure};
pub use error::ApiError;

/// The page may load only its own scripts, styles and sockets: user text can never become code.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Every route (the WebSocket ones come from `ws`, passed in so the edges do not import each
/// other) behind the layers every response gets.
pub fn router(state: AppState, edge: Arc<Edge>, ws: Router<AppState>) -> Router {
    // `--max-body-bytes`: bodies here are a name or so; a flood of large ones is refused (413)
    // before it is buffered.
    let body_limit = DefaultBodyLimit::max(edge.max_body_bytes());
    let guard = edge::Guard {
        edge,
        app: state.clone(),
    };
    Router::new()
        .merge(api::router())
        .merge(accounts::router())
        .merge(admin::router())
        .merge(messages::router())
        .merge(rooms::router())
        .merge(pages::router())
        .merge(ws)
        .layer(body_limit)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ))
        .layer(axum::middleware::from_fn_with_state(guard, edge::guard))
        .layer(CatchPanicLayer::new())
        .layer(TraceLayer::new_for_http())
        // Probes come after the layers, so they pass none of them (see `health`).
        .merge(health::router())
        .with_state(state)
}
