//! Rate limits: requests over a bucket are refused with `rate_limited` and have no effect,
//! buckets are per user across connections (per IP for anonymous clients), a connection that
//! keeps going is closed with 1008, and `--rate-limits off` lifts everything.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Client, Event, PATIENCE, TestServer};

fn rate(text: &str) -> confab::limits::Rate {
    text.parse().expect("a valid rate")
}

fn send(room: &str, n: u32) -> Value {
    json!({"type": "send", "room": room, "text": format!("m{n}"), "client_id": format!("c{n}"), "ref": n})
}

/// Reads frames until an `error` arrives; returns it with the `message` seqs seen before it.
async fn until_error(client: &mut Client) -> (Value, Vec<u64>) {
    let mut seqs = Vec::new();
    loop {
        let frame = client.recv().await;
        match frame["type"].as_str() {
            Some("error") => return (frame, seqs),
            Some("message") => seqs.push(frame["seq"].as_u64().expect("seq")),
            _ => {}
        }
    }
}

/// The room's `last_seq`, as a fresh connection's `joined` tells it.
async fn last_seq(server: &TestServer, room: &str) -> u64 {
    let mut reader = server.client("reader").await;
    let joined = reader.join(room).await;
    joined["last_seq"].as_u64().expect("last_seq")
}

