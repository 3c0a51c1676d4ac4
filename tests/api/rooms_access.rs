//! Private rooms, roles, bans and direct messages: every guard that keeps a room's messages
//! from someone who may not read them, seen from real clients.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{self, Client, Event, TestServer};

/// Someone who may be signed in: their cookie and how the server shows them.
struct Person {
    cookie: String,
    user: Value,
}

impl Person {
    fn id(&self) -> &str {
        self.user["id"].as_str().expect("user id")
    }
}

async fn register(server: &TestServer, username: &str) -> Person {
    let (cookie, user) = support::register(&server.base_url(), username).await;
    Person { cookie, user }
}

async fn guest(server: &TestServer, name: &str) -> Person {
    let cookie = server.sign_in(name).await;
    let (status, body) = call(server, Method::GET, "/api/session", Some(&cookie), None).await;
    assert_eq!(status, StatusCode::OK);
    Person {
        cookie,
        user: body["user"].clone(),
    }
}

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    support::http(&server.base_url(), method, path, cookie, body).await
}

async fn as_(server: &TestServer, who: &Person, method: Method, path: &str) -> (StatusCode, Value) {
    call(server, method, path, Some(&who.cookie), None).await
}

async fn create(server: &TestServer, owner: &Person, name: &str, visibility: &str) -> Value {
    let (status, body) = call(
        server,
        Method::POST,
        "/api/rooms",
        Some(&owner.cookie),
        Some(json!({"name": name, "visibility": visibility})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "create {name}: {body}");
    body
}

/// Sends `frame` with `ref` 42 and expects an `error` with `code` answering it.
async fn refused(client: &mut Client, mut frame: Value, code: &str) {
    frame["ref"] = 42.into();
    client.send(frame.clone()).await;
    let error = client.recv_until("error").await;
    assert_eq!(error["code"], code, "{frame} answered {error}");
    assert_eq!(error["ref"], 42);
}

/// Nothing but presence and lobby chatter arrives for `wait`: in particular no message.
async fn hears_no_message(client: &mut Client, wait: Duration) {
    let until = tokio::time::Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return;
        }
        match client.next_event(left).await {
            Event::Silence => return,
            Event::Frame(frame) => assert!(
                frame["type"] != "message" && frame["type"] != "joined",
                "a removed member heard {frame}"
            ),
            other => panic!("connection ended: {other:?}"),
        }
    }
}

