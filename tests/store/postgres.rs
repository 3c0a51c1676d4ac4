//! What only the shared PostgreSQL store has to survive: several nodes appending to one room,
//! connections killed under it, outages, and a database that is not there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab::store::Store;
use confab::store::postgres::PostgresStore;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::support::services::{Proxy, with_host};
use crate::{TestDatabase, message, room, seqs, stored};

#[tokio::test]
async fn two_nodes_appending_to_one_room_at_once_get_seqs_one_to_n() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    // Two stores with their own pools: two nodes of one cluster.
    let nodes = [Arc::new(db.store().await), Arc::new(db.store().await)];
    const TASKS: usize = 16;
    const BATCHES: usize = 25;

    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        let store = Arc::clone(&nodes[task % nodes.len()]);
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            for batch_no in 0..BATCHES {
                // 1-4 messages to the shared room, and some to two side rooms in either order,
                // so batches share several rooms and lock order matters.
                let mut batch = Vec::new();
                for i in 0..=(task + batch_no) % 4 {
                    let client_id = format!("t{task}-b{batch_no}-{i}");
                    batch.push(message("busy", &format!("u{task}"), &client_id, 1));
                }
                let side = if batch_no % 2 == 0 {
                    ["side-a", "side-b"]
                } else {
                    ["side-b", "side-a"]
                };
                if task % 3 == 0 {
                    for side_room in side {
                        let client_id = format!("t{task}-b{batch_no}");
                        batch.insert(0, message(side_room, &format!("u{task}"), &client_id, 1));
                    }
                }
                outcomes.extend(store.append(&batch).await.expect("append"));
            }
            outcomes
        });
    }
    let mut by_room: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    while let Some(outcomes) = tasks.join_next().await {
        for outcome in outcomes.unwrap() {
            let m = stored(&outcome);
            by_room.entry(m.room.to_string()).or_default().push(m.seq);
        }
    }

    for (name, mut handed_out) in by_room {
        handed_out.sort_unstable();
        let n = handed_out.len() as u64;
        assert_eq!(handed_out, (1..=n).collect::<Vec<_>>(), "room {name}");
        let page = nodes[0].latest(&room(&name), 10_000).await.unwrap();
        assert_eq!(
            seqs(&page.messages),
            (1..=n).collect::<Vec<_>>(),
            "room {name}"
        );
    }
    for node in nodes {
        node.close().await;
    }
}

#[tokio::test]
async fn the_store_carries_on_after_its_connections_are_killed() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = db.store().await;
    store.append(&[message("r", "ann", "1", 1)]).await.unwrap();
    store.latest(&room("r"), 10).await.unwrap();

    let killed = db.kill_connections().await;

    assert!(killed >= 1, "the store had a connection open");
    // The pool pings an idle connection before lending it: the very first call succeeds.
    let outcomes = store.append(&[message("r", "ann", "2", 2)]).await.unwrap();
    assert_eq!(stored(&outcomes[0]).seq, 2);
    assert_eq!(
        seqs(&store.latest(&room("r"), 10).await.unwrap().messages),
        [1, 2]
    );
    store.close().await;
}

#[tokio::test]
async fn an_outage_fails_calls_within_seconds_and_the_store_recovers_when_it_ends() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let proxy = Proxy::start(db.addr().await).await;
    let store = PostgresStore::connect(&with_host(&db.url, &proxy.addr.to_string()))
        .await
        .expect("store connects through the proxy");
    store.append(&[message("r", "ann", "1", 1)]).await.unwrap();

    proxy.cut().await;
    let started = Instant::now();
    let during = store.append(&[message("r", "ann", "2", 2)]).await;
    let waited = started.elapsed();
    assert!(during.is_err(), "no database, no append");
    assert!(waited < Duration::from_secs(6), "failed after {waited:?}");
    assert!(store.latest(&room("r"), 10).await.is_err());

    proxy.restore();
    let outcomes = store.append(&[message("r", "ann", "2", 3)]).await.unwrap();
    assert_eq!(
        stored(&outcomes[0]).seq,
        2,
        "the failed attempt burnt no seq"
    );
    store.close().await;
    proxy.cut().await;
}

#[tokio::test]
async fn connecting_to_a_database_that_is_not_there_fails_within_seconds() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    // A port that was just free: nothing listens there.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();

    let result = PostgresStore::connect(&with_host(&db.url, &format!("127.0.0.1:{port}"))).await;

    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(6));
}
