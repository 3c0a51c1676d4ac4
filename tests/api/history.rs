//! Reading back: the page in `joined`, exact resume with `since`, and paging to the first message.

use serde_json::json;

use crate::support::{TestServer, seqs};

async fn fill(server: &TestServer, room: &str, count: u64) {
    let mut writer = server.client("writer").await;
    writer.join(room).await;
    for i in 1..=count {
        writer.send(json!({"type":"send","room":room,"text":format!("m{i}"),"client_id":format!("f{i}")})).await;
    }
    // Our own copy of the last one means all are stored and broadcast.
    loop {
        let frame = writer.recv_until("message").await;
        if frame["seq"] == count {
            break;
        }
    }
    writer.close().await;
}

#[tokio::test]
async fn joined_brings_the_newest_fifty_and_history_pages_down_to_the_first() {
    let server = TestServer::unlimited().await;
    fill(&server, "r", 120).await;
    let mut reader = server.client("reader").await;
    let joined = reader.join("r").await;
    assert_eq!(seqs(&joined), (71..=120).collect::<Vec<_>>());
    assert_eq!(joined["last_seq"], 120);
    assert_eq!(joined["has_more"], true);
    assert_eq!(joined["truncated"], false);

    reader
        .send(json!({"type":"history","room":"r","before":71,"limit":50}))
        .await;
    let page = reader.expect("history").await;
    assert_eq!(seqs(&page), (21..=70).collect::<Vec<_>>());
    assert_eq!(page["has_more"], true);

    reader
        .send(json!({"type":"history","room":"r","before":21,"limit":100}))
        .await;
    let page = reader.expect("history").await;
    assert_eq!(seqs(&page), (1..=20).collect::<Vec<_>>());
    assert_eq!(page["has_more"], false);
    assert_eq!(page["messages"][0]["text"], "m1");
}

#[tokio::test]
async fn resuming_with_since_brings_exactly_what_was_missed() {
    let server = TestServer::unlimited().await;
    let mut ann = server.client("ann").await;
    let mut ben = server.client("ben").await;
    ann.join("r").await;
    ben.join("r").await;
    for i in 1..=5 {
        ben.say("r", &format!("before {i}")).await;
    }
    let mut last = 0;
    while last < 5 {
        last = ann.recv_until("message").await["seq"].as_u64().unwrap();
    }
    ann.close().await; // the connection drops
    for i in 1..=5 {
        ben.say("r", &format!("during {i}")).await;
    }
    let mut ann = server.client("ann").await;
    let joined = ann.join_since("r", last).await;
    assert_eq!(seqs(&joined), (6..=10).collect::<Vec<_>>());
    assert_eq!(joined["messages"][0]["text"], "during 1");
    assert_eq!(joined["truncated"], false);
    assert_eq!(joined["last_seq"], 10);
    // And it is live again: the next message is 11, once.
    ben.say("r", "after").await;
    let next = ann.recv_until("message").await;
    assert_eq!(next["seq"], 11);
}

#[tokio::test]
async fn resuming_after_a_long_absence_brings_the_newest_page_and_says_it_was_cut() {
    let server = TestServer::unlimited().await;
    fill(&server, "r", 230).await;
    let mut ann = server.client("ann").await;
    let joined = ann.join_since("r", 10).await;
    assert_eq!(seqs(&joined), (31..=230).collect::<Vec<_>>());
    assert_eq!(joined["truncated"], true);
    assert_eq!(joined["has_more"], true);
}

#[tokio::test]
async fn resuming_when_nothing_was_missed_brings_nothing() {
    let server = TestServer::start().await;
    fill(&server, "r", 3).await;
    let mut ann = server.client("ann").await;
    let joined = ann.join_since("r", 3).await;
    assert_eq!(seqs(&joined), Vec::<u64>::new());
    assert_eq!(joined["last_seq"], 3);
    assert_eq!(joined["truncated"], false);
}

#[tokio::test]
async fn the_author_sees_client_ids_in_history_others_do_not() {
    let server = TestServer::start().await;
    let mut ann = server.client("ann").await;
    ann.join("r").await;
    let sent = ann.say("r", "mine").await;
    ann.send(json!({"type":"history","room":"r","before":0,"limit":10}))
        .await;
    let page = ann.expect("history").await;
    assert_eq!(page["messages"][0]["client_id"], sent["client_id"]);
    let mut ben = server.client("ben").await;
    let joined = ben.join("r").await;
    assert!(joined["messages"][0].get("client_id").is_none());
}

#[tokio::test]
async fn a_cursor_from_the_future_is_reset_to_the_rooms_last_seq_and_nothing_is_withheld() {
    let server = TestServer::start().await;
    let mut ann = server.client("ann").await;
    ann.join("r").await;
    for text in ["one", "two", "three"] {
        ann.say("r", text).await;
    }
    let mut ben = server.client("ben").await;
    let joined = ben.join_since("r", 5).await;
    assert_eq!(joined["last_seq"], 3, "the room's real last seq");
    assert_eq!(joined["reset"], true);
    assert!(seqs(&joined).is_empty());
    // Seqs 4 and 5 are delivered like any other, not swallowed as "already seen".
    ann.say("r", "four").await;
    ann.say("r", "five").await;
    assert_eq!(ben.recv_until("message").await["seq"], 4);
    assert_eq!(ben.recv_until("message").await["seq"], 5);
    // An ordinary resume says nothing of a reset.
    let mut cat = server.client("cat").await;
    let joined = cat.join_since("r", 3).await;
    assert!(joined.get("reset").is_none());
    assert_eq!(seqs(&joined), [4, 5]);
}
