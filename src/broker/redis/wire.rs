//! What travels through Redis: the events on the channel and the names of the keys.
//!
//! Keys, all under the configured prefix `P`:
//! - `P:events`: the pub/sub channel.
//! - `P:node:<node>`: a node's heartbeat, expiring after `NODE_TTL`.
//! - `P:nodes`: the set of nodes that may hold presence.
//! - `P:presence:<room>`: hash, field `<node> <user id>` → the user (JSON).
//! - `P:node-rooms:<node>`: the rooms where a node has presence entries.

use serde::{Deserialize, Serialize};

use crate::broker::Control;
use crate::domain::{self, Message, RoomName, User};

/// What travels on the channel.
#[derive(Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub(super) enum Event {
    Message {
        node: String,
        conn: u64,
        message: WireMessage,
    },
    Presence {
        node: String,
        room: RoomName,
        user: User,
        present: bool,
    },
    Down {
        node: String,
    },
    Resync {
        node: String,
    },
    Control {
        node: String,
        control: Control,
    },
}

#[derive(Serialize, Deserialize)]
pub(super) struct WireMessage {
    room: String,
    seq: u64,
    id: String,
    ts: i64,
    user: User,
    text: String,
    client_id: String,
    /// `message` or an event kind; what nodes from before events sent were messages.
    #[serde(default = "message_kind")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply_to: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    added: Option<bool>,
}

fn message_kind() -> String {
    "message".into()
}

impl WireMessage {
    pub(super) fn from_message(message: &Message) -> Self {
        Self {
            room: message.room.as_str().to_owned(),
            seq: message.seq,
            id: message.id.clone(),
            ts: message.ts,
            user: message.user.clone(),
            text: message.text.clone(),
            client_id: message.client_id.clone(),
            kind: message.event.kind().into(),
            target: message.event.target(),
            deleted: message.deleted,
            reply_to: message.reply_to,
            added: message.event.added(),
        }
    }

    pub(super) fn into_message(self) -> Option<Message> {
        Some(Message {
            room: RoomName::parse(&self.room).ok()?,
            seq: self.seq,
            id: self.id,
            ts: self.ts,
            user: self.user,
            text: self.text,
            client_id: self.client_id,
            event: domain::Event::from_stored(&self.kind, self.target, self.added)?,
            deleted: self.deleted,
            // Only new items travel: no edits or reactions yet.
            edited_at: None,
            reply_to: self.reply_to,
            reactions: Vec::new(),
        })
    }
}

pub(super) struct Keys {
    pub(super) prefix: String,
}

impl Keys {
    pub(super) fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }
    pub(super) fn node(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }
    pub(super) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
    pub(super) fn presence(&self, room: &str) -> String {
        format!("{}:presence:{room}", self.prefix)
    }
    pub(super) fn node_rooms(&self, node: &str) -> String {
        format!("{}:node-rooms:{node}", self.prefix)
    }
}

pub(super) fn field(node: &str, user: &User) -> String {
    format!("{node} {}", user.id.as_str())
}

/// JSON for the channel or a hash. These are plain structs with string keys: serializing them
/// cannot fail.
pub(super) fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain structs with string keys always serialize")
}
