//! TLS: with `--tls-cert` and `--tls-key` the server speaks HTTPS and WSS on its one address,
//! its cookies are `Secure` and its answers carry HSTS; behind a trusted proxy that says
//! `X-Forwarded-Proto: https`, the same.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use std::time::Duration;

use crate::support::{PATIENCE, SelfSigned, TestServer, http_exchange, read_until_closed};

async fn tls_server() -> (TestServer, SelfSigned, tempfile::TempDir) {
    let folder = tempfile::tempdir().unwrap();
    let cert = SelfSigned::create(folder.path());
    let (cert_path, key_path) = (cert.cert.clone(), cert.key.clone());
    let server = TestServer::start_with(move |config| {
        config.tls_cert = Some(cert_path);
        config.tls_key = Some(key_path);
        config.header_timeout = 1;
    })
    .await;
    (server, cert, folder)
}

fn header<'r>(response: &'r str, name: &str) -> Option<&'r str> {
    response
        .lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then_some(value.trim())
        })
}

#[tokio::test]
async fn https_sets_secure_cookies_and_hsts() {
    let (server, cert, _folder) = tls_server().await;
    let body = json!({"name": "alice"}).to_string();
    let mut stream = cert.connect(server.addr()).await;
    let response = http_exchange(
        &mut stream,
        &format!(
            "POST /api/session HTTP/1.1\r\nHost: localhost:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            server.port(),
            body.len()
        ),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let cookie = header(&response, "set-cookie").expect("a session cookie");
    assert!(cookie.to_ascii_lowercase().contains("; secure"), "{cookie}");
    let hsts = header(&response, "strict-transport-security").expect("HSTS");
    assert!(hsts.starts_with("max-age="), "{hsts}");

    // Plain HTTP on the TLS port gets nowhere.
    let plain = reqwest::get(format!("{}/healthz", server.base_url())).await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
}

#[tokio::test]
async fn a_websocket_works_over_wss() {
    let (server, cert, _folder) = tls_server().await;
    let stream = cert.connect(server.addr()).await;
    let request = format!("wss://localhost:{}/ws?name=alice", server.port())
        .into_client_request()
        .unwrap();
    let (mut socket, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("wss upgrade");
    assert!(response.headers().contains_key("strict-transport-security"));
    assert_eq!(next_frame(&mut socket).await["type"], "hello");
    for frame in [
        json!({"type": "join", "room": "tls"}),
        json!({"type": "send", "room": "tls", "text": "over TLS", "client_id": "t1"}),
    ] {
        socket.send(Message::text(frame.to_string())).await.unwrap();
    }
    let message = loop {
        let frame = next_frame(&mut socket).await;
        if frame["type"] == "message" {
            break frame;
        }
    };
    assert_eq!(message["text"], "over TLS");
    assert_eq!(message["seq"], 1);
}

/// The next text frame as JSON, failing the test after [`PATIENCE`].
async fn next_frame<S>(socket: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("a frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).expect("JSON");
        }
    }
}

#[tokio::test]
async fn a_trusted_proxy_saying_https_makes_cookies_secure() {
    let behind = TestServer::start_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let open = TestServer::start().await;
    let sign_in = async |server: &TestServer| {
        reqwest::Client::new()
            .post(format!("{}/api/session", server.base_url()))
            .header("x-forwarded-proto", "https")
            .json(&json!({"name": "alice"}))
            .send()
            .await
            .unwrap()
    };
    let proxied = sign_in(&behind).await;
    let cookie = proxied.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(cookie.contains("; secure"), "{cookie}");
    assert!(proxied.headers().contains_key("strict-transport-security"));

    // From a peer that is not a trusted proxy the header is ignored.
    let direct = sign_in(&open).await;
    let cookie = direct.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(!cookie.contains("secure"), "{cookie}");
    assert!(!direct.headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_cut_off_after_the_header_timeout() {
    let (server, _cert, _folder) = tls_server().await;
    let mut silent = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let (_, after) = read_until_closed(&mut silent, Duration::from_secs(4)).await;
    assert!(
        after >= Duration::from_millis(900),
        "closed too early: {after:?}"
    );
}
