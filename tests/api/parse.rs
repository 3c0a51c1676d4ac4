//! Property tests of the client-frame parser against the wire contract in `docs/protocol.md`:
//! it never panics, and it accepts a frame exactly when the documented framing and value rules
//! hold, refusing it otherwise with one of the documented codes.

use confab::protocol::client::{ClientFrame, Ref, parse};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Strings near the edges of the value rules: valid, empty, too long, with control characters,
/// whitespace only, non-ASCII.
fn edgy_string(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-]{1,64}",
        "[A-Za-z0-9_-]{65,70}",
        Just(String::new()),
        "[ \t\n]{1,5}",
        "\\PC{1,40}",
        "[a-z]{0,5}[\u{0}-\u{1f}\u{7f}-\u{9f}][a-z]{0,5}",
        "[a-z\n\r\t]{1,10}",
        (1..=2usize).prop_map(move |n| "é".repeat(max - 1 + n)),
        Just("é".repeat(max)),
    ]
}

/// A JSON value for a field: usually a string, sometimes another type or absent (`None`).
fn string_field(max: usize) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        8 => edgy_string(max).prop_map(|s| Some(Value::String(s))),
        1 => Just(None),
        1 => prop_oneof![Just(json!(7)), Just(json!(null)), Just(json!(["x"])), Just(json!(true))].prop_map(Some),
    ]
}

fn integer_field() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        6 => (0u64..=u64::MAX).prop_map(|n| Some(json!(n))),
        2 => (-5i64..=205).prop_map(|n| Some(json!(n))),
        1 => Just(None),
        1 => prop_oneof![Just(json!("3")), Just(json!(1.5)), Just(json!(null))].prop_map(Some),
    ]
}

fn reference() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        3 => Just(None),
        2 => any::<i64>().prop_map(|n| Some(json!(n))),
        2 => "\\PC{0,70}".prop_map(|s| Some(json!(s))),
        1 => prop_oneof![Just(json!(true)), Just(json!(1.5)), Just(json!({}))].prop_map(Some),
    ]
}

#[derive(Debug, Clone)]
struct Fields {
    kind: Option<Value>,
    room: Option<Value>,
    text: Option<Value>,
    client_id: Option<Value>,
    since: Option<Value>,
    before: Option<Value>,
    limit: Option<Value>,
    after: Option<Value>,
    seq: Option<Value>,
    reference: Option<Value>,
    extra: bool,
}

