//! Connection caps and size limits: one address cannot hold the server's sockets, a full
//! server says so before any WebSocket work, and an oversized body is refused as such.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{Client, PATIENCE, TestServer, upgrade_status, ws_request};

/// Connects until the server refuses, holding every accepted connection; returns them and the
/// refusal's status.
async fn hold_until_refused(
    url: &str,
    headers: &[(&str, &str)],
    at_most: usize,
) -> (Vec<Client>, u16) {
    let mut held = Vec::new();
    for _ in 0..at_most {
        match Client::try_connect_request(ws_request(url, headers)).await {
            Ok(client) => held.push(client),
            Err(status) => return (held, status),
        }
    }
    (held, 0)
}

#[tokio::test]
async fn one_address_gets_at_most_64_connections_by_default_then_429() {
    let server = TestServer::start().await;
    let url = format!("{}?name=flood", server.ws_url());
    let (held, status) = hold_until_refused(&url, &[], 200).await;
    assert_eq!(
        held.len(),
        64,
        "the finding: 1,500 connections from one IP were all accepted"
    );
    assert_eq!(status, 429);
}

#[tokio::test]
async fn a_closed_connection_gives_its_place_back() {
    let server = TestServer::start_with(|config| config.max_connections_per_ip = 2).await;
    let url = format!("{}?name=alice", server.ws_url());
    let (mut held, status) = hold_until_refused(&url, &[], 10).await;
    assert_eq!((held.len(), status), (2, 429));
    held.pop().expect("a client").close().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if upgrade_status(ws_request(&url, &[])).await == 101 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place of a closed connection was never released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_full_server_answers_503_to_everyone() {
    let server = TestServer::start_with(|config| config.max_connections = 3).await;
    let url = format!("{}?name=alice", server.ws_url());
    let trusted = TestServer::start_with(|config| {
        config.max_connections = 3;
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let (held, status) = hold_until_refused(&url, &[], 10).await;
    assert_eq!((held.len(), status), (3, 503));

    // Through a proxy, distinct clients still share the server's total.
    let url = format!("{}?name=alice", trusted.ws_url());
    let mut held = Vec::new();
    for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        held.push(Client::connect_request(ws_request(&url, &[("x-forwarded-for", ip)])).await);
    }
    let status = upgrade_status(ws_request(&url, &[("x-forwarded-for", "192.0.2.4")])).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn rate_limits_off_lifts_the_per_address_cap_but_not_the_total() {
    let server = TestServer::start_with(|config| {
        config.max_connections_per_ip = 2;
        config.max_connections = 5;
        config.rate_limits = confab::config::RateLimits::Off;
    })
    .await;
    let url = format!("{}?name=bench", server.ws_url());
    let (held, status) = hold_until_refused(&url, &[], 10).await;
    assert_eq!((held.len(), status), (5, 503));
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let behind = TestServer::start_with(|config| {
        config.max_connections_per_ip = 1;
        config.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let url = format!("{}?name=alice", behind.ws_url());
    let _one = Client::connect_request(ws_request(&url, &[("x-forwarded-for", "192.0.2.1")])).await;
    let _two = Client::connect_request(ws_request(&url, &[("x-forwarded-for", "192.0.2.2")])).await;
    let again = upgrade_status(ws_request(&url, &[("x-forwarded-for", "192.0.2.1")])).await;
    assert_eq!(again, 429);
    // Prepending a made-up address does not make a new client: the proxy's hop decides.
    let spoofed = ws_request(&url, &[("x-forwarded-for", "203.0.113.9, 192.0.2.1")]);
    assert_eq!(upgrade_status(spoofed).await, 429);

    // Without trusted proxies, the header is the client's own claim and changes nothing.
    let open = TestServer::start_with(|config| config.max_connections_per_ip = 1).await;
    let url = format!("{}?name=alice", open.ws_url());
    let _one = Client::connect_request(ws_request(&url, &[("x-forwarded-for", "192.0.2.1")])).await;
    let other = upgrade_status(ws_request(&url, &[("x-forwarded-for", "192.0.2.2")])).await;
    assert_eq!(other, 429);
}

#[tokio::test]
async fn an_oversized_body_gets_413_not_400() {
    let server = TestServer::start().await;
    let name = "a".repeat(100 * 1024);
    let response = reqwest::Client::new()
        .post(format!("{}/api/session", server.base_url()))
        .header("content-type", "application/json")
        .body(format!("{{\"name\":\"{name}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_large");
    // A malformed body of a fine size is still a 400.
    let response = reqwest::Client::new()
        .post(format!("{}/api/session", server.base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let small = TestServer::start_with(|config| config.max_body_bytes = 1000).await;
    let post = async |bytes: usize| {
        reqwest::Client::new()
            .post(format!("{}/api/session", small.base_url()))
            .header("content-type", "application/json")
            .body(format!("{{\"name\":\"bob\"{}}}", " ".repeat(bytes)))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(post(2000).await, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(post(500).await, StatusCode::OK);
}
