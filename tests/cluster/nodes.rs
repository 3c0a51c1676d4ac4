//! Healthy clusters: one order, one member list, one session, whatever the node.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::services::{Cluster, urls};
use crate::support::{Client, PATIENCE, seqs};

/// Follows `joined` and `presence` frames until the member names equal `want`.
pub async fn until_members(client: &mut Client, joined: &Value, want: &[&str]) {
    let mut names: BTreeSet<String> = joined["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while names != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "members {names:?}, wanted {want:?}"
        );
        let frame = client.recv_until("presence").await;
        for user in frame["joined"].as_array().unwrap() {
            names.insert(user["name"].as_str().unwrap().to_owned());
        }
        for user in frame["left"].as_array().unwrap() {
            names.remove(user["name"].as_str().unwrap());
        }
    }
}

#[tokio::test]
async fn clients_on_three_nodes_see_one_order_and_one_member_list() {
    let Some((admin, redis)) = urls() else { return };
    let cluster = Cluster::new(&admin, &redis).await;
    let nodes = [
        cluster.node().await,
        cluster.node().await,
        cluster.node().await,
    ];
    let names = ["ann", "ben", "cat"];
    let mut clients = Vec::new();
    for (server, name) in nodes.iter().zip(names) {
        let mut client = server.client(name).await;
        let joined = client.join("r").await;
        clients.push((client, joined));
    }
    for (client, joined) in &mut clients {
        until_members(client, joined, &names).await;
    }
    // Everyone sends at once, each from their own node.
    for (i, (client, _)) in clients.iter_mut().enumerate() {
        for n in 0..10 {
            client.send(json!({"type":"send","room":"r","text":format!("{i}:{n}"),"client_id":format!("{i}-{n}")})).await;
        }
    }
    let mut orders = Vec::new();
    for (client, _) in &mut clients {
        let mut order = Vec::new();
        while order.len() < 30 {
            let frame = client.recv_until("message").await;
            order.push((
                frame["seq"].as_u64().unwrap(),
                frame["text"].as_str().unwrap().to_owned(),
            ));
        }
        let seqs: Vec<u64> = order.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, (1..=30).collect::<Vec<_>>());
        orders.push(order);
    }
    assert_eq!(orders[0], orders[1]);
    assert_eq!(orders[0], orders[2]);
}

#[tokio::test]
async fn concurrent_senders_on_two_nodes_get_gapless_seqs() {
    let Some((admin, redis)) = urls() else { return };
    let cluster = Cluster::new(&admin, &redis).await;
    let (a, b) = (cluster.node().await, cluster.node().await);
    let mut senders = Vec::new();
    for (i, server) in [&a, &b, &a, &b].into_iter().enumerate() {
        let mut client = server.client(&format!("s{i}")).await;
        client.join("busy").await;
        senders.push(tokio::spawn(async move {
            for n in 0..50 {
                client.send(json!({"type":"send","room":"busy","text":format!("{i}:{n}"),"client_id":format!("{n}")})).await;
            }
            // Our 50 own copies mean all 50 were stored.
            let mut own = 0;
            while own < 50 {
                let frame = client.recv_until("message").await;
                if frame.get("client_id").is_some() {
                    own += 1;
                }
            }
        }));
    }
    for sender in senders {
        tokio::time::timeout(PATIENCE * 6, sender)
            .await
            .expect("senders finish")
            .unwrap();
    }
    let mut reader = b.client("reader").await;
    let joined = reader.join_since("busy", 0).await;
    assert_eq!(seqs(&joined), (1..=200).collect::<Vec<_>>());
    let texts: BTreeSet<&str> = joined["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 200, "each message stored once");
}

#[tokio::test]
async fn a_session_cookie_from_one_node_is_valid_on_another_without_a_configured_secret() {
    let Some((admin, redis)) = urls() else { return };
    let cluster = Cluster::new(&admin, &redis).await;
    // Each node has its own data folder: only the database can give them one secret.
    let a = cluster.node_without_secret().await;
    let b = cluster.node_without_secret().await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/session", a.base_url()))
        .json(&json!({"name": "ann"}))
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let user: Value = response.json().await.unwrap();
    let seen: Value = reqwest::Client::new()
        .get(format!("{}/api/session", b.base_url()))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen, user);
}

/// Polls `/api/rooms` until `room` shows `online`.
async fn until_lobby_count(server: &crate::support::TestServer, room: &str, online: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rooms: Value = reqwest::get(format!("{}/api/rooms", server.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let count = crate::support::online(&rooms, room);
        if count == Some(online) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{room} shows {count:?}, wanted {online}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_lobby_counts_members_of_every_node_even_where_nobody_is_in_the_room() {
    let Some((admin, redis)) = urls() else { return };
    let cluster = Cluster::new(&admin, &redis).await;
    let (a, b) = (cluster.node().await, cluster.node().await);
    let mut ann = a.client("ann").await;
    let joined = ann.join("hall").await;
    let mut ben = b.client("ben").await;
    let joined_b = ben.join("hall").await;
    until_members(&mut ann, &joined, &["ann", "ben"]).await;
    until_members(&mut ben, &joined_b, &["ann", "ben"]).await;
    until_lobby_count(&a, "hall", 2).await;

    // A node where nobody is in the room: one started now reads the count from Redis...
    let c = cluster.node().await;
    until_lobby_count(&c, "hall", 2).await;
    // ...and its lobby watchers follow live changes.
    let mut watcher = c.client("watcher").await;
    watcher.send(json!({"type":"rooms"})).await;
    let snapshot = watcher.recv_until("rooms").await;
    assert_eq!(crate::support::online(&snapshot, "hall"), Some(2));
    ben.close().await;
    loop {
        let update = watcher.recv_until("rooms").await;
        if crate::support::online(&update, "hall") == Some(1) {
            break;
        }
    }
    until_lobby_count(&c, "hall", 1).await;
}
