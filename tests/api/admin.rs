//! The admin view against a real server: `GET /api/admin/stats` and the `admin_watch` feed
//! are for server administrators only, their figures move when traffic flows, and the actions
//! work: a server-wide ban ends the user's sessions, closes their sockets with 4005 and refuses
//! their sign-in until it is lifted; closing a user's connections (4004) leaves their session.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, http, register, session_status, sign_in};

/// How long a figure may take to show what just happened (the sampler ticks every second).
const SETTLE: Duration = Duration::from_secs(10);

/// An administrator's session cookie on `server`.
async fn administrator(server: &TestServer, username: &str) -> String {
    let (cookie, _) = register(&server.base_url(), username).await;
    let (ok, said) = server.admin(&["grant", username]).await;
    assert!(ok, "{said}");
    cookie
}

async fn stats(server: &TestServer, cookie: &str) -> Value {
    let (status, body) = http(
        &server.base_url(),
        Method::GET,
        "/api/admin/stats",
        Some(cookie),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The stats once `holds` is true of them; fails with the last ones after [`SETTLE`].
async fn stats_when(server: &TestServer, cookie: &str, holds: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + SETTLE;
    loop {
        let body = stats(server, cookie).await;
        if holds(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "never held: {body:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn action(
    server: &TestServer,
    cookie: &str,
    method: Method,
    path: &str,
) -> (StatusCode, Value) {
    http(&server.base_url(), method, path, Some(cookie), None).await
}

async fn login(server: &TestServer, username: &str) -> (StatusCode, Value) {
    http(
        &server.base_url(),
        Method::POST,
        "/api/login",
        None,
        Some(json!({"username": username, "password": "correct horse battery"})),
    )
    .await
}

#[tokio::test]
async fn only_administrators_see_the_admin_view() {
    let server = TestServer::start().await;
    let base = server.base_url();
    let (status, body) = http(&base, Method::GET, "/api/admin/stats", None, None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::UNAUTHORIZED, &json!("unauthenticated"))
    );
    let (guest, _) = sign_in(&base, "guest").await;
    let (member, _) = register(&base, "member").await;
    for cookie in [&guest, &member] {
        let (status, body) = http(&base, Method::GET, "/api/admin/stats", Some(cookie), None).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (StatusCode::FORBIDDEN, &json!("forbidden"))
        );
        let (status, _) = action(
            &server,
            cookie,
            Method::POST,
            "/api/admin/users/guest/disconnect",
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let mut client = server.client_with_cookie(cookie).await;
        client
            .send(json!({"type": "admin_watch", "ref": "w"}))
            .await;
        let refused = client.recv_until("error").await;
        assert_eq!(
            (&refused["code"], &refused["ref"]),
            (&json!("forbidden"), &json!("w"))
        );
    }
    // A `?name=` connection has no session, so no account to be an administrator with.
    let mut anonymous = server.client("anon").await;
    anonymous.send(json!({"type": "admin_watch"})).await;
    assert_eq!(anonymous.recv_until("error").await["code"], "forbidden");

    let admin = administrator(&server, "root").await;
    let body = stats(&server, &admin).await;
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    for reason in [
        "idle",
        "stalled",
        "resync",
        "rate_limited",
        "shutdown",
        "client",
        "banned",
        "admin",
    ] {
        assert!(
            body["disconnects"][reason].is_u64(),
            "{reason} missing: {body}"
        );
    }
    // Administration is read from the store on each request: revoked, the view is gone.
    let (ok, said) = server.admin(&["revoke", "root"]).await;
    assert!(ok, "{said}");
    let (status, _) = http(&base, Method::GET, "/api/admin/stats", Some(&admin), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_figures_move_when_traffic_flows() {
    let server = TestServer::start().await;
    let admin = administrator(&server, "root").await;
    let before = stats(&server, &admin).await;
    let mut ann = server.client("ann").await;
    let mut bob = server.client("bob").await;
    ann.join("busy").await;
    bob.join("busy").await;
    let mut quiet = server.client("cyd").await;
    quiet.join("quiet").await;
    for i in 0..5 {
        ann.say("busy", &format!("hello {i}")).await;
    }
    for _ in 0..5 {
        bob.recv_until("message").await;
    }
    quiet.close().await;

    let stored_before = before["messages_stored"].as_u64().unwrap();
    let delivered_before = before["deliveries"].as_u64().unwrap();
    let client_closes = before["disconnects"]["client"].as_u64().unwrap();
    let now = stats_when(&server, &admin, |body| {
        body["messages_stored"].as_u64() >= Some(stored_before + 5)
            && body["deliveries"].as_u64() >= Some(delivered_before + 10)
            && body["disconnects"]["client"].as_u64() > Some(client_closes)
            && body["messages_per_s"].as_f64() > Some(0.0)
            && body["deliveries_per_s"].as_f64() > Some(0.0)
            && body["delivery_p99_ms"].is_number()
    })
    .await;
    assert!(now["connections"].as_u64() >= Some(2), "{now}");
    assert_eq!(
        now["rooms_active"], 1,
        "the closed client's room emptied: {now}"
    );
    assert_eq!(now["members_online"], 2);
    let busiest = &now["busiest_rooms"][0];
    assert_eq!(
        (&busiest["name"], &busiest["online"]),
        (&json!("busy"), &json!(2))
    );
    assert_eq!(busiest["visibility"], "public");
    let mut names: Vec<&str> = busiest["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| member["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["ann", "bob"]);
    assert_eq!(busiest["more_members"], false);
}

#[tokio::test]
async fn administrators_watch_the_figures_live_over_the_websocket() {
    let server = TestServer::start().await;
    let admin = administrator(&server, "root").await;
    let mut watcher = server.client_with_cookie(&admin).await;
    watcher.send(json!({"type": "admin_watch"})).await;
    let first = watcher.recv_until("admin_stats").await;
    let stored = first["messages_stored"].as_u64().unwrap();
    assert!(
        first["busiest_rooms"].is_array() && first["banned"].is_array(),
        "{first}"
    );

    let mut ann = server.client("ann").await;
    ann.join("live").await;
    ann.say("live", "hi").await;
    // Each later frame is the figures of its moment: one soon shows the message and the room.
    let deadline = Instant::now() + SETTLE;
    loop {
        let frame = watcher.recv_until("admin_stats").await;
        if frame["messages_stored"].as_u64() > Some(stored)
            && frame["busiest_rooms"][0]["name"] == "live"
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the feed never showed the message: {frame}"
        );
    }
    // After `admin_unwatch` the feed stops: the next frame is the answer to a ping.
    watcher.send(json!({"type": "admin_unwatch"})).await;
    watcher.send(json!({"type": "ping"})).await;
    loop {
        let frame = watcher.recv().await;
        if frame["type"] == "pong" {
            break;
        }
        assert_eq!(
            frame["type"], "admin_stats",
            "only frames already queued: {frame}"
        );
    }
    // Past two ticks of the feed, nothing more arrives.
    if let crate::support::Event::Frame(frame) =
        watcher.next_event(Duration::from_millis(2500)).await
    {
        panic!("the feed went on after unwatch: {frame}");
    }
}

#[tokio::test]
async fn a_ban_ends_the_users_sessions_and_sockets_until_it_is_lifted() {
    let server = TestServer::start().await;
    let admin = administrator(&server, "root").await;
    let (troll, user) = register(&server.base_url(), "troll").await;
    let mut first = server.client_with_cookie(&troll).await;
    let mut second = server.client_with_cookie(&troll).await;
    first.join("r").await;
    let mut bystander = server.client("bystander").await;
    bystander.join("r").await;

    let (status, body) = action(&server, &admin, Method::POST, "/api/admin/users/Troll/ban").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(first.expect_close().await, 4005);
    assert_eq!(second.expect_close().await, 4005);
    // The server counts a connection once it has ended: its TCP connection too.
    drop((first, second));
    assert_eq!(
        session_status(&server.base_url(), &troll).await,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = login(&server, "troll").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::FORBIDDEN, &json!("banned"))
    );
    // A wrong password says nothing about the ban.
    let (status, body) = http(
        &server.base_url(),
        Method::POST,
        "/api/login",
        None,
        Some(json!({"username": "troll", "password": "wrong password!"})),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::UNAUTHORIZED, &json!("invalid_credentials"))
    );
    // Others carry on.
    bystander.say("r", "still here").await;
    let listed = stats_when(&server, &admin, |body| {
        body["disconnects"]["banned"].as_u64() >= Some(2)
    })
    .await;
    assert_eq!(
        listed["banned"],
        json!([{"id": user["id"], "name": "troll", "guest": false, "username": "troll"}])
    );

    // Refusals: oneself, another administrator, nobody.
    let (status, _) = action(&server, &admin, Method::POST, "/api/admin/users/root/ban").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    administrator(&server, "other").await;
    let (status, body) = action(&server, &admin, Method::POST, "/api/admin/users/other/ban").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::FORBIDDEN, &json!("forbidden"))
    );
    let (status, body) = action(&server, &admin, Method::POST, "/api/admin/users/nobody/ban").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );

    // Lifted (by id this time), the account signs in again; its old sessions stay ended.
    let path = format!("/api/admin/users/{}/ban", user["id"].as_str().unwrap());
    let (status, _) = action(&server, &admin, Method::DELETE, &path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = login(&server, "troll").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        session_status(&server.base_url(), &troll).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(stats(&server, &admin).await["banned"], json!([]));
}

#[tokio::test]
async fn closing_a_users_connections_leaves_their_session() {
    let server = TestServer::start().await;
    let admin = administrator(&server, "root").await;
    let (guest, user) = sign_in(&server.base_url(), "wanderer").await;
    let id = user["user"]["id"].as_str().unwrap().to_owned();
    let mut tabs = [
        server.client_with_cookie(&guest).await,
        server.client_with_cookie(&guest).await,
    ];
    let mut other = server.client("other").await;

    let (status, _) = action(
        &server,
        &admin,
        Method::POST,
        &format!("/api/admin/users/{id}/disconnect"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for tab in &mut tabs {
        assert_eq!(tab.expect_close().await, 4004);
    }
    drop(tabs);
    // The session stays, so the page may reconnect when its user asks; nobody else was touched.
    assert_eq!(
        session_status(&server.base_url(), &guest).await,
        StatusCode::OK
    );
    let mut again = server.client_with_cookie(&guest).await;
    again.join("back").await;
    other.join("back").await;
    let admin_view = stats_when(&server, &admin, |body| {
        body["disconnects"]["admin"].as_u64() >= Some(2)
    })
    .await;
    assert_eq!(admin_view["busiest_rooms"][0]["online"], 2);
}
