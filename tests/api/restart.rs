//! Durability: history survives a graceful restart, and every message anyone saw survives
//! `kill -9` of the real binary.

use std::time::Duration;

use serde_json::json;

use crate::support::{Client, Event, TestServer, seqs, spawn_binary, spawn_unlimited_binary};

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

#[tokio::test]
async fn every_message_anyone_saw_survives_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let (mut child, host) = spawn_binary(&["--data-dir", dir, "--rate-limits", "off"]).await;
    let url = format!("ws://{host}/ws");
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

    let (_child, host) = spawn_binary(&["--data-dir", dir, "--rate-limits", "off"]).await;
    let url = format!("ws://{host}/ws");
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

#[tokio::test]
async fn a_graceful_stop_answers_every_send_then_closes_with_1012_and_keeps_what_was_stored() {
    let mut server = TestServer::unlimited().await;
    let mut ann = server.client("ann").await;
    ann.join("r").await;
    for i in 0..50 {
        ann.send(
            json!({"type":"send","room":"r","text":format!("m{i}"),"client_id":format!("g{i}")}),
        )
        .await;
    }
    let first = ann.recv_until("message").await;
    assert_eq!(first["seq"], 1);
    server.stop().await;
    // Every send in flight is answered (stored: its copy; refused: an error) before the close.
    let mut answered = 1;
    let code = loop {
        match ann.next_event(crate::support::PATIENCE).await {
            Event::Frame(frame) if frame["type"] == "message" || frame["type"] == "error" => {
                answered += 1;
            }
            Event::Frame(_) => {}
            Event::Closed(code) => break code,
            other => panic!("expected answers and a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, Some(1012), "service restart");
    assert_eq!(answered, 50, "no send left without an answer");
    server.restart().await;
    let mut reader = server.client("reader").await;
    let stored = seqs(&reader.join_since("r", 0).await);
    assert!(!stored.is_empty());
    assert_eq!(stored, (1..=stored.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn sigterm_closes_every_busy_connection_with_1012_after_answering_what_it_accepted() {
    let (_data, child, host) = spawn_unlimited_binary().await;
    let url = format!("ws://{host}/ws");
    let mut senders = Vec::new();
    for i in 0..16 {
        let mut client = Client::connect(&format!("{url}?name=s{i}")).await;
        client.join("busy").await;
        senders.push(client);
    }
    // Everyone has sends in flight when the signal lands.
    for (i, client) in senders.iter_mut().enumerate() {
        for n in 0..40 {
            client
                .send(json!({"type":"send","room":"busy","text":"busy","client_id":format!("{i}-{n}")}))
                .await;
        }
    }
    let pid = child.id().expect("pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    for (i, mut client) in senders.into_iter().enumerate() {
        let mut answered = Vec::new();
        let code = loop {
            match client.next_event(Duration::from_secs(15)).await {
                Event::Frame(frame) if frame["type"] == "message" => {
                    if let Some(id) = frame["client_id"].as_str() {
                        answered.push(id.to_owned());
                    }
                }
                Event::Frame(frame) if frame["type"] == "error" => {
                    answered.push(frame["ref"].as_str().unwrap_or_default().to_owned());
                }
                Event::Frame(_) => {}
                Event::Closed(code) => break code,
                other => panic!("sender {i} saw {other:?} instead of a close frame"),
            }
        };
        assert_eq!(code, Some(1012), "sender {i}");
        // The server reads a connection's frames in order and stops at the signal, so what it
        // accepted is a prefix of the sends, and each of those was answered exactly once
        // (a copy once stored, or an error) before the close.
        let mut numbers: Vec<usize> = answered
            .iter()
            .map(|id| {
                id.rsplit('-')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("own id")
            })
            .collect();
        numbers.sort_unstable();
        assert_eq!(
            numbers,
            (0..numbers.len()).collect::<Vec<_>>(),
            "sender {i}"
        );
    }
}

#[tokio::test]
async fn a_second_server_on_the_same_data_folder_refuses_to_start() {
    let server = TestServer::start().await;
    let config = confab::Config::ephemeral(server.data_dir());
    let second = confab::Server::build(config).await;
    let error = second.err().expect("the folder is taken").to_string();
    assert!(error.contains("in use"), "{error}");
    // The first one is unharmed.
    let mut ann = server.client("ann").await;
    ann.join("r").await;
    ann.say("r", "still here").await;
}
