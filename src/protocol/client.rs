//! Client → server frames: one JSON parse on the happy path, then validation into domain types,
//! so a rejected frame never reaches room or storage code.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ErrorCode, MAX_HISTORY_LIMIT, MAX_MEMBERS_LIMIT};
use crate::domain::{ClientId, Emoji, InvalidValue, MessageText, RoomName, UserId};

/// A client's optional correlation value, echoed in the `error` its frame causes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ref {
    Int(i64),
    Text(String),
}

/// A validated client frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    Join {
        room: RoomName,
        since: Option<u64>,
    },
    Leave {
        room: RoomName,
    },
    Send {
        room: RoomName,
        text: MessageText,
        client_id: ClientId,
        /// The message of the room this one answers.
        reply_to: Option<u64>,
    },
    History {
        room: RoomName,
        before: u64,
        limit: u32,
    },
    /// Delete message `seq` of `room` (one's own, or any as a moderator).
    Delete {
        room: RoomName,
        seq: u64,
        client_id: Option<ClientId>,
    },
    /// Replace the text of one's own message `seq` of `room`.
    Edit {
        room: RoomName,
        seq: u64,
        text: MessageText,
        client_id: Option<ClientId>,
    },
    /// React to message `seq` with `emoji` (`added`), or take that reaction back.
    React {
        room: RoomName,
        seq: u64,
        emoji: Emoji,
        added: bool,
        client_id: Option<ClientId>,
    },
    Rooms,
    Ping,
    /// A server administrator's admin view: `admin_stats` every second until `AdminUnwatch`.
    AdminWatch,
    AdminUnwatch,
    /// The user is typing in `room` (ephemeral: no seq, not stored).
    Typing {
        room: RoomName,
    },
    /// The user has read `room` up to `seq`.
    Read {
        room: RoomName,
        seq: u64,
    },
    /// A page of a room's members, in id order, after the member `after`.
    Members {
        room: RoomName,
        after: Option<UserId>,
        limit: u32,
    },
    /// Messages of `room` whose current text has every word of `query`, newest first, with a
    /// seq below `before` (0: from the newest).
    Search {
        room: RoomName,
        query: String,
        before: u64,
        limit: u32,
    },
}

/// Why a frame was refused, ready to become an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: ErrorCode,
    pub message: String,
    pub reference: Option<Ref>,
}

const KNOWN_TYPES: [&str; 16] = [
    "join",
    "leave",
    "send",
    "history",
    "rooms",
    "ping",
    "members",
    "delete",
    "edit",
    "react",
    "unreact",
    "typing",
    "search",
    "read",
    "admin_watch",
    "admin_unwatch",
];
/// Longest `search.query`, and `search.limit`'s default and bound.
const MAX_QUERY_CHARS: usize = 200;
const DEFAULT_SEARCH_LIMIT: u32 = 20;
const MAX_SEARCH_LIMIT: u32 = 100;
/// Longest `members.after` accepted: user ids are 36-character UUIDs.
const MAX_USER_ID_CHARS: usize = 64;
const MAX_REF_CHARS: usize = 64;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire {
    Join {
        room: String,
        since: Option<u64>,
        #[serde(rename = "ref")]
        reference: Option<Ref>,
    },
    Leave {
        room: String,
        #[serde(rename = "ref")]
        reference: Option<Ref>,
    },
    Send {
        room: String,
        text: String,
        client_id: String,
        reply_to: Option<u64>,
        #[serde(rename = "ref")]
        reference: Option<Ref>,
    },
    History {
        room: String,
        before: u64,
        limit: i64,
        #[serde(rename = "ref")]
        reference: Option<Ref>,
    },
    Delete {
        room: String,
        seq: u64,
        client_id: Option<String>,
        #[serde(rename = "ref")]
        reference: Option<Ref>,
    },
    Edit {
        room: String,
        seq: u64,
        text: String,
        client_id: Option<String>,
        #[serde(rename = "ref")]
        reference: Option<Ref>,
    },
    React {
        room: String,
        seq: u64,
        emoji: String,
        client_id: Option<String>,
        #[serde(rename = "ref")]
        reference: Option<Ref>,
    },
    Unreact {
        room: String,
        seq: u64,
        emoji: String,
        client_id: Option<String>,
        #[serde(rename = "ref")]
        reference: Option<Ref>,
    },
    Rooms {
        #[serde(rename = "ref")]
        reference: Option<Ref>,
    },
    Typing {
        room: String,
        #[serde(rename = "ref")]
        reference: Option<Ref>,
    },
    Read {
        room: String,
        seq: u64,
        #[serde(rename = "ref")]
        reference: Option<Ref>,
    },
    Search {
        room: String,
        query: String,
        before: Option<u64>,
        limit: Option<i64>,
        #[serde(rename = "ref")]
        reference: Option<Ref>,
    },
    Ping {
        #[serde(rename = "ref")]
        reference: Option<Ref>,
    },
    AdminWatch {
        #[serde(rename = "ref")]
        reference: Option<Ref>,
    },
    AdminUnwatch {
        #[serde(rename = "ref")]
        reference: Option<Ref>,
    },
    Members {
        room: String,
        after: Option<String>,
        limit: Option<i64>,
        #[serde(rename = "ref")]
        reference: Option<Ref>,
    },
}

