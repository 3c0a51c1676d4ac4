//! Display names: normalised, trimmed, and refused when they could pass for someone else
//! (bidi controls, zero-width or invisible characters, nothing visible).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Client, TestServer};

async fn post_name(server: &TestServer, name: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/session", server.base_url()))
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap()
}

fn percent_encode(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test]
async fn spoofing_names_are_refused_over_http_and_websocket() {
    let server = TestServer::start().await;
    // U+202E then "ecil" and a Cyrillic "а": shows as "alice".
    for spoof in [
        "\u{202E}ecil\u{430}",
        "\u{200B}",
        "\u{3164}",
        "ali\u{200D}ce",
        "\u{2800}",
        "bob\u{2066}",
    ] {
        let response = post_name(&server, spoof).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{spoof:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_name", "{spoof:?}");

        let url = format!("{}?name={}", server.ws_url(), percent_encode(spoof));
        let refused = tokio_tungstenite::connect_async(url).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{spoof:?}");
            }
            other => panic!("{spoof:?} should be refused: {:?}", other.map(|_| ())),
        }
    }
}

#[tokio::test]
async fn names_are_normalised_and_counted_after_normalisation() {
    let server = TestServer::start().await;
    // 32 × ("e" + combining acute) is 64 code points but 32 characters once composed.
    let decomposed = "e\u{301}".repeat(32);
    let response = post_name(&server, &format!("  {decomposed}  ")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["name"], "\u{e9}".repeat(32));
    // Everything visible stays allowed.
    for fine in [
        "Zoë",
        "\u{1F600}",
        "\u{0639}\u{0644}\u{064A}",
        "李雷",
        "o'brien",
    ] {
        assert_eq!(
            post_name(&server, fine).await.status(),
            StatusCode::OK,
            "{fine:?}"
        );
    }
    let client = Client::connect(&format!(
        "{}?name={}",
        server.ws_url(),
        percent_encode("Zoe\u{308}")
    ))
    .await;
    assert_eq!(client.user["name"], "Zo\u{eb}");
}