fn fields() -> impl Strategy<Value = Fields> {
    let kind = prop_oneof![
        8 => prop::sample::select(vec!["join", "leave", "send", "history", "rooms", "ping", "members", "delete"])
            .prop_map(|k| Some(json!(k))),
        1 => Just(None),
        1 => prop_oneof![Just(json!("JOIN")), Just(json!("members!")), Just(json!(3))].prop_map(Some),
    ];
    (
        kind,
        string_field(64),
        string_field(4000),
        string_field(64),
        integer_field(),
        integer_field(),
        integer_field(),
        (
            string_field(64),
            integer_field(),
            reference(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                kind,
                room,
                text,
                client_id,
                since,
                before,
                limit,
                (after, seq, reference, extra),
            )| {
                Fields {
                    seq,
                    kind,
                    room,
                    text,
                    client_id,
                    since,
                    before,
                    limit,
                    after,
                    reference,
                    extra,
                }
            },
        )
}

impl Fields {
    fn frame(&self) -> Value {
        let mut object = Map::new();
        let mut put = |name: &str, value: &Option<Value>| {
            if let Some(value) = value {
                object.insert(name.to_owned(), value.clone());
            }
        };
        put("type", &self.kind);
        put("room", &self.room);
        put("text", &self.text);
        put("client_id", &self.client_id);
        put("since", &self.since);
        put("before", &self.before);
        put("limit", &self.limit);
        if self.kind == Some(json!("members")) {
            put("after", &self.after);
        }
        if self.kind == Some(json!("delete")) {
            put("seq", &self.seq);
        }
        put("ref", &self.reference);
        if self.extra {
            object.insert("unknown_field".into(), json!({"ignored": true}));
        }
        Value::Object(object)
    }

    /// The documented answer: `Ok(())` or the set of codes the rules allow (several rules can
    /// be broken at once; the contract does not say which one is named).
    fn expected(&self) -> Result<(), Vec<&'static str>> {
        let kind = match &self.kind {
            Some(Value::String(kind))
                if [
                    "join", "leave", "send", "history", "rooms", "ping", "members", "delete",
                ]
                .contains(&kind.as_str()) =>
            {
                kind.as_str()
            }
            _ => return Err(vec!["unknown_type"]),
        };
        let string = |field: &Option<Value>| matches!(field, Some(Value::String(_)));
        let unsigned =
            |field: &Option<Value>| matches!(field, Some(Value::Number(n)) if n.is_u64());
        let integer = |field: &Option<Value>| matches!(field, Some(Value::Number(n)) if n.is_i64() || n.is_u64());
        let since_ok = matches!(&self.since, None | Some(Value::Null)) || unsigned(&self.since);
        let ref_ok = match &self.reference {
            None | Some(Value::String(_)) => true,
            Some(Value::Number(n)) => n.is_i64(),
            _ => false,
        };
        let limit_fits_i64 = matches!(&self.limit, Some(Value::Number(n)) if n.is_i64());
        let well_formed = ref_ok
            && match kind {
                "join" => string(&self.room) && since_ok,
                "leave" => string(&self.room),
                "send" => string(&self.room) && string(&self.text) && string(&self.client_id),
                "history" => {
                    string(&self.room)
                        && unsigned(&self.before)
                        && integer(&self.limit)
                        && limit_fits_i64
                }
                // `after` and `limit` are optional; `null` counts as absent.
                "members" => {
                    string(&self.room)
                        && (matches!(&self.after, None | Some(Value::Null)) || string(&self.after))
                        && (matches!(&self.limit, None | Some(Value::Null)) || limit_fits_i64)
                }
                // `client_id` is optional; `null` counts as absent.
                "delete" => {
                    string(&self.room)
                        && unsigned(&self.seq)
                        && (matches!(&self.client_id, None | Some(Value::Null))
                            || string(&self.client_id))
                }
                _ => true,
            };
        if !well_formed {
            return Err(vec!["bad_frame"]);
        }
        let text_of = |field: &Option<Value>| match field {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let mut broken = Vec::new();
        if ["join", "leave", "send", "history", "members", "delete"].contains(&kind)
            && !room_rule(&text_of(&self.room))
        {
            broken.push("invalid_room");
        }
        if kind == "send" {
            if !client_id_rule(&text_of(&self.client_id)) {
                broken.push("invalid_client_id");
            }
            if !text_rule(&text_of(&self.text)) {
                broken.push("invalid_text");
            }
        }
        if kind == "delete"
            && let Some(Value::String(client_id)) = &self.client_id
            && !client_id_rule(client_id)
        {
            broken.push("invalid_client_id");
        }
        if kind == "history" {
            let limit = self.limit.as_ref().and_then(Value::as_i64).unwrap_or(0);
            if !(1..=100).contains(&limit) {
                broken.push("invalid_limit");
            }
        }
        if kind == "members" {
            // A user id: 1-64 characters.
            if let Some(Value::String(after)) = &self.after
                && !(1..=64).contains(&after.chars().count())
            {
                broken.push("bad_frame");
            }
            let limit = self.limit.as_ref().and_then(Value::as_i64).unwrap_or(100);
            if !(1..=100).contains(&limit) {
                broken.push("invalid_limit");
            }
        }
        if broken.is_empty() {
            Ok(())
        } else {
            Err(broken)
        }
    }
}

/// `[A-Za-z0-9_-]{1,64}`.
fn room_rule(room: &str) -> bool {
    (1..=64).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// 1-64 characters, no control characters.
fn client_id_rule(id: &str) -> bool {
    (1..=64).contains(&id.chars().count()) && !id.chars().any(char::is_control)
}

/// 1-4,000 characters, not only whitespace, no control characters but newline, CR and tab.
fn text_rule(text: &str) -> bool {
    (1..=4000).contains(&text.chars().count())
        && !text.trim().is_empty()
        && !text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_answered_without_panicking(text in "\\PC{0,200}|[{}\\[\\]\":,a-z0-9 ]{0,80}") {
        match parse(&text) {
            Ok(_) => {}
            Err(rejection) => prop_assert!(!rejection.code.as_str().is_empty()),
        }
    }

    #[test]
    fn json_that_is_not_an_object_is_bad_json(value in prop_oneof![
        Just(json!(null)), any::<i64>().prop_map(|n| json!(n)), "\\PC{0,20}".prop_map(|s| json!(s)),
        Just(json!([{"type": "ping"}])),
    ]) {
        let rejection = parse(&value.to_string()).expect_err("only objects are frames");
        prop_assert_eq!(rejection.code.as_str(), "bad_json");
    }

    #[test]
    fn frames_are_accepted_or_refused_exactly_as_documented(fields in fields()) {
        let frame = fields.frame();
        let outcome = parse(&frame.to_string());
        match (fields.expected(), outcome) {
            (Ok(()), Ok((parsed, _))) => prop_assert!(matches_input(&parsed, &frame), "{parsed:?} from {frame}"),
            (Ok(()), Err(rejection)) => prop_assert!(false, "refused a valid frame {frame}: {rejection:?}"),
            (Err(codes), Ok((parsed, _))) => prop_assert!(false, "accepted {frame} as {parsed:?}; expected one of {codes:?}"),
            (Err(codes), Err(rejection)) => {
                prop_assert!(codes.contains(&rejection.code.as_str()), "{frame}: got {:?}, expected one of {codes:?}", rejection.code);
                prop_assert_eq!(rejection.reference, expected_ref(&frame, rejection.code.as_str()), "ref echoed for {}", frame);
            }
        }
    }
}

/// The `ref` an error must echo: the frame's own when it is an integer or a string of at most
/// 64 characters; for a well-formed `send` without one, its `client_id` (same bound).
fn expected_ref(frame: &Value, code: &str) -> Option<Ref> {
    let acceptable = |value: &Value| match value {
        Value::Number(n) => n.as_i64().map(Ref::Int),
        Value::String(s) if s.chars().count() <= 64 => Some(Ref::Text(s.clone())),
        _ => None,
    };
    match frame.get("ref") {
        Some(value) => acceptable(value),
        None if (frame["type"] == "send" || frame["type"] == "delete")
            && !["bad_frame", "unknown_type"].contains(&code) =>
        {
            acceptable(&frame["client_id"])
        }
        None => None,
    }
}

fn matches_input(parsed: &ClientFrame, frame: &Value) -> bool {
    let text = |name: &str| frame[name].as_str().unwrap_or_default();
    match parsed {
        ClientFrame::Join { room, since } => {
            room.as_str() == text("room") && *since == frame["since"].as_u64()
        }
        ClientFrame::Leave { room } => room.as_str() == text("room"),
        ClientFrame::Send {
            room,
            text: body,
            client_id,
            reply_to,
        } => {
            *reply_to == frame["reply_to"].as_u64()
                && room.as_str() == text("room")
                && body.as_str() == text("text")
                && client_id.as_str() == text("client_id")
        }
        ClientFrame::History {
            room,
            before,
            limit,
        } => {
            room.as_str() == text("room")
                && Some(*before) == frame["before"].as_u64()
                && Some(i64::from(*limit)) == frame["limit"].as_i64()
        }
        ClientFrame::Delete {
            room,
            seq,
            client_id,
        } => {
            room.as_str() == text("room")
                && Some(*seq) == frame["seq"].as_u64()
                && client_id.as_ref().map(|c| c.as_str()) == frame["client_id"].as_str()
        }
        ClientFrame::Edit {
            room,
            seq,
            text: body,
            ..
        } => {
            room.as_str() == text("room")
                && Some(*seq) == frame["seq"].as_u64()
                && body.as_str() == text("text")
        }
        ClientFrame::React {
            room, seq, emoji, ..
        } => {
            room.as_str() == text("room")
                && Some(*seq) == frame["seq"].as_u64()
                && emoji.as_str() == text("emoji")
        }
        ClientFrame::Typing { room } => room.as_str() == text("room"),
        ClientFrame::Read { room, seq } => {
            room.as_str() == text("room") && Some(*seq) == frame["seq"].as_u64()
        }
        ClientFrame::Search { room, query, .. } => {
            room.as_str() == text("room") && query.as_str() == text("query")
        }
        ClientFrame::Rooms => frame["type"] == "rooms",
        ClientFrame::Ping => frame["type"] == "ping",
        ClientFrame::AdminWatch => frame["type"] == "admin_watch",
        ClientFrame::AdminUnwatch => frame["type"] == "admin_unwatch",
        ClientFrame::Members { room, after, limit } => {
            room.as_str() == text("room")
                && after.as_ref().map(|a| a.as_str()) == frame["after"].as_str()
                && i64::from(*limit) == frame["limit"].as_i64().unwrap_or(100)
        }
    }
}
