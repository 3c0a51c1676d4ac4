//! Deleting messages against a real server: a deletion is an event with the room's next seq,
//! broadcast after commit, replayed by `since`; the message becomes a tombstone everywhere
//! (live, plain joins from the room's log and from the store, history); only the author or a
//! moderator may delete; refusals take no seq.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Client, TestServer, http, register};

/// Sends `delete` and returns the next frame that answers it (`deleted` or `error`).
async fn delete(client: &mut Client, room: &str, seq: u64, client_id: &str) -> Value {
    client
        .send(json!({"type": "delete", "room": room, "seq": seq, "client_id": client_id}))
        .await;
    loop {
        let frame = client.recv().await;
        if frame["type"] == "deleted" || frame["type"] == "error" {
            return frame;
        }
    }
}

async fn http_delete(
    server: &TestServer,
    cookie: &str,
    room: &str,
    seq: u64,
) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .delete(format!(
            "{}/api/rooms/{room}/messages/{seq}",
            server.base_url()
        ))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_author_deletes_and_everyone_ends_with_a_tombstone() {
    let server = TestServer::start().await;
    let mut ann = server.client("ann").await;
    let mut bob = server.client("bob").await;
    ann.join("d").await;
    bob.join("d").await;
    let first = ann.say("d", "keep me").await;
    let second = ann.say("d", "regret this").await;
    let target = second["seq"].as_u64().unwrap();
    bob.recv_until("message").await;
    bob.recv_until("message").await;

    let event = delete(&mut ann, "d", target, "del-1").await;
    assert_eq!(event["type"], "deleted", "{event}");
    assert_eq!(event["target"], target);
    assert_eq!(event["seq"], target + 1, "the deletion takes the next seq");
    assert_eq!(event["user"]["id"], ann.user["id"]);
    assert_eq!(
        event["client_id"], "del-1",
        "the author's copy carries its client_id"
    );
    assert!(event.get("text").is_none());
    let seen = bob.recv_until("deleted").await;
    assert_eq!(
        (seen["target"].as_u64(), seen["seq"].as_u64()),
        (Some(target), Some(target + 1))
    );
    assert!(seen.get("client_id").is_none());

    // A plain join (from the room's log) shows the room as it is now: a tombstone, no event.
    let mut carl = server.client("carl").await;
    let joined = carl.join("d").await;
    let items: Vec<&Value> = joined["messages"].as_array().unwrap().iter().collect();
    assert_eq!(items.len(), 2, "{joined}");
    assert_eq!(items[0]["text"], "keep me");
    assert_eq!(items[1]["seq"], target);
    assert_eq!(items[1]["deleted"], true);
    assert!(items[1].get("text").is_none(), "a tombstone has no text");
    assert_eq!(joined["last_seq"], target + 1, "last_seq counts the event");

    // History (from the store) shows the tombstone too.
    carl.send(json!({"type": "history", "room": "d", "before": 0, "limit": 10}))
        .await;
    let history = carl.recv_until("history").await;
    let items = history["messages"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["deleted"], true);
    assert!(items[1].get("text").is_none());

    // A resume from before the message replays the tombstone and the event, in seq order.
    let mut dora = server.client("dora").await;
    let since = first["seq"].as_u64().unwrap();
    let resumed = dora.join_since("d", since).await;
    let types: Vec<(&str, u64)> = resumed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["type"].as_str().unwrap(), m["seq"].as_u64().unwrap()))
        .collect();
    assert_eq!(types, [("message", target), ("deleted", target + 1)]);
    assert_eq!(resumed["last_seq"], target + 1);

    // After a restart (no log: everything from the store), the same.
    let mut server = server;
    server.restart().await;
    let mut erin = server.client("erin").await;
    let joined = erin.join("d").await;
    let items = joined["messages"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["deleted"], true);
    assert_eq!(joined["last_seq"], target + 1);
    let resumed = erin.join_since("e-none", 0).await;
    assert_eq!(resumed["last_seq"], 0);
}

