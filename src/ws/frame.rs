//! RFC 6455 framing, both ways: a decoder for what clients send (masked frames, fragments,
//! control frames, close codes) and the few control frames the server writes itself. Data
//! frames the server sends are built once per message in `protocol::server`.
//!
//! Every violation maps to the close code RFC 6455 asks for: 1002 for a protocol error, 1007
//! for text that is not UTF-8, 1009 for a message over the size limit.

use bytes::{Buf, Bytes, BytesMut};

use crate::protocol::close;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
/// Control frames carry at most this much payload and are never fragmented.
const MAX_CONTROL_PAYLOAD: usize = 125;

/// A complete message from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A whole text message, checked to be UTF-8.
    Text(String),
    /// A binary message; confab speaks text only (its size is still bounded).
    Binary,
    Ping(Bytes),
    Pong,
    /// The client's close frame: its code (None if it sent none) and reason.
    Close(Option<u16>),
}

/// Why the connection must close: the close code and a short reason for the close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub code: u16,
    pub reason: &'static str,
}

const fn violation(code: u16, reason: &'static str) -> Violation {
    Violation { code, reason }
}

/// Reassembles client frames into messages. Holds at most one message's fragments.
pub struct Decoder {
    max_message: usize,
    /// The opcode and payload so far of a fragmented message.
    partial: Option<(u8, Vec<u8>)>,
}

impl Decoder {
    /// `max_message`: the largest message (after reassembly) accepted; larger ones are 1009.
    pub fn new(max_message: usize) -> Self {
        Self {
            max_message,
            partial: None,
        }
    }

    /// Takes the next complete message off the front of `buf`. `Ok(None)` means more bytes
    /// are needed; what was consumed so far stays consumed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, Violation> {
        loop {
            let Some(frame) = self.next_frame(buf)? else {
                return Ok(None);
            };
            if let Some(message) = self.assemble(frame)? {
                return Ok(Some(message));
            }
        }
    }

    /// One frame off the front of `buf`, unmasked, with its header checked.
    fn next_frame(&self, buf: &mut BytesMut) -> Result<Option<RawFrame>, Violation> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        let fin = b0 & 0x80 != 0;
        if b0 & 0x70 != 0 {
            return Err(violation(close::PROTOCOL_ERROR, "reserved bits set"));
        }
        let opcode = b0 & 0x0F;
        if b1 & 0x80 == 0 {
            return Err(violation(
                close::PROTOCOL_ERROR,
                "client frames must be masked",
            ));
        }
        let (len, mut at) = match b1 & 0x7F {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&buf[2..10]);
                (u64::from_be_bytes(raw), 10)
            }
            short => (u64::from(short), 2),
        };
        let is_control = opcode & 0x8 != 0;
        if is_control && (len as usize > MAX_CONTROL_PAYLOAD || !fin) {
            return Err(violation(close::PROTOCOL_ERROR, "bad control frame"));
        }
        let buffered = self.partial.as_ref().map_or(0, |(_, data)| data.len()) as u64;
        if !is_control && buffered.saturating_add(len) > self.max_message as u64 {
            return Err(violation(close::TOO_BIG, "message over 64 KiB"));
        }
        let len = len as usize; // bounded above by max_message or 125
        if buf.len() < at + 4 + len {
            // Make room for the rest of the frame once, not a few bytes at a time.
            buf.reserve(at + 4 + len - buf.len());
            return Ok(None);
        }
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&buf[at..at + 4]);
        at += 4;
        buf.advance(at);
        let mut payload = buf.split_to(len);
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i & 3];
        }
        Ok(Some(RawFrame {
            fin,
            opcode,
            payload: payload.freeze(),
        }))
    }

    fn assemble(&mut self, frame: RawFrame) -> Result<Option<Incoming>, Violation> {
        match frame.opcode {
            OP_PING => Ok(Some(Incoming::Ping(frame.payload))),
            OP_PONG => Ok(Some(Incoming::Pong)),
            OP_CLOSE => parse_close(&frame.payload).map(Some),
            OP_TEXT | OP_BINARY => {
                if self.partial.is_some() {
                    return Err(violation(
                        close::PROTOCOL_ERROR,
                        "new message inside a fragmented one",
                    ));
                }
                if frame.fin {
                    return finish(frame.opcode, frame.payload.to_vec()).map(Some);
                }
                self.partial = Some((frame.opcode, frame.payload.to_vec()));
                Ok(None)
            }
            OP_CONTINUATION => {
                let Some((opcode, mut data)) = self.partial.take() else {
                    return Err(violation(
                        close::PROTOCOL_ERROR,
                        "continuation without a message",
                    ));
                };
                data.extend_from_slice(&frame.payload);
                if frame.fin {
                    finish(opcode, data).map(Some)
                } else {
                    self.partial = Some((opcode, data));
                    Ok(None)
                }
            }
            _ => Err(violation(close::PROTOCOL_ERROR, "unknown opcode")),
        }
    }
}

struct RawFrame {
    fin: bool,
    opcode: u8,
    payload: Bytes,
}

fn finish(opcode: u8, data: Vec<u8>) -> Result<Incoming, Violation> {
    if opcode == OP_BINARY {
        return Ok(Incoming::Binary);
    }
    String::from_utf8(data)
        .map(Incoming::Text)
        .map_err(|_| violation(close::INVALID_DATA, "text is not UTF-8"))
}

