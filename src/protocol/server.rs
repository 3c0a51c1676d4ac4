//! Server → client frames. Each is encoded exactly once, straight into a complete WebSocket
//! frame (header and JSON payload in one refcounted buffer): server frames are unmasked, so the
//! same bytes go to every recipient, and sending a frame to a thousand members costs a thousand
//! refcounts, not a thousand encodings or copies.

use bytes::Bytes;
use serde::Serialize;

use super::ErrorCode;
use super::client::Ref;
use crate::domain::{Event, Message, Reaction, RoomName, User, UserId};

/// A complete, unmasked WebSocket text frame holding one JSON object. Cloning it is a refcount
/// increment.
#[derive(Clone, Debug)]
pub struct Frame {
    wire: Bytes,
    header: u8,
}

/// The longest header of an unmasked server frame: 2 bytes plus a 64-bit length.
const MAX_HEADER: usize = 10;
/// FIN set, opcode 1 (text).
const FIN_TEXT: u8 = 0x81;

impl Frame {
    /// Wraps a JSON payload that was written after [`MAX_HEADER`] reserved bytes of `buf`.
    fn seal(mut buf: Vec<u8>) -> Self {
        let len = buf.len() - MAX_HEADER;
        let mut header = [0u8; MAX_HEADER];
        header[0] = FIN_TEXT;
        let header_len = if len < 126 {
            header[1] = len as u8;
            2
        } else if let Ok(len) = u16::try_from(len) {
            header[1] = 126;
            header[2..4].copy_from_slice(&len.to_be_bytes());
            4
        } else {
            header[1] = 127;
            header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        };
        let start = MAX_HEADER - header_len;
        buf[start..MAX_HEADER].copy_from_slice(&header[..header_len]);
        Self {
            wire: Bytes::from(buf).slice(start..),
            header: header_len as u8,
        }
    }

    /// A frame carrying `json` as it is (tests, constant frames).
    pub fn from_json(json: &str) -> Self {
        let mut buf = Vec::with_capacity(MAX_HEADER + json.len());
        buf.extend_from_slice(&[0; MAX_HEADER]);
        buf.extend_from_slice(json.as_bytes());
        Self::seal(buf)
    }

    /// The bytes to write to the socket, header included.
    pub fn wire(&self) -> &Bytes {
        &self.wire
    }

    /// Bytes on the wire: what the frame costs a connection's budget.
    pub fn len(&self) -> usize {
        self.wire.len()
    }

    pub fn is_empty(&self) -> bool {
        self.wire.is_empty()
    }

    /// The JSON payload.
    pub fn json(&self) -> &str {
        // Only `seal` builds frames, always around serde_json output or a `&str`.
        std::str::from_utf8(&self.wire[usize::from(self.header)..])
            .expect("a frame's payload is the UTF-8 it was built from")
    }
}

/// One room's online count, as the lobby shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomCount {
    pub name: RoomName,
    pub online: u32,
    /// Shown as `visibility`: only a member's own answer lists a private room.
    #[serde(rename = "visibility", serialize_with = "visibility")]
    pub private: bool,
    /// For a signed-in user with a read marker in the room: messages from others after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread: Option<u64>,
    /// Of those, the ones that mention the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mentions: Option<u64>,
}

fn visibility<S: serde::Serializer>(private: &bool, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(if *private { "private" } else { "public" })
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
    /// A message's text; none for a deleted message or an event.
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    /// The message an event is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<u64>,
    /// A reaction event's emoji, and whether it was given or taken back.
    #[serde(skip_serializing_if = "Option::is_none")]
    emoji: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    added: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_at: Option<i64>,
    #[serde(skip_serializing_if = "<[Reaction]>::is_empty")]
    reactions: &'a [Reaction],
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
}

impl<'a> MessageView<'a> {
    /// `client_id` is shown only to its author: it is the author's own bookkeeping.
    fn new(message: &'a Message, viewer: Option<&UserId>) -> Self {
        let own = viewer == Some(&message.user.id);
        let (text, emoji) = match message.event {
            Event::Message if !message.deleted => (Some(message.text.as_str()), None),
            Event::Edited { .. } => (Some(message.text.as_str()), None),
            Event::Reaction { .. } => (None, Some(message.text.as_str())),
            Event::Message | Event::Deleted { .. } => (None, None),
        };
        Self {
            kind: message.event.kind(),
            room: &message.room,
            seq: message.seq,
            id: &message.id,
            ts: message.ts,
            user: &message.user,
            text,
            target: message.event.target(),
            emoji,
            added: message.event.added(),
            reply_to: message.reply_to,
            deleted: message.deleted,
            edited_at: message.edited_at,
            reactions: &message.reactions,
            client_id: own.then_some(message.client_id.as_str()),
        }
    }
}

