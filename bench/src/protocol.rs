//! Protocol v1 frames as the bench uses them (see docs/protocol.md): the client frames it
//! sends, and the few fields it reads from server frames.
//!
//! Incoming frames are decoded into a borrowed view that skips every field the bench does not
//! need (users, member lists, message ids): at millions of deliveries per second the load
//! generator's own parsing must stay cheap, or it measures itself instead of the server.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// A frame the client sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientFrame<'a> {
    Join {
        room: &'a str,
    },
    Send {
        room: &'a str,
        text: &'a str,
        client_id: &'a str,
    },
}

impl ClientFrame<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("client frames always serialise")
    }
}

/// The fields of a server frame the bench looks at; everything else is skipped.
#[derive(Debug, Deserialize)]
pub struct ServerFrame<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub room: Option<Cow<'a, str>>,
    /// `message.seq`.
    #[serde(default)]
    pub seq: Option<u64>,
    /// `message.text`.
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
    /// `joined.last_seq`.
    #[serde(default)]
    pub last_seq: Option<u64>,
    /// `error.code`.
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
    /// `hello.protocol`.
    #[serde(default)]
    pub protocol: Option<u64>,
}

impl<'a> ServerFrame<'a> {
    pub fn parse(json: &'a str) -> serde_json::Result<Self> {
        serde_json::from_str(json)
    }
}

/// The fields receivers need from a `message` frame.
#[derive(Debug, PartialEq, Eq)]
pub struct MessageFields<'a> {
    pub room: &'a str,
    pub seq: u64,
    pub text: &'a str,
}

/// Fast path for the hottest frame: pulls `room`, `seq` and `text` out of a `message` frame
/// by scanning for its keys, at a fraction of a full parse (profiled: JSON decoding was the
/// bench's largest user-space cost in fan-out). Scanning is sound for this frame because a
/// `"` inside a JSON string is always escaped, so `"seq":` can only be a key, and the only
/// nested object of a message, `user`, has no such keys.
///
/// Returns `None` for anything else, or for strings with escapes: callers then fall back to
/// [`ServerFrame::parse`].
pub fn scan_message(json: &str) -> Option<MessageFields<'_>> {
    let body = json.strip_prefix(r#"{"type":"message","#)?;
    Some(MessageFields {
        room: plain_string_after(body, r#""room":""#)?,
        seq: number_after(body, r#""seq":"#)?,
        text: plain_string_after(body, r#""text":""#)?,
    })
}

/// The string value after `key` (which ends with the opening quote), if it has no escapes.
fn plain_string_after<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let start = json.find(key)? + key.len();
    let len = json[start..].find('"')?;
    let value = &json[start..start + len];
    (!value.contains('\\')).then_some(value)
}

fn number_after(json: &str, key: &str) -> Option<u64> {
    let start = json.find(key)? + key.len();
    let digits = json[start..].bytes().take_while(u8::is_ascii_digit).count();
    json[start..start + digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_scan_agrees_with_the_full_parse() {
        let json = r#"{"type":"message","room":"general","seq":42,"id":"x","ts":1,"user":{"id":"u","name":"al\"seq\":9"},"text":"b:1:2:3","client_id":"c-1"}"#;
        let fields = scan_message(json).unwrap();
        let frame = ServerFrame::parse(json).unwrap();
        assert_eq!(fields.room, frame.room.as_deref().unwrap());
        assert_eq!(Some(fields.seq), frame.seq);
        assert_eq!(fields.text, frame.text.as_deref().unwrap());
    }

    #[test]
    fn the_message_scan_declines_what_it_cannot_read_plainly() {
        assert_eq!(
            scan_message(r#"{"type":"joined","room":"r","seq":1,"text":"x"}"#),
            None
        );
        assert_eq!(
            scan_message(r#"{"type":"message","room":"r","seq":1,"text":"a\"b"}"#),
            None
        );
    }

    #[test]
    fn send_frames_carry_the_protocol_fields() {
        let frame = ClientFrame::Send {
            room: "r1",
            text: "b:1:2:3",
            client_id: "c2",
        };
        assert_eq!(
            frame.to_json(),
            r#"{"type":"send","room":"r1","text":"b:1:2:3","client_id":"c2"}"#
        );
        assert_eq!(
            ClientFrame::Join { room: "r1" }.to_json(),
            r#"{"type":"join","room":"r1"}"#
        );
    }

    #[test]
    fn a_message_frame_yields_room_seq_and_text_and_ignores_the_rest() {
        let json = r#"{"type":"message","room":"general","seq":42,"id":"x","ts":1,
            "user":{"id":"u","name":"alice"},"text":"b:1:2:3","client_id":"c-1","future":[1]}"#;
        let frame = ServerFrame::parse(json).unwrap();
        assert_eq!(frame.kind, "message");
        assert_eq!(frame.room.as_deref(), Some("general"));
        assert_eq!(frame.seq, Some(42));
        assert_eq!(frame.text.as_deref(), Some("b:1:2:3"));
    }

    #[test]
    fn a_joined_frame_yields_last_seq_and_skips_its_backlog() {
        let json = r#"{"type":"joined","room":"r","members":[{"id":"a","name":"a"},{"id":"b","name":"b"}],
            "messages":[{"type":"message","room":"r","seq":1,"text":"hi"}],"last_seq":7,
            "has_more":false,"truncated":false}"#;
        let frame = ServerFrame::parse(json).unwrap();
        assert_eq!(frame.kind, "joined");
        assert_eq!(frame.last_seq, Some(7));
        assert_eq!(frame.seq, None);
    }
}
