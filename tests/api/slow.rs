//! A member that stops reading is cut off with 4001 instead of slowing the room or silently
//! missing messages, and it resumes with nothing lost.

use std::collections::BTreeSet;

use serde_json::json;

use crate::support::{Event, TestServer, seqs};

#[tokio::test]
async fn a_reader_that_cannot_keep_up_is_cut_off_and_resumes_without_loss() {
    let server = TestServer::unlimited().await;
    let mut sender = server.client("sender").await;
    sender.join("r").await;
    let mut slow = server.client("slow").await;
    slow.join("r").await;
    sender.expect("presence").await;

    // ~20 MB: more than the slow member's queue (1,024 frames) plus both kernel socket buffers.
    const TOTAL: u64 = 5000;
    let text = "x".repeat(3990);
    let mut slow_left = false;
    let mut sent = 0;
    while sent < TOTAL {
        for _ in 0..50 {
            sent += 1;
            sender
                .send(json!({"type":"send","room":"r","text":text,"client_id":format!("s{sent}")}))
                .await;
        }
        // The sender keeps reading, so it is never the slow one.
        let mut copies = 0;
        while copies < 50 {
            let frame = sender.recv().await;
            match frame["type"].as_str() {
                Some("message") => copies += 1,
                Some("presence") => slow_left |= frame["left"][0]["name"] == "slow",
                _ => {}
            }
        }
    }
    if !slow_left {
        let change = sender.recv_until("presence").await;
        assert_eq!(change["left"][0]["name"], "slow");
    }

    // The slow member reads what was delivered before the cut, then the connection ends.
    let mut got = BTreeSet::new();
    let mut close = None;
    loop {
        match slow.next_event(crate::support::PATIENCE).await {
            Event::Frame(frame) if frame["type"] == "message" => {
                got.insert(frame["seq"].as_u64().unwrap());
            }
            Event::Frame(_) => {}
            Event::Closed(code) => {
                close = code;
                break;
            }
            Event::Ended | Event::Error(_) => break,
            Event::Silence => panic!("the slow member was never cut off"),
        }
    }
    assert!((got.len() as u64) < TOTAL, "it was cut off before the end");
    if let Some(code) = close {
        assert_eq!(code, 4001);
    }
    let last = got.iter().copied().max().unwrap_or(0);
    assert_eq!(got, (1..=last).collect(), "what it got has no hole");

    // It resumes from its last seq; history fills whatever the resume page cut.
    let mut again = server.client("slow").await;
    let joined = again.join_since("r", last).await;
    let mut resumed: BTreeSet<u64> = seqs(&joined).into_iter().collect();
    let mut before = resumed.iter().next().copied().unwrap_or(TOTAL + 1);
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
        (last + 1..=TOTAL).collect(),
        "nothing missed, nothing twice"
    );
}