#[tokio::test]
async fn others_may_not_delete_and_refusals_take_no_seq() {
    let server = TestServer::start().await;
    let mut ann = server.client("ann").await;
    let mut bob = server.client("bob").await;
    ann.join("r").await;
    bob.join("r").await;
    let message = ann.say("r", "mine").await;
    let seq = message["seq"].as_u64().unwrap();
    bob.recv_until("message").await;

    let refused = delete(&mut bob, "r", seq, "b-1").await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );
    assert_eq!(refused["ref"], "b-1", "the error names the request");
    for (target, why) in [(seq + 5, "unknown"), (0, "no seq 0")] {
        let refused = delete(&mut ann, "r", target, &format!("a-{target}")).await;
        assert_eq!(refused["code"], "not_found", "{why}");
    }
    let deleted = delete(&mut ann, "r", seq, "a-ok").await;
    assert_eq!(deleted["seq"], seq + 1);
    // Deleting again, or deleting the event itself, finds nothing to delete.
    assert_eq!(
        delete(&mut ann, "r", seq, "a-again").await["code"],
        "not_found"
    );
    assert_eq!(
        delete(&mut ann, "r", seq + 1, "a-event").await["code"],
        "not_found"
    );
    // A retry of the deletion (same client_id) gets the original event back, and no new seq.
    let retried = delete(&mut ann, "r", seq, "a-ok").await;
    assert_eq!(
        (retried["type"].as_str(), retried["seq"].as_u64()),
        (Some("deleted"), Some(seq + 1))
    );
    let next = ann.say("r", "after").await;
    assert_eq!(next["seq"], seq + 2, "no refusal or retry took a seq");
    // Not joined: not_joined, as for a send.
    let mut carl = server.client("carl").await;
    assert_eq!(
        delete(&mut carl, "r", seq, "c-1").await["code"],
        "not_joined"
    );
}

#[tokio::test]
async fn an_administrator_deletes_anyones_message_over_http() {
    let server = TestServer::start().await;
    let (admin_cookie, _) = register(&server.base_url(), "mod").await;
    let (troll_cookie, _) = register(&server.base_url(), "troll").await;
    let (ok, said) = server.admin(&["grant", "mod"]).await;
    assert!(ok, "{said}");
    let mut troll = server.client_with_cookie(&troll_cookie).await;
    let mut watcher = server.client("watcher").await;
    troll.join("h").await;
    watcher.join("h").await;
    let message = troll.say("h", "spam").await;
    let seq = message["seq"].as_u64().unwrap();
    watcher.recv_until("message").await;

    // The troll's own deletion of someone else's message would be refused; the admin's is not.
    let (status, body) = http_delete(&server, &troll_cookie, "h", seq + 100).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _) = http_delete(&server, &admin_cookie, "h", seq).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let seen = watcher.recv_until("deleted").await;
    assert_eq!(seen["target"], seq);
    assert_eq!(troll.recv_until("deleted").await["target"], seq);
    let (status, _) = http_delete(&server, &admin_cookie, "h", seq).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "already deleted");

    // A member who is not the author gets 403 over HTTP too.
    let watcher_message = watcher.say("h", "mine").await;
    let (status, body) = http_delete(
        &server,
        &troll_cookie,
        "h",
        watcher_message["seq"].as_u64().unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, _) = reqwest::Client::new()
        .delete(format!("{}/api/rooms/h/messages/1", server.base_url()))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_rooms_moderator_deletes_others_messages_and_a_member_may_not() {
    let server = TestServer::start().await;
    let base = server.base_url();
    let (owner_cookie, _) = register(&base, "owner").await;
    let (moderator_cookie, _) = register(&base, "moddy").await;
    let (member_cookie, _) = register(&base, "member").await;
    let (status, body) = http(
        &base,
        reqwest::Method::POST,
        "/api/rooms",
        Some(&owner_cookie),
        Some(json!({"name": "club", "visibility": "public"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = http(
        &base,
        reqwest::Method::PUT,
        "/api/rooms/club/roles/moddy",
        Some(&owner_cookie),
        Some(json!({"role": "moderator"})),
    )
    .await;
    assert!(status.is_success(), "{status} {body}");

    let mut owner = server.client_with_cookie(&owner_cookie).await;
    let mut moderator = server.client_with_cookie(&moderator_cookie).await;
    let mut member = server.client_with_cookie(&member_cookie).await;
    for client in [&mut owner, &mut moderator, &mut member] {
        client.join("club").await;
    }
    let by_owner = owner.say("club", "owner speaks").await["seq"]
        .as_u64()
        .unwrap();
    let by_member = member.say("club", "member speaks").await["seq"]
        .as_u64()
        .unwrap();

    // A plain member may not delete someone else's message.
    assert_eq!(
        delete(&mut member, "club", by_owner, "m-1").await["code"],
        "forbidden"
    );
    // The moderator may delete the member's message over the WebSocket.
    let deleted = delete(&mut moderator, "club", by_member, "x-1").await;
    assert_eq!(
        (deleted["type"].as_str(), deleted["target"].as_u64()),
        (Some("deleted"), Some(by_member))
    );
    assert_eq!(member.recv_until("deleted").await["target"], by_member);
    // The owner moderates too, over HTTP.
    let (status, _) = http_delete(&server, &owner_cookie, "club", by_owner).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}
