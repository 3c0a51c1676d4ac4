//! The lobby: a snapshot of rooms with online counts, then live updates.

use serde_json::{Value, json};

use crate::support::{TestServer, online};

/// Reads lobby updates until `room` shows `count`.
async fn until_count(watcher: &mut crate::support::Client, room: &str, count: u64) {
    loop {
        let frame = watcher.recv_until("rooms").await;
        assert_eq!(frame["full"], false);
        if online(&frame, room) == Some(count) {
            return;
        }
    }
}

#[tokio::test]
async fn the_lobby_lists_rooms_and_follows_their_counts() {
    let server = TestServer::start().await;
    let mut ann = server.client("ann").await;
    ann.join("busy").await;
    let mut watcher = server.client("watcher").await;
    watcher.send(json!({"type":"rooms"})).await;
    let snapshot = watcher.expect("rooms").await;
    assert_eq!(snapshot["full"], true);
    assert_eq!(online(&snapshot, "busy"), Some(1));

    let mut ben = server.client("ben").await;
    ben.join("busy").await;
    until_count(&mut watcher, "busy", 2).await;
    ann.send(json!({"type":"leave","room":"busy"})).await;
    until_count(&mut watcher, "busy", 1).await;
    ben.close().await;
    until_count(&mut watcher, "busy", 0).await;

    let rooms: Value = reqwest::get(format!("{}/api/rooms", server.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        online(&rooms, "busy"),
        None,
        "an empty room with no messages is forgotten"
    );
}

#[tokio::test]
async fn rooms_with_history_stay_listed_when_empty() {
    let server = TestServer::start().await;
    let mut ann = server.client("ann").await;
    ann.join("kept").await;
    ann.say("kept", "hello").await;
    ann.close().await;
    let mut watcher = server.client("watcher").await;
    // The close may still be in flight; the snapshot shows 1 or 0, updates settle it to 0.
    watcher.send(json!({"type":"rooms"})).await;
    let snapshot = watcher.expect("rooms").await;
    if online(&snapshot, "kept") != Some(0) {
        assert_eq!(online(&snapshot, "kept"), Some(1));
        until_count(&mut watcher, "kept", 0).await;
    }
    let rooms: Value = reqwest::get(format!("{}/api/rooms", server.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(online(&rooms, "kept"), Some(0));
}
