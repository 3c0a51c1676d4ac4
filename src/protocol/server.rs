//! Server → client frames. Each is encoded to JSON exactly once; the resulting [`Frame`] is a
//! refcounted buffer, so sending it to a thousand members costs a thousand refcounts, not a
//! thousand encodings.

use serde::Serialize;

use super::ErrorCode;
use super::client::Ref;
use crate::domain::{Message, RoomName, User, UserId};

/// An encoded text frame. Cloning it is a refcount increment.
pub type Frame = axum::extract::ws::Utf8Bytes;

/// One room's online count, as the lobby shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomCount {
    pub name: RoomName,
    pub online: u32,
}

#[derive(Serialize)]
struct MessageView<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a RoomName,
    seq: u64,
    id: &'a str,
    ts: i64,
    user: &'a User,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
}

impl<'a> MessageView<'a> {
    /// `client_id` is shown only to its author: it is the author's own bookkeeping.
    fn new(message: &'a Message, viewer: Option<&UserId>) -> Self {
        let own = viewer == Some(&message.user.id);
        Self {
            kind: "message",
            room: &message.room,
            seq: message.seq,
            id: &message.id,
            ts: message.ts,
            user: &message.user,
            text: &message.text,
            client_id: own.then_some(message.client_id.as_str()),
        }
    }
}

fn encode<T: Serialize>(value: &T) -> Frame {
    // Serializing these plain structs cannot fail: no maps with non-string keys, no I/O.
    serde_json::to_string(value)
        .unwrap_or_else(|_| {
            String::from(r#"{"type":"error","code":"internal","message":"encoding failed"}"#)
        })
        .into()
}

fn views<'a>(messages: &'a [Message], viewer: &UserId) -> Vec<MessageView<'a>> {
    messages
        .iter()
        .map(|m| MessageView::new(m, Some(viewer)))
        .collect()
}

pub fn hello(user: &User, idle_timeout_secs: u64) -> Frame {
    #[derive(Serialize)]
    struct Hello<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        user: &'a User,
        protocol: u32,
        idle_timeout: u64,
    }
    encode(&Hello {
        kind: "hello",
        user,
        protocol: 1,
        idle_timeout: idle_timeout_secs,
    })
}

/// A live message; `with_client_id` marks the copy for the sending connection.
pub fn message(message: &Message, with_client_id: bool) -> Frame {
    let viewer = with_client_id.then_some(&message.user.id);
    encode(&MessageView::new(message, viewer))
}

pub struct Joined<'a> {
    pub room: &'a RoomName,
    pub members: &'a [User],
    pub messages: &'a [Message],
    pub viewer: &'a UserId,
    pub last_seq: u64,
    pub has_more: bool,
    pub truncated: bool,
}

pub fn joined(joined: &Joined<'_>) -> Frame {
    #[derive(Serialize)]
    struct View<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        room: &'a RoomName,
        members: &'a [User],
        messages: Vec<MessageView<'a>>,
        last_seq: u64,
        has_more: bool,
        truncated: bool,
    }
    encode(&View {
        kind: "joined",
        room: joined.room,
        members: joined.members,
        messages: views(joined.messages, joined.viewer),
        last_seq: joined.last_seq,
        has_more: joined.has_more,
        truncated: joined.truncated,
    })
}

pub fn presence(room: &RoomName, joined: &[User], left: &[User]) -> Frame {
    #[derive(Serialize)]
    struct View<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        room: &'a RoomName,
        joined: &'a [User],
        left: &'a [User],
    }
    encode(&View {
        kind: "presence",
        room,
        joined,
        left,
    })
}

pub fn left(room: &RoomName) -> Frame {
    #[derive(Serialize)]
    struct View<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        room: &'a RoomName,
    }
    encode(&View { kind: "left", room })
}

pub fn history(room: &RoomName, messages: &[Message], viewer: &UserId, has_more: bool) -> Frame {
    #[derive(Serialize)]
    struct View<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        room: &'a RoomName,
        messages: Vec<MessageView<'a>>,
        has_more: bool,
    }
    encode(&View {
        kind: "history",
        room,
        messages: views(messages, viewer),
        has_more,
    })
}

pub fn rooms(rooms: &[RoomCount], full: bool) -> Frame {
    #[derive(Serialize)]
    struct View<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        rooms: &'a [RoomCount],
        full: bool,
    }
    encode(&View {
        kind: "rooms",
        rooms,
        full,
    })
}

pub fn error(code: ErrorCode, message: &str, reference: Option<&Ref>) -> Frame {
    error_with_retry(code, message, reference, None)
}

/// An `error` that tells the client when trying again can succeed (`retry_after_ms`), for
/// limits that clear with time (`overloaded`, `rate_limited`).
pub fn error_with_retry(
    code: ErrorCode,
    message: &str,
    reference: Option<&Ref>,
    retry_after_ms: Option<u64>,
) -> Frame {
    #[derive(Serialize)]
    struct View<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        code: ErrorCode,
        message: &'a str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a Ref>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    }
    encode(&View {
        kind: "error",
        code,
        message,
        reference,
        retry_after_ms,
    })
}

pub fn pong() -> Frame {
    Frame::from_static(r#"{"type":"pong"}"#)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DisplayName;
    use serde_json::{Value, json};

    fn sample() -> Message {
        Message {
            room: RoomName::parse("general").unwrap(),
            seq: 7,
            id: "m-1".into(),
            ts: 1_700_000_000_000,
            user: User {
                id: UserId::from_trusted("u-1".into()),
                name: DisplayName::parse("ann").unwrap(),
            },
            text: "<b>hi</b>".into(),
            client_id: "c-1".into(),
        }
    }

    fn json_of(frame: &Frame) -> Value {
        serde_json::from_str(frame.as_str()).unwrap()
    }

    #[test]
    fn message_frames_show_client_id_only_to_the_sender() {
        let message = sample();
        let shared = json_of(&super::message(&message, false));
        assert_eq!(
            shared,
            json!({"type":"message","room":"general","seq":7,"id":"m-1","ts":1_700_000_000_000_i64,
                   "user":{"id":"u-1","name":"ann"},"text":"<b>hi</b>"})
        );
        assert_eq!(json_of(&super::message(&message, true))["client_id"], "c-1");
    }

    #[test]
    fn history_shows_client_id_on_the_viewers_own_messages() {
        let message = sample();
        let own = json_of(&history(
            &message.room,
            std::slice::from_ref(&message),
            &message.user.id,
            false,
        ));
        assert_eq!(own["messages"][0]["client_id"], "c-1");
        let other = UserId::from_trusted("u-2".into());
        let theirs = json_of(&history(
            &message.room,
            std::slice::from_ref(&message),
            &other,
            true,
        ));
        assert!(theirs["messages"][0].get("client_id").is_none());
        assert_eq!(theirs["has_more"], true);
    }

    #[test]
    fn errors_echo_their_ref() {
        let frame = error(ErrorCode::NotJoined, "join first", Some(&Ref::Int(3)));
        assert_eq!(
            json_of(&frame),
            json!({"type":"error","code":"not_joined","message":"join first","ref":3})
        );
        let frame = error(ErrorCode::BadJson, "x", None);
        assert!(json_of(&frame).get("ref").is_none());
    }
}
