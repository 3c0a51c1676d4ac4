//! Sending: broadcast order, the sender's copy, room isolation, safe retry.

use serde_json::json;

use crate::support::{Event, TestServer};

#[tokio::test]
async fn every_member_receives_every_message_in_seq_order() {
    let server = TestServer::unlimited().await;
    let mut members = Vec::new();
    for name in ["ann", "ben", "cat"] {
        let mut client = server.client(name).await;
        client.join("general").await;
        members.push(client);
    }
    // Two senders interleave without waiting for each other.
    for i in 0..20 {
        for (sender, member) in members.iter_mut().take(2).enumerate() {
            let frame = json!({"type":"send","room":"general","text":format!("{sender}:{i}"),"client_id":format!("{sender}-{i}")});
            member.send(frame).await;
        }
    }
    let mut orders = Vec::new();
    for member in &mut members {
        let mut seen = Vec::new();
        while seen.len() < 40 {
            let frame = member.recv_until("message").await;
            seen.push((
                frame["seq"].as_u64().unwrap(),
                frame["text"].as_str().unwrap().to_owned(),
            ));
        }
        let seqs: Vec<u64> = seen.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, (1..=40).collect::<Vec<_>>(), "gapless, in order");
        orders.push(seen);
    }
    assert_eq!(orders[0], orders[1]);
    assert_eq!(orders[1], orders[2]);
}

#[tokio::test]
async fn messages_from_one_connection_are_stored_in_the_order_sent() {
    let server = TestServer::unlimited().await;
    let mut ann = server.client("ann").await;
    ann.join("r").await;
    for i in 0..100 {
        ann.send(
            json!({"type":"send","room":"r","text":format!("{i}"),"client_id":format!("c{i}")}),
        )
        .await;
    }
    for i in 0..100u64 {
        let frame = ann.recv_until("message").await;
        assert_eq!(frame["seq"], i + 1);
        assert_eq!(frame["text"], format!("{i}"));
    }
}

#[tokio::test]
async fn only_the_senders_copy_carries_the_client_id() {
    let server = TestServer::start().await;
    let mut ann = server.client("ann").await;
    let mut ben = server.client("ben").await;
    ann.join("r").await;
    ben.join("r").await;
    ann.recv_until("presence").await;
    let own = ann.say("r", "hello").await;
    assert_eq!(own["client_id"], own["client_id"].as_str().unwrap());
    assert_eq!(own["user"]["name"], "ann");
    assert_eq!(own["user"]["id"], ann.id());
    let theirs = ben.recv_until("message").await;
    assert!(theirs.get("client_id").is_none(), "{theirs}");
    assert_eq!(theirs["id"], own["id"]);
    assert_eq!(theirs["seq"], 1);
    assert!(theirs["ts"].as_i64().unwrap() > 1_700_000_000_000);
}

#[tokio::test]
async fn the_author_comes_from_the_session_not_the_frame() {
    let server = TestServer::start().await;
    let mut ann = server.client("ann").await;
    ann.join("r").await;
    ann.send(json!({"type":"send","room":"r","text":"hi","client_id":"x","user":{"id":"forged","name":"mallory"}})).await;
    let frame = ann.recv_until("message").await;
    assert_eq!(frame["user"]["id"], ann.id());
    assert_eq!(frame["user"]["name"], "ann");
}

#[tokio::test]
async fn rooms_do_not_hear_each_other() {
    let server = TestServer::start().await;
    let mut ann = server.client("ann").await;
    let mut ben = server.client("ben").await;
    ann.join("alpha").await;
    ben.join("beta").await;
    ann.say("alpha", "for alpha only").await;
    let beta = ben.say("beta", "for beta").await;
    // Had alpha's message leaked, it would have arrived before ben's own.
    assert_eq!(beta["text"], "for beta");
    assert_eq!(beta["seq"], 1, "each room counts its own seqs");
    assert!(matches!(
        ben.next_event(std::time::Duration::from_millis(200)).await,
        Event::Silence
    ));
}

#[tokio::test]
async fn a_repeated_client_id_is_stored_once_and_answered_with_the_original() {
    let server = TestServer::start().await;
    let mut ann = server.client("ann").await;
    let mut ben = server.client("ben").await;
    ann.join("r").await;
    ben.join("r").await;
    ann.recv_until("presence").await;
    ann.send(json!({"type":"send","room":"r","text":"once","client_id":"same"}))
        .await;
    let original = ann.recv_until("message").await;
    ann.send(json!({"type":"send","room":"r","text":"once (retry)","client_id":"same"}))
        .await;
    let retry = ann.recv_until("message").await;
    assert_eq!(retry, original, "the retry gets the original back");
    // A second connection of the same user (a reconnect) is deduplicated too... but a different
    // user with the same client_id is a different message.
    ben.send(json!({"type":"send","room":"r","text":"mine","client_id":"same"}))
        .await;
    let bens = ben.recv_until("message").await;
    let bens = if bens["seq"] == 1 {
        ben.recv_until("message").await
    } else {
        bens
    };
    assert_eq!(bens["seq"], 2);
    assert_eq!(bens["text"], "mine");
    let mut cid = server.client("cid").await;
    let joined = cid.join("r").await;
    let texts: Vec<&str> = joined["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["once", "mine"]);
}

#[tokio::test]
async fn joining_while_a_sender_hammers_the_room_loses_and_repeats_nothing() {
    let server = TestServer::unlimited().await;
    let mut sender = server.client("sender").await;
    sender.join("busy").await;
    const TOTAL: u64 = 400;
    let hammer = tokio::spawn(async move {
        for i in 0..TOTAL {
            sender.send(json!({"type":"send","room":"busy","text":format!("{i}"),"client_id":format!("h{i}")})).await;
            if i % 20 == 0 {
                tokio::task::yield_now().await;
            }
        }
        sender
    });
    let mut joiners = Vec::new();
    for i in 0..8 {
        let mut client = server.client(&format!("j{i}")).await;
        client
            .send(json!({"type":"join","room":"busy","since":0}))
            .await;
        joiners.push(client);
    }
    let _sender = hammer.await.unwrap();
    for joiner in &mut joiners {
        let joined = joiner.recv_until("joined").await;
        let mut seqs = crate::support::seqs(&joined);
        assert!(!joined["truncated"].as_bool().unwrap() || seqs.first() > Some(&1));
        let first = seqs
            .first()
            .copied()
            .unwrap_or(joined["last_seq"].as_u64().unwrap() + 1);
        while seqs.last().copied().unwrap_or(first - 1) < TOTAL {
            let frame = joiner.recv_until("message").await;
            seqs.push(frame["seq"].as_u64().unwrap());
        }
        assert_eq!(
            seqs,
            (first..=TOTAL).collect::<Vec<_>>(),
            "contiguous from the first one shown"
        );
    }
}
