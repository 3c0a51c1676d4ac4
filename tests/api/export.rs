//! `confab export --room NAME`: the real binary, beside a running server, writes the room's
//! messages as JSON lines in their current state.

use serde_json::{Value, json};

use crate::support::{Client, TestServer};

/// Sends `frame` and returns the next frame of `kind` made by this client's user (others' go
/// by), so the change is stored when this returns; panics on an `error`.
async fn request(client: &mut Client, frame: Value, kind: &str) -> Value {
    client.send(frame).await;
    let me = client.user["id"].clone();
    loop {
        let answer = client.recv().await;
        assert_ne!(answer["type"], "error", "{answer}");
        if answer["type"] == kind && answer["user"]["id"] == me {
            return answer;
        }
    }
}

/// Runs the real binary; returns its exit status, stdout and stderr.
async fn confab(args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .await
        .expect("run confab");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect()
}

#[tokio::test]
async fn export_writes_each_message_once_in_its_current_state_while_the_server_runs() {
    // Eleven sends, edits and reactions in a row: past the send limit's burst.
    let server = TestServer::unlimited().await;
    let mut ann = server.client("ann").await;
    let mut ben = server.client("ben").await;
    ann.join("ex").await;
    ben.join("ex").await;
    let first = ann.say("ex", "first draft").await["seq"].as_u64().unwrap();
    let second = ann.say("ex", "regrettable").await["seq"].as_u64().unwrap();
    let third = ben.say("ex", "nice").await["seq"].as_u64().unwrap();
    let reply = request(
        &mut ben,
        json!({"type": "send", "room": "ex", "text": "agreed", "client_id": "r-1", "reply_to": first}),
        "message",
    )
    .await["seq"]
        .as_u64()
        .unwrap();
    request(
        &mut ann,
        json!({"type": "edit", "room": "ex", "seq": first, "text": "final text"}),
        "edited",
    )
    .await;
    request(
        &mut ann,
        json!({"type": "delete", "room": "ex", "seq": second}),
        "deleted",
    )
    .await;
    for (by_ann, emoji) in [(true, "👍"), (false, "👍"), (true, "🎉")] {
        let who = if by_ann { &mut ann } else { &mut ben };
        request(
            who,
            json!({"type": "react", "room": "ex", "seq": third, "emoji": emoji}),
            "reaction",
        )
        .await;
    }
    // Another room's messages stay out of it.
    ann.join("other").await;
    ann.say("other", "elsewhere").await;
    let data = server.data_dir().to_str().unwrap().to_owned();

    let (ok, out, err) = confab(&["--data-dir", &data, "export", "--room", "ex"]).await;

    assert!(ok, "export failed: {err}");
    assert!(err.contains("exported 4 messages"), "{err}");
    let exported = lines(&out);
    let seqs: Vec<u64> = exported
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        [first, second, third, reply],
        "messages only, in seq order"
    );
    for message in &exported {
        assert_eq!(message["type"], "message");
        assert_eq!(message["room"], "ex");
        assert!(
            message["id"].is_string() && message["ts"].is_i64(),
            "{message}"
        );
        assert!(
            message.get("client_id").is_none(),
            "nobody's bookkeeping: {message}"
        );
    }
    let [edited, deleted, reacted, answer] = &exported[..] else {
        unreachable!()
    };
    assert_eq!(edited["text"], "final text");
    assert!(edited["edited_at"].is_i64());
    assert_eq!(edited["user"]["name"], "ann");
    assert!(edited["user"]["id"].is_string());
    assert_eq!(deleted["deleted"], true);
    assert!(deleted.get("text").is_none(), "a tombstone has no text");
    assert_eq!(reacted["text"], "nice");
    assert_eq!(reacted["user"]["name"], "ben");
    let reactions: Vec<(&str, u64)> = reacted["reactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["emoji"].as_str().unwrap(), r["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(reactions, [("👍", 2), ("🎉", 1)]);
    assert_eq!(answer["reply_to"], first);
    assert_eq!(answer["text"], "agreed");

    // The same through --out, and the server went on serving throughout.
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    let (ok, _, err) = confab(&[
        "--data-dir",
        &data,
        "export",
        "--room",
        "ex",
        "--out",
        &path,
    ])
    .await;
    assert!(ok, "export --out failed: {err}");
    assert_eq!(lines(&std::fs::read_to_string(&path).unwrap()), exported);
    assert_eq!(ann.say("ex", "still here").await["seq"], reply + 6);
}

#[tokio::test]
async fn export_of_an_unknown_room_is_empty_and_a_bad_name_or_folder_fails() {
    let server = TestServer::start().await;
    let data = server.data_dir().to_str().unwrap().to_owned();

    let (ok, out, _) = confab(&["--data-dir", &data, "export", "--room", "nobody-here"]).await;
    assert!(ok);
    assert_eq!(out, "");

    let (ok, _, err) = confab(&[
        "--data-dir",
        &data,
        "export",
        "--room",
        "no spaces allowed!",
    ])
    .await;
    assert!(!ok);
    assert!(err.contains("not a valid room name"), "{err}");

    let missing = tempfile::tempdir().unwrap();
    let missing = missing.path().join("nothing").to_str().unwrap().to_owned();
    let (ok, _, err) = confab(&["--data-dir", &missing, "export", "--room", "ex"]).await;
    assert!(!ok);
    assert!(err.contains("does not exist"), "{err}");
}
