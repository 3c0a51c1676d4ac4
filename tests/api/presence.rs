//! Presence: members are people, not connections; changes arrive as diffs; the silent leave.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{Client, TestServer, member_names};

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn joined_lists_everyone_and_presence_carries_only_changes() {
    let server = TestServer::start().await;
    let mut ann = server.client("ann").await;
    assert_eq!(member_names(&ann.join("r").await), ["ann"]);
    let mut ben = server.client("ben").await;
    assert_eq!(member_names(&ben.join("r").await), ["ann", "ben"]);
    let change = ann.expect("presence").await;
    assert_eq!(change["room"], "r");
    assert_eq!(names(&change["joined"]), ["ben"]);
    assert_eq!(names(&change["left"]), Vec::<&str>::new());

    ben.send(json!({"type":"leave","room":"r"})).await;
    assert_eq!(ben.expect("left").await["room"], "r");
    let change = ann.expect("presence").await;
    assert_eq!(names(&change["left"]), ["ben"]);
    assert_eq!(change["left"][0]["id"], ben.id());
}

/// A browser session: the cookie `POST /api/session` sets.
async fn session_cookie(server: &TestServer, name: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}/api/session", server.base_url()))
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

async fn tab(server: &TestServer, cookie: &str) -> Client {
    let mut request = server.ws_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    Client::connect_request(request).await
}

#[tokio::test]
async fn two_tabs_of_one_user_are_one_member_until_the_last_one_goes() {
    let server = TestServer::start().await;
    let mut ben = server.client("ben").await;
    ben.join("r").await;
    let cookie = session_cookie(&server, "ann").await;
    let mut tab1 = tab(&server, &cookie).await;
    let mut tab2 = tab(&server, &cookie).await;
    assert_eq!(tab1.id(), tab2.id());

    tab1.join("r").await;
    assert_eq!(names(&ben.expect("presence").await["joined"]), ["ann"]);
    let joined = tab2.join("r").await;
    assert_eq!(member_names(&joined), ["ann", "ben"], "one ann, not two");

    tab1.close().await;
    // Nothing may announce ann leaving while tab2 is open: prove it by a message arriving first.
    tab2.say("r", "still here").await;
    let next = ben.recv().await;
    assert_eq!(
        next["type"], "message",
        "no presence change expected, got {next}"
    );

    tab2.close().await;
    let change = ben.expect("presence").await;
    assert_eq!(names(&change["left"]), ["ann"]);
}

#[tokio::test]
async fn a_silent_connection_is_dropped_after_the_idle_timeout_and_leaves() {
    let server = TestServer::start_with(|config| config.idle_timeout = 1).await;
    let mut ben = server.client("ben").await;
    ben.join("r").await;
    let mut ghost = server.client("ghost").await;
    ghost.join("r").await;
    ben.expect("presence").await;
    let started = std::time::Instant::now();
    // `ghost` now stops reading, so it answers no pings; ben keeps answering (he reads).
    let change = ben.recv_until("presence").await;
    assert_eq!(names(&change["left"]), ["ghost"]);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    // ben, who kept answering, is still connected.
    ben.send(json!({"type":"ping"})).await;
    ben.expect("pong").await;
    // The server closed with 4000; reading now, the ghost's client first tries to answer the
    // pings it ignored and may hit the closed socket before it reaches the close frame.
    match ghost.next_event(crate::support::PATIENCE).await {
        crate::support::Event::Closed(code) => assert_eq!(code, Some(4000)),
        crate::support::Event::Error(_) | crate::support::Event::Ended => {}
        other => panic!("the ghost should be disconnected, got {other:?}"),
    }
}

#[tokio::test]
async fn members_page_through_a_room_in_id_order_with_the_count() {
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for name in ["ann", "ben", "cat", "dan", "eve"] {
        let mut client = server.client(name).await;
        client.join("r").await;
        clients.push(client);
    }
    let mut ids: Vec<String> = clients.iter().map(|c| c.id().to_owned()).collect();
    ids.sort();
    let asker = &mut clients[0];
    asker
        .send(json!({"type":"members","room":"r","limit":2,"ref":1}))
        .await;
    let first = asker.recv_until("members").await;
    assert_eq!(first["member_count"], 5);
    assert_eq!(first["has_more"], true);
    let page_ids = |frame: &Value| -> Vec<String> {
        frame["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(page_ids(&first), ids[..2]);
    asker
        .send(json!({"type":"members","room":"r","after":ids[1]}))
        .await;
    let rest = asker.recv_until("members").await;
    assert_eq!(page_ids(&rest), ids[2..]);
    assert_eq!(rest["has_more"], false);
    asker
        .send(json!({"type":"members","room":"elsewhere","ref":"m"}))
        .await;
    let error = asker.recv_until("error").await;
    assert_eq!(error["code"], "not_joined");
    assert_eq!(error["ref"], "m");
}

#[tokio::test]
async fn joined_carries_the_member_count_and_presence_the_count_after_each_change() {
    let server = TestServer::start().await;
    let mut ann = server.client("ann").await;
    let joined = ann.join("r").await;
    assert_eq!(joined["member_count"], 1);
    assert_eq!(joined["more_members"], false);
    let mut ben = server.client("ben").await;
    let joined = ben.join("r").await;
    assert_eq!(joined["member_count"], 2);
    let change = ann.recv_until("presence").await;
    assert_eq!(names(&change["joined"]), ["ben"]);
    assert_eq!(change["member_count"], 2);
}
