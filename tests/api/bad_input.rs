//! Bad input: every kind gets a stable error code (or the documented close), the connection
//! and everyone else carry on, and nothing is half-stored.

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Client, TestServer};

async fn expect_error(client: &mut Client, frame: Message, code: &str) -> Value {
    client.send_raw(frame).await;
    let error = client.expect("error").await;
    assert_eq!(error["code"], code, "{error}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    error
}

fn text(value: Value) -> Message {
    Message::text(value.to_string())
}

#[tokio::test]
async fn every_bad_frame_gets_its_error_code_and_the_connection_carries_on() {
    let server = TestServer::start().await;
    let mut ann = server.client("ann").await;
    let mut ben = server.client("ben").await;
    ben.join("r").await;
    ann.join("r").await;
    ben.expect("presence").await;

    let cases: Vec<(Message, &str)> = vec![
        (Message::text("{nope"), "bad_json"),
        (Message::text("[]"), "bad_json"),
        (text(json!({"type":"dance"})), "unknown_type"),
        (text(json!({"room":"r"})), "unknown_type"),
        (text(json!({"type":"join"})), "bad_frame"),
        (
            text(json!({"type":"send","room":"r","text":5,"client_id":"a"})),
            "bad_frame",
        ),
        (
            text(json!({"type":"history","room":"r","before":"x","limit":5})),
            "bad_frame",
        ),
        (text(json!({"type":"join","room":""})), "invalid_room"),
        (
            text(json!({"type":"join","room":"a".repeat(65)})),
            "invalid_room",
        ),
        (
            text(json!({"type":"join","room":"has space"})),
            "invalid_room",
        ),
        (
            text(json!({"type":"join","room":"<script>"})),
            "invalid_room",
        ),
        (
            text(json!({"type":"send","room":"r","text":"","client_id":"a"})),
            "invalid_text",
        ),
        (
            text(json!({"type":"send","room":"r","text":"   \n ","client_id":"a"})),
            "invalid_text",
        ),
        (
            text(json!({"type":"send","room":"r","text":"x".repeat(4001),"client_id":"a"})),
            "invalid_text",
        ),
        (
            text(json!({"type":"send","room":"r","text":"hi","client_id":""})),
            "invalid_client_id",
        ),
        (
            text(json!({"type":"history","room":"r","before":1,"limit":0})),
            "invalid_limit",
        ),
        (
            text(json!({"type":"history","room":"r","before":1,"limit":101})),
            "invalid_limit",
        ),
        (
            text(json!({"type":"send","room":"elsewhere","text":"hi","client_id":"a"})),
            "not_joined",
        ),
        (
            text(json!({"type":"leave","room":"elsewhere"})),
            "not_joined",
        ),
        (
            text(json!({"type":"history","room":"elsewhere","before":0,"limit":5})),
            "not_joined",
        ),
        (text(json!({"type":"join","room":"r"})), "already_joined"),
    ];
    for (frame, code) in cases {
        expect_error(&mut ann, frame, code).await;
    }
    // Nothing was half-stored: the first real message is seq 1, and ben saw nothing before it.
    let first = ann.say("r", "x".repeat(4000).as_str()).await;
    assert_eq!(first["seq"], 1);
    let seen = ben.recv().await;
    assert_eq!(seen["type"], "message");
    assert_eq!(seen["seq"], 1);
}

#[tokio::test]
async fn errors_echo_the_ref_or_the_client_id() {
    let server = TestServer::start().await;
    let mut ann = server.client("ann").await;
    let error = expect_error(
        &mut ann,
        text(json!({"type":"leave","room":"r","ref":"q7"})),
        "not_joined",
    )
    .await;
    assert_eq!(error["ref"], "q7");
    let error = expect_error(
        &mut ann,
        text(json!({"type":"send","room":"r","text":"hi","client_id":"c-42"})),
        "not_joined",
    )
    .await;
    assert_eq!(error["ref"], "c-42");
    let error = expect_error(
        &mut ann,
        text(json!({"type":"nope","ref":9})),
        "unknown_type",
    )
    .await;
    assert_eq!(error["ref"], 9);
}

#[tokio::test]
async fn a_binary_frame_closes_with_1003_and_others_carry_on() {
    let server = TestServer::start().await;
    let mut ben = server.client("ben").await;
    ben.join("r").await;
    let mut ann = server.client("ann").await;
    ann.join("r").await;
    ben.expect("presence").await;
    ann.send_raw(Message::binary(vec![1, 2, 3])).await;
    assert_eq!(ann.expect_close().await, 1003);
    let change = ben.expect("presence").await;
    assert_eq!(change["left"][0]["name"], "ann");
    ben.say("r", "still fine").await;
}

#[tokio::test]
async fn a_frame_over_64_kib_closes_with_1009() {
    let server = TestServer::start().await;
    let mut ann = server.client("ann").await;
    let big = json!({"type":"send","room":"r","text":"x".repeat(70 * 1024),"client_id":"a"});
    ann.send(big).await;
    assert_eq!(ann.expect_close().await, 1009);

    let mut ben = server.client("ben").await;
    ben.send_raw(Message::text("y".repeat(2 * 1024 * 1024)))
        .await;
    assert_eq!(ben.expect_close().await, 1009);
}

#[tokio::test]
async fn upgrades_without_identity_or_with_a_bad_name_are_refused() {
    let server = TestServer::start().await;
    let refused = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");
    for bad in ["", "%20%20", "a%07b", &"n".repeat(33)] {
        let url = format!("{}?name={bad}", server.ws_url());
        let refused = tokio_tungstenite::connect_async(url).await.unwrap_err();
        assert!(refused.to_string().contains("400"), "{bad}: {refused}");
    }
}
