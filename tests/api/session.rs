//! Guest sessions over HTTP: the signed cookie, its flags, and that it names the WebSocket user.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{Client, TestServer};

async fn post_name(server: &TestServer, name: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/session", server.base_url()))
        .json(&json!({"name": name}));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

async fn get_session(server: &TestServer, cookie: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("{}/api/session", server.base_url()));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

fn cookie_of(response: &reqwest::Response) -> (String, String) {
    let header = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    (header.split(';').next().unwrap().to_owned(), header)
}

#[tokio::test]
async fn posting_a_name_creates_a_signed_http_only_lax_session() {
    let server = TestServer::start().await;
    assert_eq!(
        get_session(&server, None).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let response = post_name(&server, "  alice ", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (cookie, header) = cookie_of(&response);
    let lower = header.to_ascii_lowercase();
    assert!(
        lower.contains("httponly") && lower.contains("samesite=lax") && lower.contains("path=/"),
        "{header}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["name"], "alice");
    let id = body["user"]["id"].as_str().unwrap().to_owned();

    let current: Value = get_session(&server, Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(current, body);

    // Renaming keeps the identity.
    let renamed: Value = post_name(&server, "alicia", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(renamed["user"]["id"], id.as_str());
    assert_eq!(renamed["user"]["name"], "alicia");

    // A tampered cookie is no session at all.
    let tampered = format!("{}x", cookie);
    assert_eq!(
        get_session(&server, Some(&tampered)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn bad_names_are_refused_with_a_clear_error() {
    let server = TestServer::start().await;
    for bad in ["", "   ", "a\u{1}b", &"x".repeat(33)] {
        let response = post_name(&server, bad, None).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_name");
    }
    let response = reqwest::Client::new()
        .post(format!("{}/api/session", server.base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
}

#[tokio::test]
async fn the_cookie_names_the_websocket_user_and_survives_a_restart() {
    let mut server = TestServer::start().await;
    let response = post_name(&server, "alice", None).await;
    let (cookie, _) = cookie_of(&response);
    let body: Value = response.json().await.unwrap();

    let connect = |server: &TestServer, cookie: &str| {
        // A `name` parameter is ignored when a valid cookie is present.
        let mut request = format!("{}?name=mallory", server.ws_url())
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("cookie", cookie.parse().unwrap());
        Client::connect_request(request)
    };
    let client = connect(&server, &cookie).await;
    for field in ["id", "name", "guest"] {
        assert_eq!(client.user[field], body["user"][field], "{field}");
    }
    client.close().await;

    server.restart().await;
    let current: Value = get_session(&server, Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(current, body);
    let client = connect(&server, &cookie).await;
    for field in ["id", "name", "guest"] {
        assert_eq!(client.user[field], body["user"][field], "{field}");
    }

    let response = reqwest::Client::new()
        .delete(format!("{}/api/session", server.base_url()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("confab_session=")
    );
}

#[tokio::test]
async fn pages_and_health_are_served_with_a_strict_policy() {
    let server = TestServer::start().await;
    for path in ["/", "/chat/general/"] {
        let response = reqwest::get(format!("{}{path}", server.base_url()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(
            response.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
    }
    let response = reqwest::get(format!("{}/healthz", server.base_url()))
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "ok");
    let response = reqwest::get(format!("{}/assets/nope.js", server.base_url()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
