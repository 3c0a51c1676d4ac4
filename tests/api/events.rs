//! Edits, reactions and replies against a real server: each is an event with the room's next
//! seq (refusals and no-ops take none), a plain join shows messages in their current state, and
//! a client that resumes with `since` from any point ends in the same state as one that stayed.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::{Client, TestServer};

/// Sends `frame` and returns the next frame of one of `kinds` (or an `error`).
async fn request(client: &mut Client, frame: Value, kinds: &[&str]) -> Value {
    client.send(frame).await;
    loop {
        let answer = client.recv().await;
        let kind = answer["type"].as_str().unwrap_or_default();
        if kind == "error" || kinds.contains(&kind) {
            return answer;
        }
    }
}

async fn edit(client: &mut Client, room: &str, seq: u64, text: &str) -> Value {
    let frame = json!({"type": "edit", "room": room, "seq": seq, "text": text});
    request(client, frame, &["edited"]).await
}

async fn react(client: &mut Client, kind: &str, room: &str, seq: u64, emoji: &str) -> Value {
    let frame = json!({"type": kind, "room": room, "seq": seq, "emoji": emoji});
    request(client, frame, &["reaction"]).await
}

/// What a client knows of a room: per message seq, its text (`None` once deleted), whether it
/// was edited, and its reaction counts by emoji.
type Model = BTreeMap<u64, (Option<String>, bool, BTreeMap<String, u64>)>;

