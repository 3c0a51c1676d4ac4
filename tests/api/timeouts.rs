//! Slowloris: a connection that stalls before its headers or its body are in is closed after
//! the header or body timeout, the WebSocket upgrade request included, and the server keeps
//! answering everyone else meanwhile.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::{PATIENCE, TestServer, read_until_closed, spawn_binary_with_open_files};

/// The bounds the tests run with: short, so that they run quickly; the defaults (10 s and 30 s)
/// are checked in `config`.
const HEADERS: Duration = Duration::from_secs(1);
const BODY: Duration = Duration::from_secs(1);
/// How long past a bound the server may take to close: timers and scheduling, never a bound.
const SLACK: Duration = Duration::from_secs(3);

async fn server() -> TestServer {
    TestServer::start_with(|config| {
        config.header_timeout = HEADERS.as_secs();
        config.body_timeout = BODY.as_secs();
    })
    .await
}

async fn send(server: &TestServer, bytes: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(bytes.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn half_sent_headers_are_cut_off_after_the_header_timeout() {
    let server = server().await;
    for partial in [
        "",
        "GET / HTTP/1.1\r\nHost: x\r\n",
        // The upgrade request gets the same bound.
        "GET /ws?name=alice HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    ] {
        let mut stream = send(&server, partial).await;
        let (_, after) = read_until_closed(&mut stream, HEADERS + SLACK).await;
        assert!(
            after >= HEADERS - Duration::from_millis(100),
            "{partial:?} closed too early: {after:?}"
        );
    }
}

#[tokio::test]
async fn a_kept_alive_connection_must_send_its_next_headers_in_time() {
    let server = server().await;
    let mut stream = send(&server, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (answered, after) = read_until_closed(&mut stream, HEADERS + SLACK).await;
    let answered = String::from_utf8_lossy(&answered);
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert!(after >= HEADERS - Duration::from_millis(100), "{after:?}");
}

#[tokio::test]
async fn a_stalled_body_is_cut_off_after_the_body_timeout() {
    let server = server().await;
    let mut stream = send(
        &server,
        "POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{\"name\":",
    )
    .await;
    let (answered, after) = read_until_closed(&mut stream, BODY + SLACK).await;
    let answered = String::from_utf8_lossy(&answered);
    assert!(answered.starts_with("HTTP/1.1 408"), "{answered}");
    assert!(after >= BODY - Duration::from_millis(100), "{after:?}");
}

#[tokio::test]
async fn many_stalled_sockets_are_all_closed_and_others_are_served_meanwhile() {
    let server = server().await;
    // The finding: 402 half-sent requests all stayed open after 150 s.
    let mut stalled = Vec::new();
    for _ in 0..200 {
        stalled.push(send(&server, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").await);
    }
    let health = reqwest::get(format!("{}/healthz", server.base_url()))
        .await
        .unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    for mut stream in stalled {
        read_until_closed(&mut stream, HEADERS + SLACK).await;
    }
}

#[tokio::test]
async fn running_out_of_open_files_does_not_stop_the_server() {
    // The finding: with a low open-files limit, stalled sockets used up every descriptor, the
    // server logged `Too many open files` and stopped answering.
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path().to_str().unwrap();
    let (_server, host) =
        spawn_binary_with_open_files(96, &["--data-dir", dir, "--header-timeout", "1"]).await;
    let addr: std::net::SocketAddr = host.parse().unwrap();
    let mut stalled = Vec::new();
    for _ in 0..150 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        stalled.push(stream);
    }
    // More than the server can hold at once: it takes them in turns as the earlier time out.
    for mut stream in stalled {
        read_until_closed(&mut stream, Duration::from_secs(20)).await;
    }
    let health = tokio::time::timeout(PATIENCE, reqwest::get(format!("http://{host}/healthz")))
        .await
        .expect("the server answers again")
        .unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
}
