//! The metrics listener's one route, `GET /metrics` in the Prometheus text format. It is
//! served on `--metrics-addr`, never on the public port: figures about traffic are for the
//! operator's scraper, not for every visitor.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::state::AppState;

#[derive(Clone)]
struct Metrics {
    app: AppState,
    handle: PrometheusHandle,
}

/// The metrics listener's router.
pub fn router(app: AppState, handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state(Metrics { app, handle })
}

async fn render(State(metrics): State<Metrics>) -> impl IntoResponse {
    // Rooms and members are read from the hub now rather than kept up to date on every join
    // and leave: a scrape every few seconds costs one pass over the rooms, joins cost nothing.
    let rooms = metrics.app.hub.occupied_rooms();
    let members = rooms.iter().map(|room| u64::from(room.online)).sum();
    crate::telemetry::metrics::set_rooms(rooms.len(), members, metrics.app.hub.log_bytes());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.handle.render(),
    )
}