/// Parses one text frame. On success also returns the frame's `ref`, if any.
pub fn parse(text: &str) -> Result<(ClientFrame, Option<Ref>), Rejection> {
    let wire: Wire = serde_json::from_str(text).map_err(|err| classify(text, &err))?;
    validate(wire)
}

/// A `react` (`added`) or `unreact` frame, validated.
fn reaction(
    room: &str,
    seq: u64,
    emoji: &str,
    client_id: Option<String>,
    reference: Option<Ref>,
    added: bool,
) -> Result<(ClientFrame, Option<Ref>), Rejection> {
    let reference = reference.or_else(|| client_id.clone().map(Ref::Text));
    let parsed = RoomName::parse(room).and_then(|room| {
        Ok(ClientFrame::React {
            room,
            seq,
            client_id: client_id.map(ClientId::parse).transpose()?,
            emoji: Emoji::parse(emoji)?,
            added,
        })
    });
    match parsed {
        Ok(frame) => Ok((frame, reference)),
        Err(invalid) => Err(Rejection {
            code: invalid.into(),
            message: invalid.to_string(),
            reference: reference.filter(ref_is_acceptable),
        }),
    }
}

fn validate(wire: Wire) -> Result<(ClientFrame, Option<Ref>), Rejection> {
    let reject = |invalid: InvalidValue, reference: Option<Ref>| Rejection {
        code: invalid.into(),
        message: invalid.to_string(),
        reference: reference.filter(ref_is_acceptable),
    };
    match wire {
        Wire::Join {
            room,
            since,
            reference,
        } => match RoomName::parse(&room) {
            Ok(room) => Ok((ClientFrame::Join { room, since }, reference)),
            Err(e) => Err(reject(e, reference)),
        },
        Wire::Leave { room, reference } => match RoomName::parse(&room) {
            Ok(room) => Ok((ClientFrame::Leave { room }, reference)),
            Err(e) => Err(reject(e, reference)),
        },
        Wire::Send {
            room,
            text,
            client_id,
            reply_to,
            reference,
        } => {
            // A failed send names its client_id, so a client knows which pending line failed.
            let reference = reference.or_else(|| Some(Ref::Text(client_id.clone())));
            let parsed = RoomName::parse(&room).and_then(|room| {
                let client_id = ClientId::parse(client_id)?;
                let text = MessageText::parse(text)?;
                Ok(ClientFrame::Send {
                    room,
                    text,
                    client_id,
                    reply_to,
                })
            });
            match parsed {
                Ok(frame) => Ok((frame, reference)),
                Err(e) => Err(reject(e, reference)),
            }
        }
        Wire::Delete {
            room,
            seq,
            client_id,
            reference,
        } => {
            let reference = reference.or_else(|| client_id.clone().map(Ref::Text));
            let parsed = RoomName::parse(&room).and_then(|room| {
                let client_id = client_id.map(ClientId::parse).transpose()?;
                Ok(ClientFrame::Delete {
                    room,
                    seq,
                    client_id,
                })
            });
            match parsed {
                Ok(frame) => Ok((frame, reference)),
                Err(e) => Err(reject(e, reference)),
            }
        }
        Wire::Edit {
            room,
            seq,
            text,
            client_id,
            reference,
        } => {
            let reference = reference.or_else(|| client_id.clone().map(Ref::Text));
            let parsed = RoomName::parse(&room).and_then(|room| {
                Ok(ClientFrame::Edit {
                    room,
                    seq,
                    client_id: client_id.map(ClientId::parse).transpose()?,
                    text: MessageText::parse(text)?,
                })
            });
            match parsed {
                Ok(frame) => Ok((frame, reference)),
                Err(e) => Err(reject(e, reference)),
            }
        }
        Wire::React {
            room,
            seq,
            emoji,
            client_id,
            reference,
        } => reaction(&room, seq, &emoji, client_id, reference, true),
        Wire::Unreact {
            room,
            seq,
            emoji,
            client_id,
            reference,
        } => reaction(&room, seq, &emoji, client_id, reference, false),
        Wire::History {
            room,
            before,
            limit,
            reference,
        } => {
            let room = match RoomName::parse(&room) {
                Ok(room) => room,
                Err(e) => return Err(reject(e, reference)),
            };
            match u32::try_from(limit) {
                Ok(limit) if (1..=MAX_HISTORY_LIMIT).contains(&limit) => Ok((
                    ClientFrame::History {
                        room,
                        before,
                        limit,
                    },
                    reference,
                )),
                _ => Err(Rejection {
                    code: ErrorCode::InvalidLimit,
                    message: format!("history limit must be 1-{MAX_HISTORY_LIMIT}"),
                    reference: reference.filter(ref_is_acceptable),
                }),
            }
        }
        Wire::Rooms { reference } => Ok((ClientFrame::Rooms, reference)),
        Wire::Typing { room, reference } => match RoomName::parse(&room) {
            Ok(room) => Ok((ClientFrame::Typing { room }, reference)),
            Err(e) => Err(reject(e, reference)),
        },
        Wire::Read {
            room,
            seq,
            reference,
        } => match RoomName::parse(&room) {
            Ok(room) => Ok((ClientFrame::Read { room, seq }, reference)),
            Err(e) => Err(reject(e, reference)),
        },
        Wire::Ping { reference } => Ok((ClientFrame::Ping, reference)),
        Wire::AdminWatch { reference } => Ok((ClientFrame::AdminWatch, reference)),
        Wire::AdminUnwatch { reference } => Ok((ClientFrame::AdminUnwatch, reference)),
        Wire::Search {
            room,
            query,
            before,
            limit,
            reference,
        } => {
            let room = match RoomName::parse(&room) {
                Ok(room) => room,
                Err(e) => return Err(reject(e, reference)),
            };
            if query.chars().count() > MAX_QUERY_CHARS {
                return Err(Rejection {
                    code: ErrorCode::BadFrame,
                    message: format!("`query` is at most {MAX_QUERY_CHARS} characters"),
                    reference: reference.filter(ref_is_acceptable),
                });
            }
            match limit.map_or(Ok(DEFAULT_SEARCH_LIMIT), u32::try_from) {
                Ok(limit) if (1..=MAX_SEARCH_LIMIT).contains(&limit) => {
                    let before = before.unwrap_or(0);
                    let frame = ClientFrame::Search {
                        room,
                        query,
                        before,
                        limit,
                    };
                    Ok((frame, reference))
                }
                _ => Err(Rejection {
                    code: ErrorCode::InvalidLimit,
                    message: format!("`limit` is 1-{MAX_SEARCH_LIMIT}"),
                    reference: reference.filter(ref_is_acceptable),
                }),
            }
        }
        Wire::Members {
            room,
            after,
            limit,
            reference,
        } => {
            let room = match RoomName::parse(&room) {
                Ok(room) => room,
                Err(e) => return Err(reject(e, reference)),
            };
            let after = match after {
                Some(after) if after.is_empty() || after.chars().count() > MAX_USER_ID_CHARS => {
                    return Err(Rejection {
                        code: ErrorCode::BadFrame,
                        message: format!(
                            "`after` is a user id of 1-{MAX_USER_ID_CHARS} characters"
                        ),
                        reference: reference.filter(ref_is_acceptable),
                    });
                }
                Some(after) => Some(UserId::from_trusted(after)),
                None => None,
            };
            match limit.map_or(Ok(MAX_MEMBERS_LIMIT), u32::try_from) {
                Ok(limit) if (1..=MAX_MEMBERS_LIMIT).contains(&limit) => {
                    Ok((ClientFrame::Members { room, after, limit }, reference))
                }
                _ => Err(Rejection {
                    code: ErrorCode::InvalidLimit,
                    message: format!("members limit must be 1-{MAX_MEMBERS_LIMIT}"),
                    reference: reference.filter(ref_is_acceptable),
                }),
            }
        }
    }
}

