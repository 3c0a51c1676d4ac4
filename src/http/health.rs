//! Probes for whoever runs confab: liveness (`/healthz`: the process serves) and readiness
//! (`/readyz`: it can do its work now: the store and, in a cluster, Redis answer, and it is
//! not draining). Both are merged outside the tracing and guard layers: a load balancer polls
//! them every few seconds, and they must neither fill the log nor cost a store read for a
//! cookie check.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::state::AppState;

/// How long a dependency may take to answer before the node is called not ready. Short: a
/// probe that hangs is as bad as one that fails, and probes come again in a few seconds.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.shutdown.is_cancelled() {
        return not_ready("draining: the server is shutting down");
    }
    // One indexed row: proves a pooled connection can run a query now.
    match tokio::time::timeout(CHECK_TIMEOUT, state.store.recent_rooms(1)).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            tracing::debug!(%error, "readiness: the store failed");
            return not_ready("the store is unavailable");
        }
        Err(_) => return not_ready("the store did not answer in time"),
    }
    match tokio::time::timeout(CHECK_TIMEOUT, state.broker.ready()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::debug!(%error, "readiness: the broker failed");
            return not_ready("the broker (Redis) is unavailable");
        }
        Err(_) => return not_ready("the broker (Redis) did not answer in time"),
    }
    (StatusCode::OK, Json(json!({"status": "ready"}))).into_response()
}

fn not_ready(message: &str) -> Response {
    let body = json!({"error": {"code": "not_ready", "message": message}});
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}