fn names(rooms: &Value) -> Vec<(String, String)> {
    rooms["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .map(|room| {
            (
                room["name"].as_str().unwrap().to_owned(),
                room["visibility"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_non_member_can_never_read_a_private_room() {
    let server = TestServer::unlimited().await;
    let alice = register(&server, "alice").await;
    let bob = register(&server, "bob").await;
    create(&server, &alice, "secret", "private").await;
    let mut owner = server.client_with_cookie(&alice.cookie).await;
    owner.join("secret").await;
    owner.say("secret", "hush").await;
    owner.join("open").await;

    let mut outsider = server.client_with_cookie(&bob.cookie).await;
    refused(
        &mut outsider,
        json!({"type": "join", "room": "secret"}),
        "forbidden",
    )
    .await;
    refused(
        &mut outsider,
        json!({"type": "join", "room": "secret", "since": 0}),
        "forbidden",
    )
    .await;
    let history = json!({"type": "history", "room": "secret", "before": 0, "limit": 50});
    refused(&mut outsider, history, "not_joined").await;
    refused(
        &mut outsider,
        json!({"type": "members", "room": "secret"}),
        "not_joined",
    )
    .await;
    let send = json!({"type": "send", "room": "secret", "text": "hi", "client_id": "c1"});
    refused(&mut outsider, send, "not_joined").await;
    // A guest connected by name alone is refused the same way.
    let mut passer_by = server.client("passer").await;
    refused(
        &mut passer_by,
        json!({"type": "join", "room": "secret"}),
        "forbidden",
    )
    .await;

    // Its details are hidden exactly like a room that does not exist.
    let (status, hidden) = as_(&server, &bob, Method::GET, "/api/rooms/secret").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, missing) = as_(&server, &bob, Method::GET, "/api/rooms/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(hidden, missing);

    // Lists: a member sees it marked private, nobody else sees it at all.
    let (_, theirs) = as_(&server, &bob, Method::GET, "/api/rooms").await;
    assert_eq!(names(&theirs), [("open".into(), "public".into())]);
    let (_, public) = call(&server, Method::GET, "/api/rooms", None, None).await;
    assert_eq!(names(&public), [("open".into(), "public".into())]);
    let (_, own) = as_(&server, &alice, Method::GET, "/api/rooms").await;
    assert!(names(&own).contains(&("secret".into(), "private".into())));
    outsider.send(json!({"type": "rooms"})).await;
    let snapshot = outsider.recv_until("rooms").await;
    assert!(!snapshot.to_string().contains("secret"), "{snapshot}");
    // Lobby updates are shared: someone arriving in the private room must not show in them.
    let mut member = server.client_with_cookie(&alice.cookie).await;
    member.join("secret").await;
    member.say("secret", "still hush").await;
    let mut watching = server.client("watcher").await;
    watching.send(json!({"type": "rooms"})).await;
    watching.recv_until("rooms").await;
    let carol = register(&server, "carol").await;
    let path = "/api/rooms/secret/members/carol";
    assert_eq!(
        as_(&server, &alice, Method::PUT, path).await.0,
        StatusCode::OK
    );
    let mut arriving = server.client_with_cookie(&carol.cookie).await;
    arriving.join("secret").await;
    arriving.join("open").await;
    // Both counts changed; the update for `open` arrives, none ever names the private room.
    loop {
        let update = watching.recv_until("rooms").await;
        assert!(!update.to_string().contains("secret"), "{update}");
        if update.to_string().contains("open") {
            break;
        }
    }
    hears_no_message(&mut outsider, Duration::from_millis(300)).await;

    // A member may read it all.
    let (status, _) = as_(
        &server,
        &alice,
        Method::PUT,
        "/api/rooms/secret/members/bob",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let joined = outsider.join("secret").await;
    let texts: Vec<&str> = joined["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["hush", "still hush"]);
}

#[tokio::test]
async fn a_kicked_member_is_removed_from_every_connection_and_hears_nothing_more() {
    let server = TestServer::unlimited().await;
    let alice = register(&server, "alice").await;
    let bob = register(&server, "bob").await;
    let carol = register(&server, "carol").await;
    create(&server, &alice, "team", "private").await;
    for who in ["bob", "carol"] {
        let path = format!("/api/rooms/team/members/{who}");
        assert_eq!(
            as_(&server, &alice, Method::PUT, &path).await.0,
            StatusCode::OK
        );
    }
    let mut watcher = server.client_with_cookie(&carol.cookie).await;
    watcher.join("team").await;
    let mut tab1 = server.client_with_cookie(&bob.cookie).await;
    let mut tab2 = server.client_with_cookie(&bob.cookie).await;
    tab1.join("team").await;
    tab2.join("team").await;
    let mut owner = server.client_with_cookie(&alice.cookie).await;
    owner.join("team").await;

    let (status, _) = as_(
        &server,
        &alice,
        Method::DELETE,
        "/api/rooms/team/members/bob",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for tab in [&mut tab1, &mut tab2] {
        let removed = tab.recv_until("removed").await;
        assert_eq!(
            removed,
            json!({"type": "removed", "room": "team", "reason": "kicked"})
        );
    }
    loop {
        let presence = watcher.recv_until("presence").await;
        if presence["left"].to_string().contains(bob.id()) {
            break;
        }
    }
    owner.say("team", "after the kick").await;
    for tab in [&mut tab1, &mut tab2] {
        hears_no_message(tab, Duration::from_millis(300)).await;
        let send = json!({"type": "send", "room": "team", "text": "x", "client_id": "c9"});
        refused(tab, send, "not_joined").await;
        // Out of a private room means out: no way back in.
        refused(
            tab,
            json!({"type": "join", "room": "team", "since": 0}),
            "forbidden",
        )
        .await;
    }
    let (status, _) = as_(&server, &bob, Method::GET, "/api/rooms/team").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_banned_user_cannot_rejoin_a_public_room_until_the_ban_is_lifted() {
    let server = TestServer::unlimited().await;
    let alice = register(&server, "alice").await;
    let troll = guest(&server, "troll").await;
    create(&server, &alice, "lounge", "public").await;
    let mut pest = server.client_with_cookie(&troll.cookie).await;
    pest.join("lounge").await;

    // Guests have no username: their id names them.
    let path = format!("/api/rooms/lounge/bans/{}", troll.id());
    assert_eq!(
        as_(&server, &alice, Method::PUT, &path).await.0,
        StatusCode::NO_CONTENT
    );
    let removed = pest.recv_until("removed").await;
    assert_eq!(removed["reason"], "banned");
    refused(
        &mut pest,
        json!({"type": "join", "room": "lounge"}),
        "forbidden",
    )
    .await;
    let mut again = server.client_with_cookie(&troll.cookie).await;
    refused(
        &mut again,
        json!({"type": "join", "room": "lounge", "since": 3}),
        "forbidden",
    )
    .await;

    assert_eq!(
        as_(&server, &alice, Method::DELETE, &path).await.0,
        StatusCode::NO_CONTENT
    );
    again.join("lounge").await;
}

#[tokio::test]
async fn roles_decide_who_may_moderate() {
    let server = TestServer::unlimited().await;
    let alice = register(&server, "alice").await;
    let bob = register(&server, "bob").await;
    let carol = register(&server, "carol").await;
    let dave = register(&server, "dave").await;
    create(&server, &alice, "club", "public").await;
    assert_eq!(
        as_(&server, &alice, Method::PUT, "/api/rooms/club/members/bob")
            .await
            .0,
        StatusCode::OK
    );
    let (status, _) = call(
        &server,
        Method::PUT,
        "/api/rooms/club/roles/carol",
        Some(&alice.cookie),
        Some(json!({"role": "moderator"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let forbidden = |(status, body): (StatusCode, Value)| {
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"]["code"], "forbidden");
    };
    // A member moderates nothing.
    forbidden(as_(&server, &bob, Method::PUT, "/api/rooms/club/members/dave").await);
    forbidden(as_(&server, &bob, Method::PUT, "/api/rooms/club/bans/dave").await);
    // A moderator removes members, never the owner or another moderator, nor sets roles.
    forbidden(as_(&server, &carol, Method::PUT, "/api/rooms/club/bans/alice").await);
    forbidden(
        call(
            &server,
            Method::PUT,
            "/api/rooms/club/roles/bob",
            Some(&carol.cookie),
            Some(json!({"role": "moderator"})),
        )
        .await,
    );
    let (status, _) = as_(&server, &carol, Method::PUT, "/api/rooms/club/bans/carol").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "nobody bans themselves");
    let (status, _) = as_(
        &server,
        &carol,
        Method::DELETE,
        "/api/rooms/club/members/bob",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = as_(&server, &carol, Method::PUT, "/api/rooms/club/members/dave").await;
    assert_eq!(status, StatusCode::OK);
    let (status, room) = call(
        &server,
        Method::PATCH,
        "/api/rooms/club",
        Some(&carol.cookie),
        Some(json!({"topic": "chess on Tuesdays"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(room["room"]["topic"], "chess on Tuesdays");
    // The owner may remove a moderator; the owner cannot be removed.
    forbidden(
        as_(
            &server,
            &dave,
            Method::DELETE,
            "/api/rooms/club/members/alice",
        )
        .await,
    );
    let (status, _) = as_(
        &server,
        &alice,
        Method::DELETE,
        "/api/rooms/club/members/alice",
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the owner hands over before leaving"
    );

    // Without a session: 401.
    let (status, _) = call(
        &server,
        Method::PUT,
        "/api/rooms/club/bans/dave",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (_, room) = as_(&server, &dave, Method::GET, "/api/rooms/club").await;
    let room = &room["room"];
    assert_eq!(room["visibility"], "public");
    assert_eq!(room["owner"]["username"], "alice");
    assert_eq!(room["role"], "member");
    assert_eq!(room["member_count"], 3);
    let roles: Vec<(&str, &str)> = room["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["username"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [
            ("alice", "owner"),
            ("carol", "moderator"),
            ("dave", "member")
        ]
    );
    let (_, room) = as_(&server, &bob, Method::GET, "/api/rooms/club").await;
    assert_eq!(
        room["room"]["role"],
        Value::Null,
        "no membership row: role null"
    );

    // Handing over: the old owner becomes a moderator.
    let (status, _) = call(
        &server,
        Method::PUT,
        "/api/rooms/club/roles/dave",
        Some(&alice.cookie),
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, room) = as_(&server, &alice, Method::GET, "/api/rooms/club").await;
    assert_eq!(room["room"]["role"], "moderator");
    assert_eq!(room["room"]["owner"]["username"], "dave");
}

#[tokio::test]
async fn an_administrator_moderates_a_room_made_by_joining_and_may_give_it_an_owner() {
    let server = TestServer::unlimited().await;
    let root = register(&server, "root").await;
    let erin = register(&server, "erin").await;
    let mut config = confab::Config::ephemeral(server.data_dir());
    config.database_url = None;
    let grant = confab::config::AdminAction::Grant {
        username: "root".into(),
    };
    confab::accounts::admin::run(&config, &grant)
        .await
        .expect("grant");
    let mut someone = server.client_with_cookie(&erin.cookie).await;
    someone.join("street").await;

    let role = Some(json!({"role": "owner"}));
    let (status, _) = call(
        &server,
        Method::PUT,
        "/api/rooms/street/roles/erin",
        Some(&erin.cookie),
        role.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "nobody owns a joined room");
    let path = "/api/rooms/street/roles/erin";
    let (status, _) = call(&server, Method::PUT, path, Some(&root.cookie), role.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (_, room) = as_(&server, &erin, Method::GET, "/api/rooms/street").await;
    assert_eq!(room["room"]["owner"]["username"], "erin");
    // Now it has an owner, administrators moderate but no longer set roles.
    let (status, _) = call(
        &server,
        Method::PUT,
        path,
        Some(&root.cookie),
        Some(json!({"role": "member"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_room_name_is_taken_however_the_room_came_to_exist() {
    let server = TestServer::unlimited().await;
    let alice = register(&server, "alice").await;
    let visitor = guest(&server, "visitor").await;
    create(&server, &alice, "made", "public").await;
    let mut present = server.client("someone").await;
    present.join("joined-only").await;
    let mut talker = server.client("talker").await;
    talker.join("talked-in").await;
    talker.say("talked-in", "hello").await;
    talker.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    for name in ["made", "joined-only", "talked-in"] {
        let (status, body) = call(
            &server,
            Method::POST,
            "/api/rooms",
            Some(&alice.cookie),
            Some(json!({"name": name, "visibility": "public"})),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{name}");
        assert_eq!(body["error"]["code"], "room_exists");
    }
    let (status, _) = call(
        &server,
        Method::POST,
        "/api/rooms",
        Some(&alice.cookie),
        Some(json!({"name": "dm-mine", "visibility": "private"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "dm- is reserved");
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/rooms",
        Some(&visitor.cookie),
        Some(json!({"name": "hideout", "visibility": "private"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "account_required");
    let created = create(&server, &visitor, "porch", "public").await;
    assert_eq!(created["room"]["owner"]["id"], visitor.id());
    assert_eq!(created["room"]["visibility"], "public");
    let (status, _) = call(
        &server,
        Method::POST,
        "/api/rooms",
        None,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_direct_message_room_is_one_room_for_two_people() {
    let server = TestServer::unlimited().await;
    let alice = register(&server, "alice").await;
    let bob = register(&server, "bob").await;
    let carol = register(&server, "carol").await;
    let visitor = guest(&server, "visitor").await;

    let (status, first) = as_(&server, &alice, Method::POST, "/api/dm/BOB").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["room"]["visibility"], "private");
    assert_eq!(first["room"]["with"]["username"], "bob");
    let (status, second) = as_(&server, &bob, Method::POST, "/api/dm/alice").await;
    assert_eq!(status, StatusCode::OK);
    let room = first["room"]["name"].as_str().unwrap();
    assert_eq!(second["room"]["name"], room, "the same room whoever asks");
    let (_, again) = as_(&server, &alice, Method::POST, "/api/dm/bob").await;
    assert_eq!(again["room"]["name"], room);
    // By user id too (what a room's member list shows), but only an account's.
    let (status, by_id) = as_(
        &server,
        &alice,
        Method::POST,
        &format!("/api/dm/{}", bob.id()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_id["room"]["name"], room);
    assert_eq!(
        as_(
            &server,
            &alice,
            Method::POST,
            &format!("/api/dm/{}", visitor.id())
        )
        .await
        .0,
        StatusCode::NOT_FOUND,
        "guests have no direct messages"
    );

    assert_eq!(
        as_(&server, &alice, Method::POST, "/api/dm/alice").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        as_(&server, &alice, Method::POST, "/api/dm/nobody").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = as_(&server, &visitor, Method::POST, "/api/dm/alice").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "account_required");

    let (_, list) = as_(&server, &alice, Method::GET, "/api/dm").await;
    assert_eq!(list["rooms"][0]["name"], room);
    assert_eq!(list["rooms"][0]["with"]["username"], "bob");
    let (_, list) = as_(&server, &carol, Method::GET, "/api/dm").await;
    assert_eq!(list["rooms"], json!([]));

    let mut a = server.client_with_cookie(&alice.cookie).await;
    a.join(room).await;
    a.say(room, "just us").await;
    let mut b = server.client_with_cookie(&bob.cookie).await;
    assert_eq!(b.join(room).await["messages"][0]["text"], "just us");
    let mut c = server.client_with_cookie(&carol.cookie).await;
    refused(&mut c, json!({"type": "join", "room": room}), "forbidden").await;
    assert_eq!(
        as_(&server, &carol, Method::GET, &format!("/api/rooms/{room}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // A DM name nobody was given cannot be made by joining it.
    refused(
        &mut c,
        json!({"type": "join", "room": "dm-made-up"}),
        "forbidden",
    )
    .await;
}