/// A user as frames show them, encoded once: a room keeps one per member, so `joined` and
/// `members` copy each member's bytes instead of encoding (and escaping) every name again. In
/// a room filling with joins, encoding `joined`'s member list was the largest user-space cost.
#[derive(Debug)]
pub struct EncodedUser(Box<serde_json::value::RawValue>);

impl EncodedUser {
    pub fn new(user: &User) -> Self {
        // Encoding a user cannot fail (strings and a bool); `null` if it ever did.
        Self(serde_json::value::to_raw_value(user).unwrap_or_default())
    }
}

impl Serialize for EncodedUser {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

fn encode<T: Serialize>(value: &T) -> Frame {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(&[0; MAX_HEADER]);
    // Serializing these plain structs cannot fail (no maps with non-string keys, no I/O); if it
    // ever did, the client gets a clear error instead of half a frame.
    if serde_json::to_writer(&mut buf, value).is_err() {
        buf.truncate(MAX_HEADER);
        buf.extend_from_slice(br#"{"type":"error","code":"internal","message":"encoding failed"}"#);
    }
    Frame::seal(buf)
}

fn views<'a>(
    messages: impl IntoIterator<Item = &'a Message>,
    viewer: &UserId,
) -> Vec<MessageView<'a>> {
    messages
        .into_iter()
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
    /// The first members by id (at most 100); `members` pages the rest.
    pub members: &'a [&'a EncodedUser],
    pub member_count: usize,
    /// More members exist than `members` lists.
    pub more_members: bool,
    /// Oldest first; borrowed from a store page or straight from a room's log.
    pub messages: &'a [&'a Message],
    pub viewer: &'a UserId,
    pub last_seq: u64,
    pub has_more: bool,
    pub truncated: bool,
    /// The client's `since` was above the room's last seq and was dropped.
    pub reset: bool,
    /// The user's read marker in the room.
    pub read_seq: u64,
}

pub fn joined(joined: &Joined<'_>) -> Frame {
    #[derive(Serialize)]
    struct View<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        room: &'a RoomName,
        members: &'a [&'a EncodedUser],
        member_count: usize,
        more_members: bool,
        messages: Vec<MessageView<'a>>,
        last_seq: u64,
        has_more: bool,
        truncated: bool,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        reset: bool,
        read_seq: u64,
    }
    encode(&View {
        kind: "joined",
        room: joined.room,
        members: joined.members,
        member_count: joined.member_count,
        more_members: joined.more_members,
        messages: views(joined.messages.iter().copied(), joined.viewer),
        last_seq: joined.last_seq,
        has_more: joined.has_more,
        truncated: joined.truncated,
        reset: joined.reset,
        read_seq: joined.read_seq,
    })
}

/// The user's read marker in `room` moved to `seq` (on one of their connections, or another).
pub fn read_marker(room: &RoomName, seq: u64) -> Frame {
    #[derive(Serialize)]
    struct View<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        room: &'a RoomName,
        seq: u64,
    }
    encode(&View {
        kind: "read_marker",
        room,
        seq,
    })
}

/// One tick's presence changes in a room, with the member count after them. `partial`: the
/// room is too big for per-member presence, so the lists are left empty and only the count
/// changes.
pub fn presence(
    room: &RoomName,
    joined: &[User],
    left: &[User],
    member_count: usize,
    partial: bool,
) -> Frame {
    #[derive(Serialize)]
    struct View<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        room: &'a RoomName,
        joined: &'a [User],
        left: &'a [User],
        member_count: usize,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        partial: bool,
    }
    let (joined, left) = if partial {
        (&[][..], &[][..])
    } else {
        (joined, left)
    };
    encode(&View {
        kind: "presence",
        room,
        joined,
        left,
        member_count,
        partial,
    })
}

