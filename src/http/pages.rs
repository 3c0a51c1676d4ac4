//! The web UI: pages and assets embedded in the binary (read from `web/` on disk in debug
//! builds), served with ETags so browsers revalidate cheaply.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use crate::state::AppState;

#[derive(RustEmbed)]
#[folder = "web/"]
struct Assets;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|headers: HeaderMap| async move { asset("index.html", &headers) }))
        .route(
            "/chat/{room}/",
            get(|headers: HeaderMap| async move { asset("chat.html", &headers) }),
        )
        // The page is public like the others (it holds no data); what it shows comes from
        // admin-only routes and frames.
        .route("/admin", get(|headers: HeaderMap| async move { asset("admin.html", &headers) }))
        .route("/chat/{room}", get(|Path(room): Path<String>| async move { to_room(&room) }))
        .route(
            "/assets/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move { asset(&path, &headers) }),
        )
}

/// `/chat/<room>` → `/chat/<room>/`, the seed's URL. The room is percent-encoded back, so an
/// odd name cannot turn the redirect into another URL; the page itself validates the name.
fn to_room(room: &str) -> Redirect {
    let encoded: String = room
        .bytes()
        .flat_map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                vec![char::from(b)]
            } else {
                format!("%{b:02X}").chars().collect()
            }
        })
        .collect();
    Redirect::permanent(&format!("/chat/{encoded}/"))
}

fn asset(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value == etag);
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, file.data.into_owned()).into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(file.metadata.mimetype()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
