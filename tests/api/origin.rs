//! Cross-site requests: a page on another origin (even another port of the same host) cannot
//! open a WebSocket or change anything through the API in the name of a browser's session.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{TestServer, upgrade_status, ws_request};

async fn api(server: &TestServer, method: reqwest::Method, headers: &[(&str, &str)]) -> StatusCode {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}/api/session", server.base_url()))
        .json(&json!({"name": "mallory"}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn a_websocket_from_another_origin_is_refused_with_403() {
    let server = TestServer::start().await;
    let url = format!("{}?name=alice", server.ws_url());
    let own = format!("http://127.0.0.1:{}", server.port());
    // The finding: a page on another port of the same host posted as the victim.
    let other_port = format!("http://127.0.0.1:{}", server.port() + 1);
    for origin in [
        other_port.as_str(),
        "http://evil.example",
        "null",
        "garbage",
    ] {
        let status = upgrade_status(ws_request(&url, &[("origin", origin)])).await;
        assert_eq!(status, 403, "Origin: {origin}");
    }
    assert_eq!(
        upgrade_status(ws_request(&url, &[("origin", &own)])).await,
        101
    );
    // Non-browser clients send no Origin at all.
    assert_eq!(upgrade_status(ws_request(&url, &[])).await, 101);
}

#[tokio::test]
async fn changing_api_calls_from_another_origin_are_refused_and_reads_are_not() {
    let server = TestServer::start().await;
    let own = format!("http://127.0.0.1:{}", server.port());
    let foreign = [("origin", "http://evil.example")];
    assert_eq!(
        api(&server, reqwest::Method::POST, &foreign).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api(&server, reqwest::Method::DELETE, &foreign).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api(&server, reqwest::Method::PUT, &foreign).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api(&server, reqwest::Method::POST, &[("origin", "null")]).await,
        StatusCode::FORBIDDEN
    );
    // A read changes nothing, so its origin does not matter (no cookie here: 401).
    assert_eq!(
        api(&server, reqwest::Method::GET, &foreign).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api(&server, reqwest::Method::POST, &[("origin", &own)]).await,
        StatusCode::OK
    );
    assert_eq!(
        api(&server, reqwest::Method::POST, &[]).await,
        StatusCode::OK
    );

    let body: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/session", server.base_url()))
        .header("origin", "http://evil.example")
        .json(&json!({"name": "mallory"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["error"]["code"], "forbidden_origin");
}

#[tokio::test]
async fn allowed_origins_add_to_the_servers_own() {
    let server = TestServer::start_with(|config| {
        config.allowed_origins = vec!["https://chat.example.com".parse().unwrap()];
    })
    .await;
    let url = format!("{}?name=alice", server.ws_url());
    let status = |origin: &'static str| upgrade_status(ws_request(&url, &[("origin", origin)]));
    assert_eq!(status("https://chat.example.com").await, 101);
    assert_eq!(status("https://CHAT.example.com:443").await, 101);
    assert_eq!(status("http://chat.example.com").await, 403);
    assert_eq!(status("https://other.example.com").await, 403);

    let any = TestServer::start_with(|config| {
        config.allowed_origins = vec!["*".parse().unwrap()];
    })
    .await;
    let url = format!("{}?name=alice", any.ws_url());
    assert_eq!(
        upgrade_status(ws_request(&url, &[("origin", "https://anywhere.example")])).await,
        101
    );
    assert_eq!(
        upgrade_status(ws_request(&url, &[("origin", "null")])).await,
        403,
        "`null` is no origin, not even under `*`"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_own_origin_is_the_one_the_browser_sees() {
    let public = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "chat.example.com"),
        ("origin", "https://chat.example.com"),
    ];
    let behind = TestServer::start_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let url = format!("{}?name=alice", behind.ws_url());
    assert_eq!(upgrade_status(ws_request(&url, &public)).await, 101);

    // The same headers from a peer that is not a trusted proxy are the client's own claims.
    let open = TestServer::start().await;
    let url = format!("{}?name=alice", open.ws_url());
    assert_eq!(upgrade_status(ws_request(&url, &public)).await, 403);
}