fn parse_close(payload: &[u8]) -> Result<Incoming, Violation> {
    match payload.len() {
        0 => Ok(Incoming::Close(None)),
        1 => Err(violation(
            close::PROTOCOL_ERROR,
            "close payload of one byte",
        )),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !close_code_is_valid(code) {
                return Err(violation(close::PROTOCOL_ERROR, "invalid close code"));
            }
            if std::str::from_utf8(&payload[2..]).is_err() {
                return Err(violation(close::INVALID_DATA, "close reason is not UTF-8"));
            }
            Ok(Incoming::Close(Some(code)))
        }
    }
}

/// Codes a peer may send in a close frame (RFC 6455 §7.4 and the IANA registry): the defined
/// ones below 1016 except those reserved for local use (1004–1006, 1015), and 3000–4999.
fn close_code_is_valid(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// An unmasked server control frame (close, ping, pong) with a payload of at most 125 bytes.
fn control(opcode: u8, payload: &[u8]) -> Bytes {
    let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
    let mut frame = Vec::with_capacity(2 + payload.len());
    frame.push(0x80 | opcode);
    frame.push(payload.len() as u8);
    frame.extend_from_slice(payload);
    Bytes::from(frame)
}

/// A close frame with `code` and `reason` (cut to fit a control frame, at a char boundary).
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    control(OP_CLOSE, &payload)
}

pub fn ping_frame() -> Bytes {
    control(OP_PING, &[])
}

pub fn pong_frame(payload: &[u8]) -> Bytes {
    control(OP_PONG, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame, as a browser would send it.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            len if len < 126 => out.push(0x80 | len as u8),
            len if len <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        out
    }

    fn decode_all(bytes: &[u8]) -> Result<Vec<Incoming>, Violation> {
        let mut decoder = Decoder::new(64 * 1024);
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(message) = decoder.decode(&mut buf)? {
            out.push(message);
        }
        Ok(out)
    }

    #[test]
    fn text_arrives_whole_even_byte_by_byte() {
        let wire = client_frame(true, OP_TEXT, "héllo".as_bytes());
        let mut decoder = Decoder::new(1024);
        let mut buf = BytesMut::new();
        let mut got = None;
        for byte in wire {
            buf.extend_from_slice(&[byte]);
            if let Some(message) = decoder.decode(&mut buf).unwrap() {
                got = Some(message);
            }
        }
        assert_eq!(got, Some(Incoming::Text("héllo".into())));
        assert!(buf.is_empty());
    }

    #[test]
    fn fragments_are_reassembled_around_control_frames() {
        let mut wire = client_frame(false, OP_TEXT, b"ab");
        wire.extend(client_frame(true, OP_PING, b"p"));
        wire.extend(client_frame(true, OP_CONTINUATION, b"cd"));
        let got = decode_all(&wire).unwrap();
        assert_eq!(
            got,
            [
                Incoming::Ping(Bytes::from_static(b"p")),
                Incoming::Text("abcd".into())
            ]
        );
    }

    #[test]
    fn violations_get_the_close_codes_rfc_6455_asks_for() {
        let code = |wire: Vec<u8>| decode_all(&wire).unwrap_err().code;
        assert_eq!(code(client_frame(true, OP_TEXT, &[0xFF, 0xFE])), 1007);
        let mut unmasked = client_frame(true, OP_TEXT, b"x");
        unmasked[1] &= 0x7F;
        assert_eq!(decode_all(&unmasked[..3]).unwrap_err().code, 1002);
        let mut reserved = client_frame(true, OP_TEXT, b"x");
        reserved[0] |= 0x40;
        assert_eq!(code(reserved), 1002);
        assert_eq!(code(client_frame(true, 0x3, b"")), 1002);
        assert_eq!(code(client_frame(true, OP_CONTINUATION, b"x")), 1002);
        assert_eq!(code(client_frame(false, OP_PING, b"")), 1002);
        assert_eq!(code(client_frame(true, OP_PING, &[0; 126])), 1002);
        let mut nested = client_frame(false, OP_TEXT, b"a");
        nested.extend(client_frame(true, OP_TEXT, b"b"));
        assert_eq!(code(nested), 1002);
        assert_eq!(
            code(client_frame(true, OP_TEXT, &[b'x'; 64 * 1024 + 1])),
            1009
        );
        assert_eq!(code(client_frame(true, OP_CLOSE, &[3])), 1002);
        assert_eq!(
            code(client_frame(true, OP_CLOSE, &1005u16.to_be_bytes())),
            1002
        );
        assert_eq!(
            code(client_frame(true, OP_CLOSE, &999u16.to_be_bytes())),
            1002
        );
        let mut bad_reason = 1000u16.to_be_bytes().to_vec();
        bad_reason.push(0xFF);
        assert_eq!(code(client_frame(true, OP_CLOSE, &bad_reason)), 1007);
    }

    #[test]
    fn an_oversized_fragmented_message_is_refused_before_it_is_buffered() {
        let mut wire = client_frame(false, OP_TEXT, &[b'x'; 40 * 1024]);
        wire.extend(client_frame(true, OP_CONTINUATION, &[b'x'; 40 * 1024]));
        assert_eq!(decode_all(&wire).unwrap_err().code, 1009);
    }

    #[test]
    fn close_frames_carry_valid_codes_and_reasons() {
        assert_eq!(
            decode_all(&client_frame(true, OP_CLOSE, &4000u16.to_be_bytes())).unwrap(),
            [Incoming::Close(Some(4000))]
        );
        assert_eq!(
            decode_all(&client_frame(true, OP_CLOSE, b"")).unwrap(),
            [Incoming::Close(None)]
        );
        let frame = close_frame(1001, &"é".repeat(100));
        assert_eq!(frame[0], 0x88);
        assert!(usize::from(frame[1]) <= 125);
        assert!(std::str::from_utf8(&frame[4..]).is_ok());
    }
}
