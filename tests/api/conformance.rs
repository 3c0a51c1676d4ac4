//! RFC 6455 from the outside, byte by byte: what the server does with frames no well-behaved
//! client library would send (invalid UTF-8, unmasked frames, reserved opcodes and close
//! codes), and how it answers a client's close.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{PATIENCE, TestServer};

/// A WebSocket client that writes raw bytes, for frames a library would refuse to send.
struct RawClient {
    socket: TcpStream,
    buf: Vec<u8>,
}

/// A frame the server sent: opcode and payload.
struct ServerFrame {
    opcode: u8,
    payload: Vec<u8>,
}

impl RawClient {
    async fn connect(server: &TestServer, name: &str) -> Self {
        let mut socket = TcpStream::connect(("127.0.0.1", server.port()))
            .await
            .expect("connects");
        let request = format!(
            "GET /ws?name={name} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut client = Self {
            socket,
            buf: Vec::new(),
        };
        let head = client.read_until_headers_end().await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        let hello = client.next_frame().await.expect("hello");
        assert_eq!(hello.opcode, 1);
        client
    }

    async fn read_until_headers_end(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                return head;
            }
            self.fill().await.expect("headers");
        }
    }

    async fn fill(&mut self) -> Option<()> {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(PATIENCE, self.socket.read(&mut chunk))
            .await
            .expect("the server answers in time")
            .ok()?;
        if n == 0 {
            return None;
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Some(())
    }

    /// Sends one masked frame with these header bits (FIN, RSV, opcode) and payload.
    async fn send(&mut self, first_byte: u8, payload: &[u8]) {
        self.send_with_mask(first_byte, payload, true).await;
    }

    async fn send_with_mask(&mut self, first_byte: u8, payload: &[u8], masked: bool) {
        let mask = [7u8, 1, 2, 9];
        let mut frame = vec![first_byte];
        let mask_bit = if masked { 0x80 } else { 0 };
        assert!(payload.len() < 126);
        frame.push(mask_bit | payload.len() as u8);
        if masked {
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        } else {
            frame.extend_from_slice(payload);
        }
        self.socket.write_all(&frame).await.unwrap();
    }

    /// The next frame the server sends; `None` once the connection ends.
    async fn next_frame(&mut self) -> Option<ServerFrame> {
        loop {
            if self.buf.len() >= 2 {
                assert_eq!(self.buf[1] & 0x80, 0, "server frames are never masked");
                let (len, header) = match self.buf[1] & 0x7F {
                    126 if self.buf.len() >= 4 => (
                        usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                        4,
                    ),
                    127 if self.buf.len() >= 10 => (
                        usize::try_from(u64::from_be_bytes(self.buf[2..10].try_into().unwrap()))
                            .unwrap(),
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    short => (usize::from(short), 2),
                };
                if len != usize::MAX && self.buf.len() >= header + len {
                    let opcode = self.buf[0] & 0x0F;
                    let payload = self.buf[header..header + len].to_vec();
                    self.buf.drain(..header + len);
                    return Some(ServerFrame { opcode, payload });
                }
            }
            self.fill().await?;
        }
    }

    /// Skips data frames until the close frame; returns its code.
    async fn close_code(&mut self) -> Option<u16> {
        while let Some(frame) = self.next_frame().await {
            if frame.opcode == 8 {
                return (frame.payload.len() >= 2)
                    .then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]]));
            }
        }
        panic!("the connection ended without a close frame");
    }
}

const FIN_TEXT: u8 = 0x81;
const FIN_CLOSE: u8 = 0x88;

#[tokio::test]
async fn text_that_is_not_utf8_closes_with_1007() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(&server, "ann").await;
    client.send(FIN_TEXT, &[b'{', 0xC3, 0x28, b'}']).await;
    assert_eq!(client.close_code().await, Some(1007));
}

#[tokio::test]
async fn protocol_violations_close_with_1002() {
    let server = TestServer::start().await;
    let violations: [(&str, u8, bool); 4] = [
        ("an unmasked frame", FIN_TEXT, false),
        ("a reserved bit", FIN_TEXT | 0x40, true),
        ("a reserved opcode", 0x83, true),
        ("a continuation with nothing to continue", 0x80, true),
    ];
    for (what, first_byte, masked) in violations {
        let mut client = RawClient::connect(&server, "ann").await;
        client
            .send_with_mask(first_byte, br#"{"type":"ping"}"#, masked)
            .await;
        assert_eq!(client.close_code().await, Some(1002), "{what}");
    }
}

#[tokio::test]
async fn a_clients_close_frame_is_answered_with_its_code() {
    let server = TestServer::start().await;
    for code in [1000u16, 1001, 4321] {
        let mut client = RawClient::connect(&server, "ann").await;
        client.send(FIN_CLOSE, &code.to_be_bytes()).await;
        assert_eq!(client.close_code().await, Some(code));
    }
    let mut client = RawClient::connect(&server, "ann").await;
    client.send(FIN_CLOSE, &[]).await;
    assert_eq!(
        client.close_code().await,
        Some(1000),
        "no code: a normal close"
    );
}

#[tokio::test]
async fn reserved_close_codes_from_a_client_are_protocol_errors() {
    let server = TestServer::start().await;
    for code in [999u16, 1004, 1005, 1006, 1015, 2000, 5000] {
        let mut client = RawClient::connect(&server, "ann").await;
        client.send(FIN_CLOSE, &code.to_be_bytes()).await;
        assert_eq!(client.close_code().await, Some(1002), "close code {code}");
    }
}

#[tokio::test]
async fn pings_are_answered_with_their_payload_and_fragments_are_reassembled() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(&server, "ann").await;
    client.send(0x89, b"are you there").await;
    let pong = client.next_frame().await.expect("pong");
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (0xA, &b"are you there"[..])
    );
    client.send(0x01, br#"{"type":"#).await; // text, not final
    client.send(0x80, br#""ping"}"#).await; // continuation, final
    let answer = client.next_frame().await.expect("answer");
    assert_eq!(answer.payload, br#"{"type":"pong"}"#);
}
