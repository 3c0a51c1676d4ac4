//! Durability: history survives a graceful restart, and every message anyone saw survives
//! `kill -9` of the real binary.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{Client, TestServer, seqs};

#[tokio::test]
async fn a_restart_keeps_history_and_seqs_continue() {
    let mut server = TestServer::start().await;
    let mut ann = server.client("ann").await;
    ann.join("r").await;
    for i in 1..=3 {
        ann.say("r", &format!("m{i}")).await;
    }
    server.restart().await;
    let mut ann = server.client("ann").await;
    let joined = ann.join("r").await;
    assert_eq!(seqs(&joined), [1, 2, 3]);
    assert_eq!(ann.say("r", "m4").await["seq"], 4);
}

/// Starts the real binary on a free port and returns it with its WebSocket URL, read from
/// the line it logs when it is ready.
async fn spawn_binary(data_dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("CONFAB_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("confab binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(at) = line.find("serving on http://") {
                let rest = &line[at + "serving on http://".len()..];
                return rest.trim_end_matches('/').to_owned();
            }
        }
        panic!("confab exited before it was ready");
    })
    .await
    .expect("confab ready in time");
    // Keep draining its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("ws://{url}/ws"))
}

#[tokio::test]
async fn every_message_anyone_saw_survives_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_binary(data.path()).await;
    let mut ann = Client::connect(&format!("{url}?name=ann")).await;
    let mut ben = Client::connect(&format!("{url}?name=ben")).await;
    ann.join("r").await;
    ben.join("r").await;
    for i in 0..200 {
        ann.send(
            json!({"type":"send","room":"r","text":format!("m{i}"),"client_id":format!("k{i}")}),
        )
        .await;
    }
    // Kill as soon as ben has seen some of them, while the rest are still in flight.
    let mut seen = 0;
    while seen < 50 {
        seen = ben.recv_until("message").await["seq"].as_u64().unwrap();
    }
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    // Whatever ben saw after that point counts too.
    loop {
        match ben.next_event(Duration::from_millis(500)).await {
            crate::support::Event::Frame(frame) if frame["type"] == "message" => {
                seen = frame["seq"].as_u64().unwrap();
            }
            crate::support::Event::Frame(_) => {}
            _ => break,
        }
    }

    let (_child, url) = spawn_binary(data.path()).await;
    let mut reader = Client::connect(&format!("{url}?name=reader")).await;
    let joined = reader.join_since("r", 0).await;
    let stored = seqs(&joined);
    assert!(
        stored.len() as u64 >= seen,
        "saw {seen}, stored {}",
        stored.len()
    );
    assert_eq!(
        stored,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "gapless after a crash"
    );
}
