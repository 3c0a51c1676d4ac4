//! A protocol client for seeding rooms and for "someone else" talking while browsers watch.

use crate::*;

// ---- a protocol client for seeding and for "someone else" -----------------------------------

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A non-browser guest (`/ws?name=`), used to seed rooms and to talk while browsers watch.
pub(crate) struct Guest {
    pub(crate) socket: Socket,
    /// The user id the server gave this guest.
    pub(crate) id: String,
    pub(crate) counter: u64,
    pub(crate) seen: Vec<Value>,
}

impl Guest {
    pub(crate) async fn connect(port: u16, name: &str) -> Self {
        let url = format!("ws://127.0.0.1:{port}/ws?name={}", percent_encode(name));
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the guest connects");
        let mut guest = Guest {
            socket,
            id: String::new(),
            counter: 0,
            seen: Vec::new(),
        };
        let hello = guest.next_of("hello").await;
        guest.id = hello["user"]["id"].as_str().expect("a user id").to_owned();
        guest
    }

    pub(crate) async fn join(&mut self, room: &str) {
        self.frame(json!({"type": "join", "room": room})).await;
        self.next_of("joined").await;
    }

    /// Sends a message without waiting for it (several can be in flight).
    pub(crate) async fn send(&mut self, room: &str, text: &str) {
        self.counter += 1;
        let client_id = format!("guest-{}", self.counter);
        self.frame(json!({"type": "send", "room": room, "text": text, "client_id": client_id}))
            .await;
    }

    pub(crate) async fn wait_for_seq(&mut self, seq: i64) {
        self.wait_until(|f| f["type"] == "message" && f["seq"] == json!(seq))
            .await;
    }

    pub(crate) async fn wait_for_text(&mut self, text: &str) {
        self.wait_until(|f| f["type"] == "message" && f["text"] == json!(text))
            .await;
    }

    pub(crate) async fn frame(&mut self, frame: Value) {
        self.socket
            .send(Message::text(frame.to_string()))
            .await
            .expect("the guest sends");
    }

    pub(crate) async fn next_of(&mut self, kind: &str) -> Value {
        self.wait_until(|f| f["type"] == kind).await
    }

    pub(crate) async fn wait_until(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.seen.iter().position(&matches) {
            return self.seen.remove(i);
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("the guest waited too long for a frame")
                .expect("the connection is open")
                .expect("a frame");
            if let Message::Text(text) = next {
                let frame: Value = serde_json::from_str(text.as_str()).expect("JSON");
                if frame["type"] == "error" {
                    panic!("the guest got an error: {frame}");
                }
                if matches(&frame) {
                    return frame;
                }
                if frame["type"] != "message" && frame["type"] != "presence" {
                    self.seen.push(frame);
                }
            }
        }
    }
}

pub(crate) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
