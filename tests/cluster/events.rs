//! A room's events across nodes: edits, reactions and deletions made on one node reach members
//! on another in seq order, a resume there replays them, typing crosses nodes, and a read marker
//! moved on one node reaches the user's tabs on the other.

use serde_json::json;

use crate::services::{Cluster, urls};
use crate::support::register;

#[tokio::test]
async fn events_typing_and_read_markers_cross_nodes() {
    let Some((admin, redis)) = urls() else { return };
    let cluster = Cluster::new(&admin, &redis).await;
    let (a, b) = (cluster.node().await, cluster.node().await);
    let (ann_cookie, _) = register(&a.base_url(), "ann").await;
    let (bob_cookie, _) = register(&a.base_url(), "bob").await;
    let mut ann = a.client_with_cookie(&ann_cookie).await;
    let mut ann_on_b = b.client_with_cookie(&ann_cookie).await;
    let mut bob = b.client_with_cookie(&bob_cookie).await;
    for client in [&mut ann, &mut ann_on_b, &mut bob] {
        client.join("x").await;
    }

    let seq = ann.say("x", "helo").await["seq"].as_u64().unwrap();
    assert_eq!(bob.recv_until("message").await["seq"], seq);
    ann.send(json!({"type": "edit", "room": "x", "seq": seq, "text": "hello"}))
        .await;
    ann.send(json!({"type": "react", "room": "x", "seq": seq, "emoji": "👍"}))
        .await;
    let edited = bob.recv_until("edited").await;
    assert_eq!(
        (edited["seq"].as_u64(), edited["text"].as_str()),
        (Some(seq + 1), Some("hello"))
    );
    let reaction = bob.recv_until("reaction").await;
    assert_eq!(
        (reaction["seq"].as_u64(), reaction["added"].as_bool()),
        (Some(seq + 2), Some(true))
    );

    // Typing on node A reaches Bob on node B, and not Ann's own tab there.
    ann.send(json!({"type": "typing", "room": "x"})).await;
    let typing = bob.recv_until("typing").await;
    assert_eq!(typing["user"]["id"], ann.user["id"]);
    assert!(
        !saw_typing(&mut ann_on_b).await,
        "the typist's own tab on another node hears no typing"
    );

    // A read marker moved on node B reaches Ann's tab on node A.
    ann_on_b
        .send(json!({"type": "read", "room": "x", "seq": seq + 2}))
        .await;
    assert_eq!(ann_on_b.recv_until("read_marker").await["seq"], seq + 2);
    let heard = ann.recv_until("read_marker").await;
    assert_eq!(
        (heard["room"].as_str(), heard["seq"].as_u64()),
        (Some("x"), Some(seq + 2))
    );

    // Deleted on node B; a resume on node A replays everything in seq order.
    bob.send(json!({"type": "delete", "room": "x", "seq": seq}))
        .await;
    bob.recv_until("error").await; // Bob may not delete Ann's message
    ann_on_b
        .send(json!({"type": "delete", "room": "x", "seq": seq}))
        .await;
    assert_eq!(ann.recv_until("deleted").await["seq"], seq + 3);
    let mut late = a.client("late").await;
    let resumed = late.join_since("x", seq - 1).await;
    let kinds: Vec<&str> = resumed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["message", "edited", "reaction", "deleted"]);
    assert_eq!(resumed["messages"][0]["deleted"], true);
}

/// Whether a typing frame is among what the connection heard, up to a fence of its own.
async fn saw_typing(client: &mut crate::support::Client) -> bool {
    client.send(json!({"type": "ping"})).await;
    loop {
        let frame = client.recv().await;
        match frame["type"].as_str() {
            Some("typing") => return true,
            Some("pong") => return false,
            _ => {}
        }
    }
}
