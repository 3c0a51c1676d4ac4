//! A stand-in server speaking just enough of protocol v1 (`hello`, `join`/`joined`, `send`
//! → `message` with per-room `seq`, `GET /healthz`) to exercise confab-bench without confab:
//! no storage, no presence, no validation, no slow-consumer policy. It accepts confab's
//! `--addr`, `--data-dir` and `--idle-timeout` so `--spawn` can start it:
//!
//! ```text
//! cargo build --release -p confab-bench --example mock_server
//! cargo run --release -p confab-bench -- fanout --spawn target/release/examples/mock_server --members 50
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Per room: the last seq handed out and every member's outbox.
#[derive(Default)]
struct Room {
    seq: u64,
    members: Vec<mpsc::UnboundedSender<Utf8Bytes>>,
}

type Rooms = Arc<Mutex<HashMap<String, Room>>>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .iter()
        .position(|a| a == "--addr")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("mock confab listening on ws://{addr}/ws");
    let rooms = Rooms::default();
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(serve(stream, rooms.clone()));
    }
}

async fn serve(mut stream: TcpStream, rooms: Rooms) {
    let _ = stream.set_nodelay(true);
    let mut head = [0u8; 16];
    if let Ok(n) = stream.peek(&mut head).await
        && head[..n].starts_with(b"GET /healthz")
    {
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .await;
        return;
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Utf8Bytes>();
    // The writer drains everything queued before flushing: one write per wake-up.
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(Message::Text(first)).await.is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                if sink.feed(Message::Text(more)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let hello =
        json!({"type":"hello","user":{"id":"u","name":"guest"},"protocol":1,"idle_timeout":45});
    let _ = tx.send(hello.to_string().into());
    while let Some(Ok(msg)) = source.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let room_name = frame["room"].as_str().unwrap_or_default().to_owned();
        match frame["type"].as_str() {
            Some("join") => {
                let mut rooms = rooms.lock().expect("lock");
                let room = rooms.entry(room_name.clone()).or_default();
                room.members.push(tx.clone());
                let joined = json!({"type":"joined","room":room_name,"members":[],"messages":[],
                    "last_seq":room.seq,"has_more":false,"truncated":false});
                let _ = tx.send(joined.to_string().into());
            }
            Some("send") => {
                let mut rooms = rooms.lock().expect("lock");
                let Some(room) = rooms.get_mut(&room_name) else {
                    continue;
                };
                room.seq += 1;
                let message: Utf8Bytes = json!({"type":"message","room":room_name,"seq":room.seq,
                    "id":"m","ts":0,"user":{"id":"u","name":"guest"},"text":frame["text"]})
                .to_string()
                .into();
                room.members.retain(|m| m.send(message.clone()).is_ok());
            }
            _ => {}
        }
    }
}