fn message_state(message: &Value) -> (Option<String>, bool, BTreeMap<String, u64>) {
    let text = message["text"].as_str().map(str::to_owned);
    let deleted = message["deleted"] == true;
    assert!(
        !(deleted && text.is_some()),
        "a tombstone has no text: {message}"
    );
    let reactions = message["reactions"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|r| {
                    (
                        r["emoji"].as_str().unwrap().to_owned(),
                        r["count"].as_u64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (text, message["edited_at"].is_i64(), reactions)
}

/// Applies one item of a room's stream to `model`, as a client does.
fn apply(model: &mut Model, item: &Value) {
    let target = item["target"].as_u64();
    match item["type"].as_str().unwrap() {
        "message" => {
            model.insert(item["seq"].as_u64().unwrap(), message_state(item));
        }
        "deleted" => {
            let entry = model.get_mut(&target.unwrap()).expect("target known");
            *entry = (None, entry.1, BTreeMap::new());
        }
        "edited" => {
            let entry = model.get_mut(&target.unwrap()).expect("target known");
            entry.0 = Some(item["text"].as_str().unwrap().to_owned());
            entry.1 = true;
        }
        "reaction" => {
            let entry = model.get_mut(&target.unwrap()).expect("target known");
            let emoji = item["emoji"].as_str().unwrap().to_owned();
            let count = entry.2.entry(emoji.clone()).or_default();
            if item["added"] == true {
                *count += 1;
            } else {
                *count -= 1;
                if *count == 0 {
                    entry.2.remove(&emoji);
                }
            }
        }
        other => panic!("unexpected item {other}"),
    }
}

fn model_of(joined: &Value) -> Model {
    let mut model = Model::new();
    for item in joined["messages"].as_array().unwrap() {
        assert_eq!(item["type"], "message", "a plain join lists messages only");
        apply(&mut model, item);
    }
    model
}

#[tokio::test]
async fn edits_reactions_and_replies_are_events_and_refusals_take_no_seq() {
    let server = TestServer::unlimited().await;
    let mut ann = server.client("ann").await;
    let mut bob = server.client("bob").await;
    ann.join("ev").await;
    bob.join("ev").await;
    let first = ann.say("ev", "helo").await["seq"].as_u64().unwrap();

    // An edit by the author: the next seq, the new text, to everyone.
    let edited = edit(&mut ann, "ev", first, "hello").await;
    assert_eq!(edited["type"], "edited", "{edited}");
    assert_eq!(
        (edited["seq"].as_u64(), edited["target"].as_u64()),
        (Some(first + 1), Some(first))
    );
    assert_eq!(edited["text"], "hello");
    assert_eq!(bob.recv_until("edited").await["text"], "hello");
    // Someone else's message, an event, an unknown seq: refused, no seq taken.
    assert_eq!(
        edit(&mut bob, "ev", first, "hijack").await["code"],
        "forbidden"
    );
    assert_eq!(
        edit(&mut ann, "ev", first + 1, "x").await["code"],
        "not_found"
    );
    assert_eq!(edit(&mut ann, "ev", 999, "x").await["code"], "not_found");
    assert_eq!(
        edit(&mut ann, "ev", first, " ").await["code"],
        "invalid_text"
    );

    // Reactions: given, given again (nothing), taken back, taken back again (nothing).
    let given = react(&mut bob, "react", "ev", first, "👍").await;
    assert_eq!(
        (given["type"].as_str(), given["added"].as_bool()),
        (Some("reaction"), Some(true))
    );
    assert_eq!(
        (given["emoji"].as_str(), given["target"].as_u64()),
        (Some("👍"), Some(first))
    );
    assert_eq!(given["seq"], first + 2);
    assert_eq!(ann.recv_until("reaction").await["emoji"], "👍");
    bob.send(json!({"type": "react", "room": "ev", "seq": first, "emoji": "👍"}))
        .await;
    bob.send(json!({"type": "unreact", "room": "ev", "seq": first, "emoji": "🎉"}))
        .await;
    let fence = bob.say("ev", "fence").await;
    assert_eq!(fence["seq"], first + 3, "no-ops take no seq");
    let taken = react(&mut bob, "unreact", "ev", first, "👍").await;
    assert_eq!(
        (taken["added"].as_bool(), taken["seq"].as_u64()),
        (Some(false), Some(first + 4))
    );
    for bad in ["x", "👍👍", "", "🙂 ", "abc"] {
        let refused = react(&mut bob, "react", "ev", first, bad).await;
        assert_eq!(refused["code"], "invalid_emoji", "{bad:?}");
    }
    assert_eq!(
        react(&mut bob, "react", "ev", 999, "👍").await["code"],
        "not_found"
    );
    // Flags, keycaps and skin tones are one emoji each.
    for emoji in ["🇫🇷", "1️⃣", "👍🏽", "❤️"] {
        let given = react(&mut ann, "react", "ev", first, emoji).await;
        assert_eq!(given["type"], "reaction", "{emoji:?}: {given}");
    }

    // Replies name a message of the room; anything else is refused without a seq.
    ann.send(
        json!({"type": "send", "room": "ev", "text": "re", "client_id": "r-1", "reply_to": first}),
    )
    .await;
    let reply = ann.recv_until("message").await;
    assert_eq!(reply["reply_to"], first);
    ann.send(
        json!({"type": "send", "room": "ev", "text": "re", "client_id": "r-2", "reply_to": 999}),
    )
    .await;
    let refused = ann.recv_until("error").await;
    assert_eq!(
        (refused["code"].as_str(), refused["ref"].as_str()),
        (Some("not_found"), Some("r-2"))
    );

    // A plain join shows the current state: edited text, reactions, the reply.
    let mut carl = server.client("carl").await;
    let joined = carl.join("ev").await;
    let items = joined["messages"].as_array().unwrap();
    let original = items.iter().find(|m| m["seq"] == first).unwrap();
    assert_eq!(original["text"], "hello");
    assert!(original["edited_at"].as_i64().unwrap() > 0);
    let emoji: Vec<&str> = original["reactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["emoji"].as_str().unwrap())
        .collect();
    assert_eq!(emoji, ["🇫🇷", "1️⃣", "👍🏽", "❤️"], "in the order first given");
    assert_eq!(original["reactions"][0]["users"][0]["id"], ann.user["id"]);
    assert!(items.iter().any(|m| m["reply_to"] == first));
    assert!(items.iter().all(|m| m["type"] == "message"));
}

#[tokio::test]
async fn a_message_takes_at_most_twenty_distinct_emoji() {
    let server = TestServer::unlimited().await;
    let mut ann = server.client("ann").await;
    ann.join("many").await;
    let seq = ann.say("many", "react to me").await["seq"]
        .as_u64()
        .unwrap();
    let emoji: Vec<String> = (0..21)
        .map(|i| char::from_u32(0x1F600 + i).unwrap().to_string())
        .collect();
    for e in &emoji[..20] {
        assert_eq!(
            react(&mut ann, "react", "many", seq, e).await["type"],
            "reaction"
        );
    }
    assert_eq!(
        react(&mut ann, "react", "many", seq, &emoji[20]).await["code"],
        "too_many_reactions"
    );
    // Another user may still add one of the twenty.
    let mut bob = server.client("bob").await;
    bob.join("many").await;
    assert_eq!(
        react(&mut bob, "react", "many", seq, &emoji[3]).await["type"],
        "reaction"
    );
}

#[tokio::test]
async fn resuming_from_any_point_ends_in_the_state_of_a_client_that_stayed() {
    let mut server = TestServer::unlimited().await;
    let mut ann = server.client("ann").await;
    let mut bob = server.client("bob").await;
    ann.join("same").await;
    bob.join("same").await;
    // Ann does everything; Bob only listens (he stays). After every step a watcher's plain
    // join records what a client knew at that point.
    let mut snapshots: Vec<(u64, Model)> = Vec::new();
    let mut watcher = server.client("watcher").await;
    let a = ann.say("same", "one").await["seq"].as_u64().unwrap();
    let b = ann.say("same", "two").await["seq"].as_u64().unwrap();
    let steps: Vec<Value> = vec![
        json!({"type": "edit", "room": "same", "seq": a, "text": "one!"}),
        json!({"type": "react", "room": "same", "seq": a, "emoji": "🎉"}),
        json!({"type": "react", "room": "same", "seq": b, "emoji": "🎉"}),
        json!({"type": "unreact", "room": "same", "seq": a, "emoji": "🎉"}),
        json!({"type": "send", "room": "same", "text": "three", "client_id": "c3", "reply_to": b}),
        json!({"type": "delete", "room": "same", "seq": b}),
        json!({"type": "edit", "room": "same", "seq": a, "text": "one!!"}),
    ];
    for step in steps {
        let kinds = ["edited", "reaction", "message", "deleted"];
        let answer = request(&mut ann, step.clone(), &kinds).await;
        assert_ne!(answer["type"], "error", "{step} → {answer}");
        let joined = watcher.join("same").await;
        snapshots.push((joined["last_seq"].as_u64().unwrap(), model_of(&joined)));
        watcher.send(json!({"type": "leave", "room": "same"})).await;
        watcher.recv_until("left").await;
    }
    let last = snapshots.last().unwrap().0;
    let mut stayed = Model::new();
    loop {
        let frame = bob.recv().await;
        let kind = frame["type"].as_str().unwrap_or_default();
        if ["message", "edited", "reaction", "deleted"].contains(&kind) {
            apply(&mut stayed, &frame);
            if frame["seq"].as_u64() == Some(last) {
                break;
            }
        }
    }
    let final_state = model_of(&watcher.join("same").await);
    assert_eq!(
        stayed, final_state,
        "live frames end in the state a plain join shows"
    );
    for (since, known) in &snapshots {
        let mut resumer = server.client("resumer").await;
        let resumed = resumer.join_since("same", *since).await;
        let mut model = known.clone();
        for item in resumed["messages"].as_array().unwrap() {
            apply(&mut model, item);
        }
        assert_eq!(model, final_state, "resumed from {since}");
        assert_eq!(resumed["last_seq"], last);
    }
    // And again from the store alone, after a restart.
    server.restart().await;
    let mut after = server.client("after").await;
    assert_eq!(
        model_of(&after.join("same").await),
        final_state,
        "after a restart"
    );
    for (since, known) in &snapshots {
        let mut resumer = server.client("resumer").await;
        let mut model = known.clone();
        for item in resumer.join_since("same", *since).await["messages"]
            .as_array()
            .unwrap()
        {
            apply(&mut model, item);
        }
        assert_eq!(model, final_state, "resumed from {since} after a restart");
    }
}

#[tokio::test]
async fn typing_reaches_the_others_at_most_every_two_seconds_and_never_the_typists_own_tabs() {
    let server = TestServer::start().await;
    let (cookie, _) = crate::support::sign_in(&server.base_url(), "ann").await;
    let mut ann = server.client_with_cookie(&cookie).await;
    let mut ann_tab = server.client_with_cookie(&cookie).await;
    let mut bob = server.client("bob").await;
    for client in [&mut ann, &mut ann_tab, &mut bob] {
        client.join("t").await;
    }
    ann.send(json!({"type": "typing", "room": "t"})).await;
    let typing = bob.recv_until("typing").await;
    assert_eq!(
        (typing["room"].as_str(), &typing["user"]["id"]),
        (Some("t"), &ann.user["id"])
    );
    assert!(typing.get("seq").is_none(), "typing has no seq");
    // Again at once: dropped. The message after it is the next thing Bob hears, and Ann's own
    // other tab never heard either.
    ann.send(json!({"type": "typing", "room": "t"})).await;
    let said = ann.say("t", "done typing").await;
    let next = bob.recv().await;
    assert_eq!(
        (next["type"].as_str(), &next["seq"]),
        (Some("message"), &said["seq"])
    );
    let next = ann_tab.recv().await;
    assert_eq!(
        next["type"], "message",
        "the typist's own tabs hear no typing: {next}"
    );
    // Outside the room: not_joined.
    let mut carl = server.client("carl").await;
    carl.send(json!({"type": "typing", "room": "t", "ref": 1}))
        .await;
    assert_eq!(carl.recv_until("error").await["code"], "not_joined");
}

#[tokio::test]
async fn search_finds_a_rooms_messages_for_its_members_only() {
    let server = TestServer::unlimited().await;
    let base = server.base_url();
    let (owner_cookie, _) = crate::support::register(&base, "owner").await;
    let (status, body) = crate::support::http(
        &base,
        reqwest::Method::POST,
        "/api/rooms",
        Some(&owner_cookie),
        Some(json!({"name": "secret", "visibility": "private"})),
    )
    .await;
    assert!(status.is_success(), "{status} {body}");
    let mut owner = server.client_with_cookie(&owner_cookie).await;
    owner.join("secret").await;
    owner.say("secret", "the launch code is swordfish").await;
    owner.say("secret", "lunch at noon").await;
    let first = owner.say("secret", "Swordfish again, SWORDFISH").await;

    owner
        .send(json!({"type": "search", "room": "secret", "query": "swordfish", "ref": 7}))
        .await;
    let results = owner.recv_until("search_results").await;
    assert_eq!(
        (results["room"].as_str(), results["query"].as_str()),
        (Some("secret"), Some("swordfish"))
    );
    let seqs: Vec<u64> = results["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [first["seq"].as_u64().unwrap(), 1], "newest first");
    assert_eq!(results["has_more"], false);
    owner
        .send(json!({"type": "search", "room": "secret", "query": "swordfish", "limit": 1}))
        .await;
    let page = owner.recv_until("search_results").await;
    assert_eq!(
        (
            page["messages"].as_array().unwrap().len(),
            page["has_more"].as_bool()
        ),
        (1, Some(true))
    );
    owner
        .send(json!({"type": "search", "room": "secret", "query": "x", "limit": 0, "ref": 8}))
        .await;
    assert_eq!(owner.recv_until("error").await["code"], "invalid_limit");
    owner
        .send(json!({"type": "search", "room": "secret", "query": "\" AND ( NEAR *"}))
        .await;
    assert_eq!(
        owner.recv_until("search_results").await["messages"],
        json!([]),
        "operators are text"
    );

    // Someone who is not a member can neither join nor search.
    let (outsider_cookie, _) = crate::support::register(&base, "outsider").await;
    let mut outsider = server.client_with_cookie(&outsider_cookie).await;
    outsider
        .send(json!({"type": "join", "room": "secret", "ref": 1}))
        .await;
    assert_eq!(outsider.recv_until("error").await["code"], "forbidden");
    outsider
        .send(json!({"type": "search", "room": "secret", "query": "swordfish", "ref": 2}))
        .await;
    let refused = outsider.recv_until("error").await;
    assert_eq!(
        (refused["code"].as_str(), refused["ref"].as_i64()),
        (Some("not_joined"), Some(2))
    );
}

/// The lobby entry of `room` in a `rooms` snapshot.
fn lobby_entry(rooms: &Value, room: &str) -> Value {
    rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == room)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn read_markers_move_forward_reach_every_tab_and_count_unread_and_mentions() {
    let server = TestServer::unlimited().await;
    let base = server.base_url();
    let (ann_cookie, _) = crate::support::register(&base, "ann").await;
    let (bob_cookie, _) = crate::support::register(&base, "bob").await;
    let mut bob = server.client_with_cookie(&bob_cookie).await;
    bob.join("rd").await;
    for text in ["one", "two", "three"] {
        bob.say("rd", text).await;
    }
    // A first join: nothing old is unread.
    let mut ann = server.client_with_cookie(&ann_cookie).await;
    let joined = ann.join("rd").await;
    assert_eq!(
        (joined["read_seq"].as_u64(), joined["last_seq"].as_u64()),
        (Some(3), Some(3))
    );
    ann.send(json!({"type": "leave", "room": "rd"})).await;
    ann.recv_until("left").await;
    bob.say("rd", "four").await;
    let five = bob.say("rd", "five, right @ANN?").await["seq"]
        .as_u64()
        .unwrap();
    ann.send(json!({"type": "rooms"})).await;
    let entry = lobby_entry(&ann.recv_until("rooms").await, "rd");
    assert_eq!(
        (entry["unread"].as_u64(), entry["mentions"].as_u64()),
        (Some(2), Some(1)),
        "{entry}"
    );
    let (_, api) = crate::support::http(
        &base,
        reqwest::Method::GET,
        "/api/rooms",
        Some(&ann_cookie),
        None,
    )
    .await;
    assert_eq!(lobby_entry(&api, "rd")["unread"], 2);

    // Reading moves the marker on every tab; back is never.
    let mut tab = server.client_with_cookie(&ann_cookie).await;
    let joined = ann.join("rd").await;
    assert_eq!(
        joined["read_seq"], 3,
        "the marker stayed where the first join put it"
    );
    tab.join("rd").await;
    ann.send(json!({"type": "read", "room": "rd", "seq": 4}))
        .await;
    assert_eq!(ann.recv_until("read_marker").await["seq"], 4);
    let heard = tab.recv_until("read_marker").await;
    assert_eq!(
        (heard["room"].as_str(), heard["seq"].as_u64()),
        (Some("rd"), Some(4))
    );
    ann.send(json!({"type": "read", "room": "rd", "seq": 2}))
        .await;
    assert_eq!(
        ann.recv_until("read_marker").await["seq"],
        4,
        "never backwards"
    );
    ann.send(json!({"type": "read", "room": "rd", "seq": 999}))
        .await;
    assert_eq!(
        ann.recv_until("read_marker").await["seq"],
        five,
        "never past the room's end"
    );
    ann.send(json!({"type": "rooms"})).await;
    let entry = lobby_entry(&ann.recv_until("rooms").await, "rd");
    assert_eq!(
        (entry["unread"].as_u64(), entry["mentions"].as_u64()),
        (Some(0), Some(0))
    );

    // A deleted message is not unread; the user's own message moves their marker.
    let six = bob.say("rd", "six").await["seq"].as_u64().unwrap();
    bob.send(json!({"type": "delete", "room": "rd", "seq": six}))
        .await;
    bob.recv_until("deleted").await;
    bob.say("rd", "eight").await;
    ann.send(json!({"type": "rooms"})).await;
    assert_eq!(
        lobby_entry(&ann.recv_until("rooms").await, "rd")["unread"],
        1
    );
    let mine = ann.say("rd", "all read now").await["seq"].as_u64().unwrap();
    ann.send(json!({"type": "rooms"})).await;
    assert_eq!(
        lobby_entry(&ann.recv_until("rooms").await, "rd")["unread"],
        0
    );
    let mut third = server.client_with_cookie(&ann_cookie).await;
    assert_eq!(third.join("rd").await["read_seq"], mine);

    // Outside the room: not_joined. Without a session: no read state, nothing unread.
    ann.send(json!({"type": "read", "room": "elsewhere", "seq": 1, "ref": 3}))
        .await;
    assert_eq!(ann.recv_until("error").await["code"], "not_joined");
    let mut visitor = server.client("visitor").await;
    let joined = visitor.join("rd").await;
    assert_eq!(joined["read_seq"], joined["last_seq"]);
    visitor.send(json!({"type": "rooms"})).await;
    assert!(
        lobby_entry(&visitor.recv_until("rooms").await, "rd")
            .get("unread")
            .is_none()
    );
}
