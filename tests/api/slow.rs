//! Readers that keep reading are never cut, whatever the burst; a reader that stops is cut
//! only after the stall timeout and resumes without loss; a client that asks faster than it
//! reads cannot make the server hold its answers.

use std::collections::BTreeSet;
use std::time::Duration;

use confab::config::RateLimits;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Client, Event, PATIENCE, TestServer, rss_kib, seqs, spawn_unlimited_binary};

const BURST: u64 = 5000;

/// Sends `BURST` messages of 3,900 characters as fast as the socket takes them, while reading
/// its own copies in parallel (a flooding client that still reads). Retries what the server
/// refuses as overloaded. Returns when every message is stored.
async fn flood(sender: Client, room: &'static str) {
    let (mut sink, mut stream) = sender.into_socket().split();
    let text = "x".repeat(3900);
    let (retry_tx, mut retry_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let reader = tokio::spawn(async move {
        let mut stored = 0;
        while stored < BURST {
            let Some(Ok(Message::Text(frame))) = stream.next().await else {
                continue;
            };
            let frame: Value = serde_json::from_str(frame.as_str()).unwrap();
            match frame["type"].as_str() {
                Some("message") => stored += 1,
                Some("error") => {
                    assert!(
                        ["overloaded", "rate_limited"].contains(&frame["code"].as_str().unwrap()),
                        "{frame}"
                    );
                    let _ = retry_tx.send(frame["ref"].as_str().unwrap().to_owned());
                }
                _ => {}
            }
        }
    });
    let frame = |client_id: &str| {
        Message::text(
            json!({"type":"send","room":room,"text":text,"client_id":client_id}).to_string(),
        )
    };
    for i in 1..=BURST {
        sink.send(frame(&format!("f{i}"))).await.unwrap();
        while let Ok(client_id) = retry_rx.try_recv() {
            sink.send(frame(&client_id)).await.unwrap();
        }
    }
    let retries = async {
        while let Some(client_id) = retry_rx.recv().await {
            tokio::time::sleep(Duration::from_millis(20)).await; // retry_after_ms, roughly
            sink.send(frame(&client_id)).await.unwrap();
        }
    };
    tokio::select! {
        result = reader => result.unwrap(),
        () = retries => {}
    }
}

/// Reads messages until `BURST` have arrived; fails on a close. Tells `left` when a member
/// named so leaves the room.
async fn read_all(mut reader: Client, left: tokio::sync::oneshot::Sender<()>) -> Vec<u64> {
    let mut left = Some(left);
    let mut seqs = Vec::new();
    while (seqs.len() as u64) < BURST {
        match reader.next_event(Duration::from_secs(30)).await {
            Event::Frame(frame) if frame["type"] == "message" => {
                seqs.push(frame["seq"].as_u64().unwrap());
            }
            Event::Frame(frame) if frame["type"] == "presence" => {
                if frame["left"]
                    .as_array()
                    .is_some_and(|gone| !gone.is_empty())
                {
                    left.take().map(|left| left.send(()));
                }
            }
            Event::Frame(_) => {}
            other => panic!(
                "a reading member was cut after {} messages: {other:?}",
                seqs.len()
            ),
        }
    }
    seqs
}

#[tokio::test]
async fn a_burst_reaches_every_reading_member_in_order_and_cuts_only_the_stalled_one() {
    // Short enough to see the cut within the burst, long enough that a reading member starved
    // of CPU on a loaded test machine is not mistaken for a stalled one.
    let server = TestServer::start_with(|config| {
        config.stall_timeout = 5;
        config.rate_limits = RateLimits::Off; // one sender far beyond a human's pace
    })
    .await;
    let mut sender = server.client("sender").await;
    sender.join("r").await;
    let mut reader = server.client("reader").await;
    reader.join("r").await;
    let mut stalled = server.client("stalled").await;
    stalled.join("r").await;

    // ~20 MB: far more than any socket buffer holds for the stalled member.
    let (stalled_left, cut) = tokio::sync::oneshot::channel();
    let mut reading = tokio::spawn(read_all(reader, stalled_left));
    let flooding = tokio::spawn(flood(sender, "r"));
    // The stalled member starts reading again once the others see it leave (it was cut), or
    // once the burst is over.
    let got = tokio::select! {
        _ = cut => None,
        got = &mut reading => Some(got.unwrap()),
    };

    // The stalled member made no progress for the stall timeout: it gets what fit in its
    // socket, then 4001 (or, had it all fit, everything).
    let mut seen = BTreeSet::new();
    let close = loop {
        match stalled.next_event(PATIENCE).await {
            Event::Frame(frame) if frame["type"] == "message" => {
                seen.insert(frame["seq"].as_u64().unwrap());
            }
            Event::Frame(_) => {}
            Event::Closed(code) => break code,
            Event::Ended | Event::Error(_) => break None,
            Event::Silence if seen.len() as u64 == BURST => break Some(0),
            Event::Silence => panic!("the stalled member was never cut off"),
        }
    };
    if (seen.len() as u64) < BURST {
        assert_eq!(close, Some(4001), "cut off as too slow");
    }
    let last = seen.iter().copied().max().unwrap_or(0);
    assert_eq!(seen, (1..=last).collect(), "what it got has no hole");
    let got = match got {
        Some(got) => got,
        None => reading.await.unwrap(),
    };
    assert_eq!(
        got,
        (1..=BURST).collect::<Vec<_>>(),
        "all of them, in order, once"
    );
    flooding.await.unwrap();

    // It resumes from its last seq; history fills whatever the resume page cut.
    let mut again = server.client("stalled").await;
    let joined = again.join_since("r", last).await;
    let mut resumed: BTreeSet<u64> = seqs(&joined).into_iter().collect();
    let mut before = resumed.iter().next().copied().unwrap_or(BURST + 1);
    while before > last + 1 {
        again
            .send(json!({"type":"history","room":"r","before":before,"limit":100}))
            .await;
        let page = again.expect("history").await;
        let page: Vec<u64> = seqs(&page).into_iter().filter(|seq| *seq > last).collect();
        before = page.first().copied().unwrap_or(last + 1);
        resumed.extend(page);
    }
    assert_eq!(
        resumed,
        (last + 1..=BURST).collect(),
        "nothing missed, nothing twice"
    );
}

#[tokio::test]
async fn members_reading_slower_than_a_flood_get_everything_late_but_whole() {
    let server = TestServer::unlimited().await;
    let mut sender = server.client("sender").await;
    sender.join("r").await;
    let mut slow = server.client("slow").await;
    slow.join("r").await;
    let flooding = tokio::spawn(flood(sender, "r"));
    // Reads at its own pace, pausing now and then: it falls behind the room's log and is fed
    // from the store.
    let mut got = Vec::new();
    while (got.len() as u64) < BURST {
        match slow.next_event(Duration::from_secs(30)).await {
            Event::Frame(frame) if frame["type"] == "message" => {
                got.push(frame["seq"].as_u64().unwrap());
                if got.len() % 500 == 0 {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
            Event::Frame(_) => {}
            other => panic!("the slow reader was cut after {}: {other:?}", got.len()),
        }
    }
    flooding.await.unwrap();
    assert_eq!(got, (1..=BURST).collect::<Vec<_>>());
}

#[tokio::test]
async fn asking_for_history_faster_than_reading_does_not_grow_the_server() {
    let (_data, child, host) = spawn_unlimited_binary().await;
    let pid = child.id().expect("server pid");
    let url = format!("ws://{host}/ws");
    let mut writer = Client::connect(&format!("{url}?name=writer")).await;
    writer.join("r").await;
    let text = "y".repeat(4000);
    for i in 0..100 {
        writer
            .send(json!({"type":"send","room":"r","text":text,"client_id":format!("w{i}")}))
            .await;
    }
    let mut copies = 0;
    while copies < 100 {
        if writer.recv().await["type"] == "message" {
            copies += 1;
        }
    }

    let asker = Client::connect(&format!("{url}?name=asker")).await;
    let mut asker = asker;
    asker.join("r").await;
    let before = rss_kib(pid);
    // 500 pages of ~400 KB each (200 MB of answers), never read; a ping now and then.
    let mut socket = asker.into_socket();
    let request =
        Message::text(json!({"type":"history","room":"r","before":0,"limit":100}).to_string());
    let flood = async {
        for i in 0..500 {
            socket.feed(request.clone()).await.unwrap();
            if i % 50 == 0 {
                socket
                    .feed(Message::text(r#"{"type":"ping"}"#))
                    .await
                    .unwrap();
            }
        }
        socket.flush().await.unwrap();
    };
    tokio::time::timeout(PATIENCE, flood)
        .await
        .expect("requests this small fit in the socket buffers");
    // Watch the server while it would be answering (the old server grew by ~700 MiB here
    // within a second or two): its answers wait for the client to read, one page at a time.
    let mut most = before;
    let watch_until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < watch_until {
        most = most.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let growth = most.saturating_sub(before);
    assert!(
        growth < 8 * 1024,
        "server RSS grew by {growth} KiB ({before} -> {most} KiB)"
    );
    // The server still serves everyone else.
    writer.send(json!({"type":"ping"})).await;
    writer.recv_until("pong").await;
}