/// A page of a room's members (the answer to `members`).
pub fn members(
    room: &RoomName,
    members: &[&EncodedUser],
    member_count: usize,
    has_more: bool,
) -> Frame {
    #[derive(Serialize)]
    struct View<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        room: &'a RoomName,
        members: &'a [&'a EncodedUser],
        member_count: usize,
        has_more: bool,
    }
    encode(&View {
        kind: "members",
        room,
        members,
        member_count,
        has_more,
    })
}

/// `user` is typing in `room`.
pub fn typing(room: &RoomName, user: &User) -> Frame {
    #[derive(Serialize)]
    struct View<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        room: &'a RoomName,
        user: &'a User,
    }
    encode(&View {
        kind: "typing",
        room,
        user,
    })
}

/// The connection was removed from `room` by a moderator: it receives nothing more from it.
pub fn removed(room: &RoomName, reason: &str) -> Frame {
    #[derive(Serialize)]
    struct View<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        room: &'a RoomName,
        reason: &'a str,
    }
    encode(&View {
        kind: "removed",
        room,
        reason,
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

/// The answer to `search`: matching messages, newest first.
pub fn search_results(
    room: &RoomName,
    query: &str,
    messages: &[Message],
    viewer: &UserId,
    has_more: bool,
) -> Frame {
    #[derive(Serialize)]
    struct View<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        room: &'a RoomName,
        query: &'a str,
        messages: Vec<MessageView<'a>>,
        has_more: bool,
    }
    encode(&View {
        kind: "search_results",
        room,
        query,
        messages: views(messages, viewer),
        has_more,
    })
}

/// A message as `confab export` writes it: the shape of a `history` message, as nobody in
/// particular sees it (so without `client_id`).
pub fn export_line(message: &Message) -> String {
    // Serializing this plain struct cannot fail (no maps with non-string keys, no I/O).
    serde_json::to_string(&MessageView::new(message, None))
        .expect("a message view always serializes")
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

/// The admin view's figures (see `admin::Stats`), sent to watching administrators.
pub fn admin_stats<T: Serialize>(stats: &T) -> Frame {
    #[derive(Serialize)]
    struct View<'a, T> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(flatten)]
        stats: &'a T,
    }
    encode(&View {
        kind: "admin_stats",
        stats,
    })
}

pub fn pong() -> Frame {
    Frame::from_json(r#"{"type":"pong"}"#)
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
                guest: true,
            },
            text: "<b>hi</b>".into(),
            client_id: "c-1".into(),
            event: Event::Message,
            deleted: false,
            edited_at: None,
            reply_to: None,
            reactions: Vec::new(),
        }
    }

    fn json_of(frame: &Frame) -> Value {
        serde_json::from_str(frame.json()).unwrap()
    }

    #[test]
    fn frames_carry_a_websocket_header_sized_for_their_payload() {
        for len in [0, 125, 126, 65_535, 65_536] {
            let frame = Frame::from_json(&"x".repeat(len));
            let wire = frame.wire();
            assert_eq!(wire[0], 0x81, "FIN + text");
            let (declared, header) = match wire[1] {
                126 => (usize::from(u16::from_be_bytes([wire[2], wire[3]])), 4),
                127 => (
                    usize::try_from(u64::from_be_bytes(wire[2..10].try_into().unwrap())).unwrap(),
                    10,
                ),
                short => (usize::from(short), 2),
            };
            assert_eq!(declared, len);
            assert_eq!(wire.len(), header + len);
            assert_eq!(frame.json().len(), len);
        }
    }

    #[test]
    fn members_encoded_once_read_as_users_do() {
        let ann = sample().user;
        let zoe = User {
            id: UserId::from_trusted("u-2".into()),
            name: DisplayName::parse("zoë \"z\" <3").unwrap(),
            guest: false,
        };
        let listed = [EncodedUser::new(&ann), EncodedUser::new(&zoe)];
        let room = RoomName::parse("general").unwrap();
        let frame = json_of(&members(&room, &[&listed[0], &listed[1]], 2, false));
        assert_eq!(
            frame["members"],
            json!([ann, zoe]),
            "the same JSON as encoding the users themselves, escapes included"
        );
    }

    #[test]
    fn message_frames_show_client_id_only_to_the_sender() {
        let message = sample();
        let shared = json_of(&super::message(&message, false));
        assert_eq!(
            shared,
            json!({"type":"message","room":"general","seq":7,"id":"m-1","ts":1_700_000_000_000_i64,
                   "user":{"id":"u-1","name":"ann","guest":true},"text":"<b>hi</b>"})
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
