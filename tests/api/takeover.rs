//! The lobby cannot be taken over: rooms made up by a few connections never push a room with a
//! real conversation out of the list.

use serde_json::{Value, json};

use crate::support::{TestServer, online};

fn names(rooms: &Value) -> Vec<&str> {
    rooms["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .map(|room| room["name"].as_str().expect("name"))
        .collect()
}

#[tokio::test]
async fn two_connections_in_a_hundred_made_up_rooms_do_not_push_out_a_conversation() {
    // Rate limits off: this is the attack as reported, and ranking alone must hold.
    let server = TestServer::unlimited().await;
    let mut ann = server.client("ann").await;
    let mut ben = server.client("ben").await;
    ann.join("general").await;
    ben.join("general").await;
    ann.say("general", "morning!").await;
    ben.say("general", "morning, ann").await;
    ben.close().await; // one real user stays online

    let mut attackers = [server.client("x").await, server.client("y").await];
    for attacker in &mut attackers {
        for i in 0..100 {
            attacker
                .send(json!({"type": "join", "room": format!("spam-{i:03}")}))
                .await;
        }
        for _ in 0..100 {
            attacker.recv_until("joined").await;
        }
    }

    let rooms: Value = reqwest::get(format!("{}/api/rooms", server.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(names(&rooms).len(), 100, "the list is full");
    assert_eq!(names(&rooms)[0], "general", "{:?}", &names(&rooms)[..3]);
    assert!(online(&rooms, "general").is_some_and(|n| n >= 1));

    let mut watcher = server.client("watcher").await;
    watcher.send(json!({"type": "rooms"})).await;
    let snapshot = watcher.expect("rooms").await;
    assert_eq!(names(&snapshot)[0], "general");
    // The made-up rooms are still listed after it: there was space for 99 of them.
    assert_eq!(online(&snapshot, "spam-000"), Some(2));
}
