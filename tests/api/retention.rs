//! `--retention-days`: a server started on a data folder whose oldest messages are older than
//! the retention purges exactly those, in the background, and afterwards `since`, `history`
//! and seqs behave as docs/protocol.md says: a resume from before the horizon is `truncated`,
//! history stops at the oldest kept message, and seqs go on from where they were.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Client, PATIENCE, TestServer, seqs};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Items of `room` still in the data folder's database, read beside the server.
fn stored_seqs(data_dir: &Path, room: &str) -> Vec<u64> {
    let conn = rusqlite::Connection::open(data_dir.join("confab.db")).unwrap();
    let mut statement = conn
        .prepare("SELECT seq FROM messages WHERE room = ?1 ORDER BY seq")
        .unwrap();
    statement
        .query_map([room], |row| row.get::<_, i64>(0))
        .unwrap()
        .map(|seq| u64::try_from(seq.unwrap()).unwrap())
        .collect()
}

async fn history(client: &mut Client, room: &str, before: u64) -> Value {
    client
        .send(json!({"type": "history", "room": room, "before": before, "limit": 50}))
        .await;
    client.recv_until("history").await
}

#[tokio::test]
async fn a_server_with_retention_purges_exactly_the_old_messages_and_resumes_say_what_was_cut() {
    let mut first = TestServer::start().await;
    let mut ann = first.client("ann").await;
    ann.join("kept").await;
    for i in 1..=6 {
        ann.say("kept", &format!("m{i}")).await;
    }
    ann.join("young").await;
    ann.say("young", "only new here").await;
    ann.close().await;
    let (data_dir, port) = (first.data_dir().to_path_buf(), first.port());
    first.stop().await;
    // Seqs 1-4 of `kept` were written 40 days ago, as far as the database knows.
    let conn = rusqlite::Connection::open(data_dir.join("confab.db")).unwrap();
    let aged = conn
        .execute(
            "UPDATE messages SET ts = ts - ?1 WHERE room = 'kept' AND seq <= 4",
            [40 * DAY_MS],
        )
        .unwrap();
    assert_eq!(aged, 4);
    drop(conn);

    let server = TestServer::start_on_with(&data_dir, port, |config| {
        config.retention_days = Some(30);
    })
    .await;
    // The purge runs once at start, in the background: wait on the rows, not on a join (which
    // would remember what it read).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while stored_seqs(&data_dir, "kept") != [5, 6] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still stored: {:?}",
            stored_seqs(&data_dir, "kept")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        stored_seqs(&data_dir, "young"),
        [1],
        "newer rooms untouched"
    );

    let mut ben = server.client("ben").await;
    let resumed = ben.join_since("kept", 2).await;
    assert_eq!(seqs(&resumed), [5, 6]);
    assert_eq!(
        resumed["truncated"], true,
        "3 and 4 were left out: {resumed}"
    );
    assert_eq!(resumed["has_more"], false, "{resumed}");
    assert_eq!(resumed["last_seq"], 6);
    ben.send(json!({"type": "leave", "room": "kept"})).await;
    ben.recv_until("left").await;

    let exact = ben.join_since("kept", 5).await;
    assert_eq!(seqs(&exact), [6]);
    assert_eq!(exact["truncated"], false);
    ben.send(json!({"type": "leave", "room": "kept"})).await;
    ben.recv_until("left").await;

    let plain = ben.join("kept").await;
    assert_eq!(seqs(&plain), [5, 6]);
    assert_eq!(
        plain["has_more"], false,
        "the oldest kept message is here: {plain}"
    );
    let older = history(&mut ben, "kept", 5).await;
    assert_eq!(older["messages"], json!([]));
    assert_eq!(older["has_more"], false);

    let next = ben.say("kept", "after the purge").await;
    assert_eq!(next["seq"], 7, "seqs are never reused");
}
