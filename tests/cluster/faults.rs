//! Clusters under faults: a node killed, Redis restarted, PostgreSQL gone.

use std::time::Duration;

use serde_json::json;

use crate::nodes::until_members;
use crate::services::{Cluster, PrivateRedis, Proxy, SECRET, TestDatabase, node, prefix, urls};
use crate::support::services::with_host;
use crate::support::{Client, Event, TestServer, seqs, spawn_binary};

#[tokio::test]
async fn a_killed_nodes_users_leave_and_its_clients_resume_on_another_node() {
    let Some((admin, redis)) = urls() else { return };
    let cluster = Cluster::new(&admin, &redis).await;
    let survivor = cluster.node().await;
    let doomed_data = tempfile::tempdir().unwrap();
    let (mut doomed, host) = spawn_binary(&[
        "--database-url",
        &cluster.db.url,
        "--redis-url",
        &cluster.redis,
        "--redis-prefix",
        &cluster.prefix,
        "--secret",
        SECRET,
        "--data-dir",
        doomed_data.path().to_str().unwrap(),
        "--rate-limits",
        "off",
    ])
    .await;
    let mut ann = Client::connect(&format!("ws://{host}/ws?name=ann")).await;
    let joined = ann.join("r").await;
    let mut ben = survivor.client("ben").await;
    let joined_b = ben.join("r").await;
    until_members(&mut ben, &joined_b, &["ann", "ben"]).await;
    until_members(&mut ann, &joined, &["ann", "ben"]).await;

    // ann sends while the node dies under her.
    for n in 0..100 {
        ann.send(
            json!({"type":"send","room":"r","text":format!("a{n}"),"client_id":format!("a{n}")}),
        )
        .await;
    }
    let mut acknowledged = 0;
    while acknowledged < 20 {
        acknowledged = ann.recv_until("message").await["seq"].as_u64().unwrap();
    }
    doomed.start_kill().unwrap();
    doomed.wait().await.unwrap();
    while let Event::Frame(frame) = ann.next_event(Duration::from_millis(300)).await {
        if frame["type"] == "message" {
            acknowledged = frame["seq"].as_u64().unwrap();
        }
    }

    // ben sees ann leave within 15 s.
    let started = std::time::Instant::now();
    loop {
        match ben.next_event(Duration::from_secs(16)).await {
            Event::Frame(frame)
                if frame["type"] == "presence" && frame["left"][0]["name"] == "ann" =>
            {
                break;
            }
            Event::Frame(_) => continue,
            other => panic!("ann never left: {other:?}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );

    // ann reconnects to the survivor and resumes with nothing lost or repeated.
    // The survivor may find the hole the dead node left (stored, never published) and tell ben
    // to resync (4002); either way his message is stored once he hears back.
    ben.send(json!({"type":"send","room":"r","text":"after the crash","client_id":"b1"}))
        .await;
    loop {
        match ben.next_event(crate::support::PATIENCE).await {
            Event::Frame(frame) if frame["client_id"] == "b1" => break,
            Event::Frame(_) => {}
            Event::Closed(Some(4002)) => break,
            other => panic!("ben's message was not confirmed: {other:?}"),
        }
    }
    let mut ann = survivor.client("ann").await;
    let resumed = ann.join_since("r", acknowledged).await;
    let got = seqs(&resumed);
    let last = resumed["last_seq"].as_u64().unwrap();
    assert_eq!(got, (acknowledged + 1..=last).collect::<Vec<_>>());
    assert_eq!(
        resumed["messages"].as_array().unwrap().last().unwrap()["text"],
        "after the crash"
    );
    let mut reader = survivor.client("reader").await;
    let all = reader.join_since("r", 0).await;
    assert!(
        seqs(&all).len() as u64 >= acknowledged,
        "every acknowledged message is stored"
    );
    assert_eq!(seqs(&all), (1..=last).collect::<Vec<_>>());
}

#[tokio::test]
async fn nodes_ride_out_a_redis_restart_and_rebuild_presence() {
    let Some((admin, _)) = urls() else { return };
    let mut redis = PrivateRedis::start().await;
    let cluster = Cluster::new(&admin, &redis.url()).await;
    let a = cluster.node().await;
    let b = cluster.node().await;
    let mut ann = a.client("ann").await;
    let joined = ann.join("r").await;
    let mut ben = b.client("ben").await;
    let joined_b = ben.join("r").await;
    until_members(&mut ann, &joined, &["ann", "ben"]).await;
    until_members(&mut ben, &joined_b, &["ann", "ben"]).await;
    ann.say("r", "before").await;

    redis.restart().await; // empty again: presence and subscriptions are gone

    // A send during the gap is stored (ann gets her copy) or refused; it never vanishes.
    ann.send(json!({"type":"send","room":"r","text":"during","client_id":"during"}))
        .await;
    let answer = loop {
        let frame = ann.recv().await;
        if frame["type"] == "message" || frame["type"] == "error" {
            break frame;
        }
    };
    if answer["type"] == "error" {
        assert_eq!(answer["code"], "unavailable");
    }

    // Presence is rebuilt in Redis: a node that starts now knows only what Redis tells it,
    // and its newcomer sees ann (on a) and ben (on b) once the nodes have rebuilt.
    let c = cluster.node().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut cat = c.client("cat").await;
        let joined = cat.join("r").await;
        let names = crate::support::member_names(&joined);
        if names == ["ann", "ben", "cat"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "presence not rebuilt: {names:?}"
        );
        cat.close().await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // And messages cross nodes again, in order, after whatever the gap brought.
    let sent = ann.say("r", "after").await;
    let mut reader = b.client("reader").await;
    let all = reader.join_since("r", 0).await;
    assert_eq!(
        seqs(&all),
        (1..=sent["seq"].as_u64().unwrap()).collect::<Vec<_>>()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut reconnects = 0;
    loop {
        match ben.next_event(Duration::from_secs(10)).await {
            Event::Frame(frame) if frame["type"] == "message" && frame["text"] == "after" => break,
            Event::Frame(_) => {}
            // Cut for a resync: resume as a client would.
            Event::Closed(Some(4002)) | Event::Ended | Event::Error(_) if reconnects < 3 => {
                reconnects += 1;
                ben = b.client("ben").await;
                let resumed = ben.join_since("r", 1).await;
                if resumed["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["text"] == "after")
                {
                    break;
                }
            }
            other => panic!("ben never got the message after the restart: {other:?}"),
        }
        assert!(tokio::time::Instant::now() < deadline);
    }
    drop((a, b, c));
}

#[tokio::test]
async fn sends_get_unavailable_while_postgres_is_away_and_work_again_after() {
    let Some((admin, redis)) = urls() else { return };
    let db = TestDatabase::create_on(&admin).await;
    let proxy = Proxy::start(db.addr().await).await;
    let via_proxy = with_host(&db.url, &proxy.addr.to_string());
    let prefix = prefix();
    let server: TestServer = node(&via_proxy, &redis, &prefix).await;
    let mut ann = server.client("ann").await;
    ann.join("r").await;
    assert_eq!(ann.say("r", "one").await["seq"], 1);

    proxy.cut().await;
    ann.send(json!({"type":"send","room":"r","text":"two","client_id":"two"}))
        .await;
    let error = tokio::time::timeout(Duration::from_secs(15), ann.recv_until("error"))
        .await
        .expect("an error in time");
    assert_eq!(error["code"], "unavailable");
    assert_eq!(error["ref"], "two");
    ann.send(json!({"type":"ping"})).await;
    ann.recv_until("pong").await; // the connection stays up

    proxy.restore();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        ann.send(json!({"type":"send","room":"r","text":"two","client_id":"two"}))
            .await;
        let frame = loop {
            let frame = ann.recv().await;
            if frame["type"] == "message" || frame["type"] == "error" {
                break frame;
            }
        };
        if frame["type"] == "message" {
            assert_eq!(frame["seq"], 2, "nothing was half-stored during the outage");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "service did not resume: {frame}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