#[tokio::test]
async fn sends_over_the_limit_are_refused_with_a_wait_and_store_nothing() {
    let server = TestServer::start_with(|c| c.limit_send = rate("5+1/h")).await;
    let mut ann = server.client("ann").await;
    ann.join("r").await;
    for n in 1..=7 {
        ann.send(send("r", n)).await;
    }
    let (error, mut stored) = until_error(&mut ann).await;
    assert_eq!(error["code"], "rate_limited", "{error}");
    assert_eq!(error["ref"], 6, "the refusal names the refused frame");
    let retry = error["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!(retry > 0 && retry <= 3_600_000, "{error}");
    let (second, more) = until_error(&mut ann).await;
    stored.extend(more);
    assert_eq!(
        (second["code"].as_str(), second["ref"].as_u64()),
        (Some("rate_limited"), Some(7))
    );
    // A refusal is answered at once; the five accepted sends arrive once they are stored.
    while stored.len() < 5 {
        stored.push(
            ann.recv_until("message").await["seq"]
                .as_u64()
                .expect("seq"),
        );
    }
    assert_eq!(stored, [1, 2, 3, 4, 5]);
    assert_eq!(
        last_seq(&server, "r").await,
        5,
        "refused sends were not stored"
    );
}

#[tokio::test]
async fn a_user_pays_from_one_bucket_across_all_their_connections() {
    let server = TestServer::start_with(|c| c.limit_send = rate("4+1/h")).await;
    let cookie = server.sign_in("ann").await;
    let mut first = server.client_with_cookie(&cookie).await;
    let mut second = server.client_with_cookie(&cookie).await;
    assert_eq!(first.id(), second.id());
    first.join("r").await;
    second.join("r").await;
    first.say("r", "one").await;
    first.say("r", "two").await;
    second.say("r", "three").await;
    second.say("r", "four").await;
    second.send(send("r", 5)).await;
    let (error, _) = until_error(&mut second).await;
    assert_eq!(error["code"], "rate_limited");
    // Another signed-in user has a bucket of their own.
    let mut ben = server
        .client_with_cookie(&server.sign_in("ben").await)
        .await;
    ben.join("r").await;
    ben.say("r", "ben is fine").await;
    assert_eq!(last_seq(&server, "r").await, 5);
}

#[tokio::test]
async fn anonymous_connections_from_one_ip_share_its_buckets() {
    let server = TestServer::start_with(|c| c.limit_send = rate("3+1/h")).await;
    let mut ann = server.client("ann").await;
    ann.join("r").await;
    ann.say("r", "one").await;
    ann.say("r", "two").await;
    ann.close().await;
    // A new anonymous connection is a new user id, but not a new bucket.
    let mut again = server.client("ann").await;
    again.join("r").await;
    again.say("r", "three").await;
    again.send(send("r", 4)).await;
    let (error, _) = until_error(&mut again).await;
    assert_eq!(error["code"], "rate_limited");
}

#[tokio::test]
async fn a_connection_that_keeps_going_past_its_limits_is_closed_with_1008() {
    let server = TestServer::start_with(|c| {
        c.limit_rooms = rate("1+1/h");
        c.limit_refusals = rate("3+1/h");
    })
    .await;
    let mut mallory = server.client("mallory").await;
    mallory.send(json!({"type": "rooms"})).await;
    mallory.expect("rooms").await;
    for _ in 0..3 {
        mallory.send(json!({"type": "rooms"})).await;
        let error = mallory.recv_until("error").await;
        assert_eq!(error["code"], "rate_limited");
        assert!(error["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0));
    }
    // The allowance of refusals is spent: the next one also closes the connection.
    mallory.send(json!({"type": "rooms"})).await;
    let error = mallory.recv_until("error").await;
    assert_eq!(error["code"], "rate_limited");
    assert_eq!(mallory.expect_close().await, 1008);
}

#[tokio::test]
async fn joins_history_and_lobby_requests_have_buckets_too() {
    let server = TestServer::start_with(|c| {
        c.limit_join = rate("2+1/h");
        c.limit_history = rate("1+1/h");
    })
    .await;
    let mut ann = server.client("ann").await;
    ann.join("a").await;
    ann.send(json!({"type": "history", "room": "a", "before": 1, "limit": 10, "ref": "h1"}))
        .await;
    ann.expect("history").await;
    ann.send(json!({"type": "history", "room": "a", "before": 1, "limit": 10, "ref": "h2"}))
        .await;
    let error = ann.expect("error").await;
    assert_eq!(
        (error["code"].as_str(), error["ref"].as_str()),
        (Some("rate_limited"), Some("h2"))
    );
    ann.join("b").await;
    ann.send(json!({"type": "join", "room": "c", "ref": "j3"}))
        .await;
    let error = ann.expect("error").await;
    assert_eq!(
        (error["code"].as_str(), error["ref"].as_str()),
        (Some("rate_limited"), Some("j3"))
    );
    // The refused join had no effect: not a member of `c`.
    ann.send(json!({"type": "send", "room": "c", "text": "x", "client_id": "x"}))
        .await;
    assert_eq!(ann.expect("error").await["code"], "not_joined");
}

#[tokio::test]
async fn new_rooms_are_created_at_a_limited_rate_but_existing_ones_can_always_be_joined() {
    let server = TestServer::start_with(|c| c.limit_room_create = rate("2+1/h")).await;
    let mut ann = server.client("ann").await;
    ann.join("old").await; // brings `old` into being: 1 of 2
    ann.say("old", "something was said here").await;
    ann.send(json!({"type": "leave", "room": "old"})).await;
    ann.expect("left").await;
    ann.join("new1").await; // 2 of 2
    ann.send(json!({"type": "join", "room": "new2", "ref": "j"}))
        .await;
    let error = ann.expect("error").await;
    assert_eq!(error["code"], "rate_limited", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("room creation"),
        "{error}"
    );
    // A room with messages exists already, and one with people in it too.
    let joined = ann.join("old").await;
    assert_eq!(joined["last_seq"], 1);
    let mut ben = server.client("ben").await;
    ben.join("new1").await;
}

#[tokio::test]
async fn rooms_created_from_one_ip_are_limited_whoever_the_users() {
    let server = TestServer::start_with(|c| c.limit_room_create_ip = rate("2+1/h")).await;
    let mut ann = server
        .client_with_cookie(&server.sign_in("ann").await)
        .await;
    let mut ben = server
        .client_with_cookie(&server.sign_in("ben").await)
        .await;
    ann.join("one").await;
    ben.join("two").await;
    ben.send(json!({"type": "join", "room": "three", "ref": "j"}))
        .await;
    assert_eq!(ben.expect("error").await["code"], "rate_limited");
}

#[tokio::test]
async fn new_sessions_are_limited_per_ip_with_429_and_renames_are_not() {
    let server = TestServer::start_with(|c| c.limit_session_ip = rate("2+1/h")).await;
    let post = |cookie: Option<String>| {
        let mut request = reqwest::Client::new()
            .post(format!("{}/api/session", server.base_url()))
            .json(&json!({"name": "someone"}));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    let cookie = server.sign_in("ann").await;
    assert_eq!(post(None).await.unwrap().status(), StatusCode::OK);
    let refused = post(None).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(
        body["error"]["retry_after_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0)
    );
    assert!(refused_sets_no_cookie(&server).await);
    // An existing session may still change its name: that mints nothing.
    let renamed = post(Some(cookie)).await.unwrap();
    assert_eq!(renamed.status(), StatusCode::OK);
}

async fn refused_sets_no_cookie(server: &TestServer) -> bool {
    let response = reqwest::Client::new()
        .post(format!("{}/api/session", server.base_url()))
        .json(&json!({"name": "again"}))
        .send()
        .await
        .unwrap();
    response.status() == StatusCode::TOO_MANY_REQUESTS
        && !response.headers().contains_key("set-cookie")
}

#[tokio::test]
async fn rate_limits_off_lifts_every_bucket() {
    let server = TestServer::start_with(|c| {
        c.rate_limits = confab::config::RateLimits::Off;
        c.limit_send = rate("1+1/h");
        c.limit_room_create = rate("1+1/h");
        c.limit_session_ip = rate("1+1/h");
    })
    .await;
    for name in ["a", "b", "c"] {
        server.sign_in(name).await;
    }
    let mut ann = server.client("ann").await;
    for room in ["r", "s", "t"] {
        ann.join(room).await;
    }
    for n in 1..=30 {
        ann.send(send("r", n)).await;
    }
    // Every send is answered by its own message; no error comes.
    let mut seen = 0;
    while seen < 30 {
        match ann.next_event(PATIENCE).await {
            Event::Frame(frame) if frame["type"] == "message" => seen += 1,
            Event::Frame(frame) => assert_ne!(frame["type"], "error", "{frame}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(last_seq(&server, "r").await, 30);
}

#[tokio::test]
async fn the_default_limits_let_a_lively_person_chat() {
    // Defaults: a burst of 10 sends, then 2 a second.
    let server = TestServer::start().await;
    let mut ann = server.client("ann").await;
    ann.join("r").await;
    // Eleven at once: the eleventh is one too many.
    for n in 1..=11 {
        ann.send(send("r", n)).await;
    }
    let (error, _) = until_error(&mut ann).await;
    assert_eq!(
        (error["code"].as_str(), error["ref"].as_u64()),
        (Some("rate_limited"), Some(11))
    );
    let wait = error["retry_after_ms"].as_u64().unwrap();
    assert!(
        wait <= 500,
        "the next token comes within half a second: {wait} ms"
    );
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    ann.say("r", "after waiting as told").await;
}

#[tokio::test]
async fn a_user_may_be_in_only_so_many_rooms_across_all_their_connections() {
    let server = TestServer::start_with(|c| c.max_rooms_per_user = 2).await;
    let cookie = server.sign_in("ann").await;
    let mut first = server.client_with_cookie(&cookie).await;
    let mut second = server.client_with_cookie(&cookie).await;
    first.join("a").await;
    first.join("b").await;
    // A room the user is already in costs nothing more, from any connection.
    second.join("a").await;
    second
        .send(json!({"type":"join","room":"c","ref":"c"}))
        .await;
    let error = second.recv_until("error").await;
    assert_eq!(error["code"], "too_many_rooms", "{error}");
    assert_eq!(error["ref"], "c");
    // Leaving a room makes room for another; another user has a count of their own.
    first.send(json!({"type":"leave","room":"b"})).await;
    first.recv_until("left").await;
    second.join("c").await;
    let mut ben = server.client("ben").await;
    ben.join("a").await;
    ben.join("b").await;
}
