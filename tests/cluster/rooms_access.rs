//! Room access across nodes: a kick, a ban or a revoked session made on one node holds on
//! every other within a second.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::services::{Cluster, urls};
use crate::support::{Client, TestServer, http, register, session_status};

/// What the issue promises for a kick or ban made elsewhere.
const WITHIN: Duration = Duration::from_secs(1);

async fn refused_join(client: &mut Client, room: &str) {
    client
        .send(json!({"type": "join", "room": room, "since": 0, "ref": 5}))
        .await;
    let error = client.recv_until("error").await;
    assert_eq!(error["code"], "forbidden", "{error}");
    assert_eq!(error["ref"], 5);
}

async fn removed_within(client: &mut Client, room: &str, reason: &str) {
    let removed = tokio::time::timeout(WITHIN, client.recv_until("removed"))
        .await
        .expect("removed within a second");
    assert_eq!(
        removed,
        json!({"type": "removed", "room": room, "reason": reason})
    );
}

async fn put(node: &TestServer, cookie: &str, path: &str, body: Option<Value>) -> StatusCode {
    http(&node.base_url(), Method::PUT, path, Some(cookie), body)
        .await
        .0
}

#[tokio::test]
async fn a_kick_or_a_ban_on_one_node_takes_effect_on_another_within_a_second() {
    let Some((admin, redis)) = urls() else { return };
    let cluster = Cluster::new(&admin, &redis).await;
    let (a, b) = (cluster.node().await, cluster.node().await);
    let (alice, _) = register(&a.base_url(), "alice").await;
    let (bob, _) = register(&a.base_url(), "bob").await;
    let (troll, troll_user) = crate::support::sign_in(&a.base_url(), "troll").await;
    let troll_id = troll_user["user"]["id"].as_str().unwrap().to_owned();
    for (name, visibility) in [("crew", "private"), ("hall", "public")] {
        let (status, _) = http(
            &a.base_url(),
            Method::POST,
            "/api/rooms",
            Some(&alice),
            Some(json!({"name": name, "visibility": visibility})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    assert_eq!(
        put(&a, &alice, "/api/rooms/crew/members/bob", None).await,
        StatusCode::OK
    );

    // Both join on node B, which caches each room's rules as they do.
    let mut member = b.client_with_cookie(&bob).await;
    member.join("crew").await;
    let mut pest = b.client_with_cookie(&troll).await;
    pest.join("hall").await;

    let (status, _) = http(
        &a.base_url(),
        Method::DELETE,
        "/api/rooms/crew/members/bob",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    removed_within(&mut member, "crew", "kicked").await;
    refused_join(&mut member, "crew").await;

    let path = format!("/api/rooms/hall/bans/{troll_id}");
    assert_eq!(put(&a, &alice, &path, None).await, StatusCode::NO_CONTENT);
    removed_within(&mut pest, "hall", "banned").await;
    refused_join(&mut pest, "hall").await;
    let mut fresh = b.client_with_cookie(&troll).await;
    refused_join(&mut fresh, "hall").await;
}

#[tokio::test]
async fn a_session_revoked_on_one_node_is_refused_and_closed_on_the_other() {
    let Some((admin, redis)) = urls() else { return };
    let cluster = Cluster::new(&admin, &redis).await;
    let (a, b) = (cluster.node().await, cluster.node().await);
    let (laptop, _) = register(&a.base_url(), "alice").await;
    // The phone signs in on B with its own session; the laptop's socket is on B too.
    let response = reqwest::Client::new()
        .post(format!("{}/api/login", b.base_url()))
        .json(&json!({"username": "alice", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let phone = response.headers()["set-cookie"].to_str().unwrap();
    let phone = phone.split(';').next().unwrap().to_owned();
    let mut socket = b.client_with_cookie(&laptop).await;

    let (_, sessions) = http(
        &a.base_url(),
        Method::GET,
        "/api/sessions",
        Some(&phone),
        None,
    )
    .await;
    // Oldest first: the laptop's, then the phone's own.
    let laptop_session = &sessions["sessions"][0];
    assert_eq!(laptop_session["current"], false, "{sessions}");
    let laptop_sid = laptop_session["id"].as_str().unwrap().to_owned();
    let (status, _) = http(
        &a.base_url(),
        Method::DELETE,
        &format!("/api/sessions/{laptop_sid}"),
        Some(&phone),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    assert_eq!(
        session_status(&b.base_url(), &laptop).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(socket.expect_close().await, 4003);
    assert_eq!(session_status(&b.base_url(), &phone).await, StatusCode::OK);
}