fn ref_is_acceptable(reference: &Ref) -> bool {
    match reference {
        Ref::Int(_) => true,
        Ref::Text(text) => text.chars().count() <= MAX_REF_CHARS,
    }
}

/// The slow path, only for frames that failed to parse: tell bad JSON from an unknown type from
/// a missing or mistyped field, and recover the `ref` where possible.
fn classify(text: &str, err: &serde_json::Error) -> Rejection {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) else {
        return Rejection {
            code: ErrorCode::BadJson,
            message: "frames are JSON objects".into(),
            reference: None,
        };
    };
    let reference = object
        .get("ref")
        .and_then(|value| serde_json::from_value::<Ref>(value.clone()).ok())
        .filter(ref_is_acceptable);
    let kind = object.get("type").and_then(Value::as_str);
    match kind {
        Some(kind) if KNOWN_TYPES.contains(&kind) => Rejection {
            code: ErrorCode::BadFrame,
            message: format!("bad `{kind}` frame: {}", field_error(err)),
            reference,
        },
        _ => Rejection {
            code: ErrorCode::UnknownType,
            message: format!("`type` must be one of {}", KNOWN_TYPES.join(", ")),
            reference,
        },
    }
}

/// serde's message without its "at line 1 column 42" tail, which means nothing to a client.
fn field_error(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.find(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(text: &str) -> ErrorCode {
        parse(text).expect_err("frame should be rejected").code
    }

    #[test]
    fn parses_every_frame_type() {
        let (frame, reference) = parse(r#"{"type":"join","room":"r","since":3,"ref":7}"#).unwrap();
        assert_eq!(
            frame,
            ClientFrame::Join {
                room: RoomName::parse("r").unwrap(),
                since: Some(3)
            }
        );
        assert_eq!(reference, Some(Ref::Int(7)));
        assert!(matches!(
            parse(r#"{"type":"leave","room":"r"}"#),
            Ok((ClientFrame::Leave { .. }, None))
        ));
        assert!(matches!(
            parse(r#"{"type":"send","room":"r","text":"hi","client_id":"c"}"#),
            Ok((ClientFrame::Send { .. }, Some(Ref::Text(_))))
        ));
        assert!(matches!(
            parse(r#"{"type":"history","room":"r","before":10,"limit":100}"#),
            Ok((ClientFrame::History { limit: 100, .. }, None))
        ));
        assert!(matches!(
            parse(r#"{"type":"rooms"}"#),
            Ok((ClientFrame::Rooms, None))
        ));
        assert!(matches!(
            parse(r#"{"type":"ping","extra":1}"#),
            Ok((ClientFrame::Ping, None))
        ));
        assert!(matches!(
            parse(r#"{"type":"members","room":"r"}"#),
            Ok((
                ClientFrame::Members {
                    after: None,
                    limit: 100,
                    ..
                },
                None
            ))
        ));
        assert!(matches!(
            parse(r#"{"type":"members","room":"r","after":"u-1","limit":5}"#),
            Ok((
                ClientFrame::Members {
                    after: Some(_),
                    limit: 5,
                    ..
                },
                None
            ))
        ));
        assert_eq!(
            code_of(r#"{"type":"members","room":"r","limit":0}"#),
            ErrorCode::InvalidLimit
        );
        assert_eq!(
            code_of(r#"{"type":"members","room":"r","after":""}"#),
            ErrorCode::BadFrame
        );
    }

    #[test]
    fn tells_bad_json_from_unknown_type_from_bad_fields() {
        assert_eq!(code_of("{not json"), ErrorCode::BadJson);
        assert_eq!(code_of("[1,2]"), ErrorCode::BadJson);
        assert_eq!(code_of(r#""join""#), ErrorCode::BadJson);
        assert_eq!(code_of(r#"{"type":"shout"}"#), ErrorCode::UnknownType);
        assert_eq!(code_of(r#"{"room":"r"}"#), ErrorCode::UnknownType);
        assert_eq!(code_of(r#"{"type":42}"#), ErrorCode::UnknownType);
        assert_eq!(code_of(r#"{"type":"join"}"#), ErrorCode::BadFrame);
        assert_eq!(code_of(r#"{"type":"join","room":5}"#), ErrorCode::BadFrame);
        assert_eq!(
            code_of(r#"{"type":"join","room":"r","since":-1}"#),
            ErrorCode::BadFrame
        );
        assert_eq!(
            code_of(r#"{"type":"send","room":"r","text":"x"}"#),
            ErrorCode::BadFrame
        );
    }

    #[test]
    fn checks_values() {
        assert_eq!(
            code_of(r#"{"type":"join","room":"no spaces"}"#),
            ErrorCode::InvalidRoom
        );
        assert_eq!(
            code_of(r#"{"type":"send","room":"r","text":"  ","client_id":"c"}"#),
            ErrorCode::InvalidText
        );
        assert_eq!(
            code_of(r#"{"type":"send","room":"r","text":"x","client_id":""}"#),
            ErrorCode::InvalidClientId
        );
        for limit in ["0", "101", "-5"] {
            let frame = format!(r#"{{"type":"history","room":"r","before":1,"limit":{limit}}}"#);
            assert_eq!(code_of(&frame), ErrorCode::InvalidLimit, "limit {limit}");
        }
    }

    #[test]
    fn a_failed_send_names_its_client_id() {
        let rejection =
            parse(r#"{"type":"send","room":"r","text":"","client_id":"c-9"}"#).unwrap_err();
        assert_eq!(rejection.reference, Some(Ref::Text("c-9".into())));
        let rejection = parse(r#"{"type":"shout","ref":"x1"}"#).unwrap_err();
        assert_eq!(rejection.reference, Some(Ref::Text("x1".into())));
    }
}
