//! Plain domain types, parsed once at the edge: a value of one of these types is valid by
//! construction, so nothing deeper in the server re-checks it.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use unicode_normalization::UnicodeNormalization;

/// Why a value from a client was refused; each variant maps to one protocol error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum InvalidValue {
    #[error("room names are 1-64 characters of A-Z, a-z, 0-9, _ and -")]
    Room,
    #[error(
        "display names are 1-32 visible characters, without control, bidi, zero-width or invisible characters"
    )]
    Name,
    #[error(
        "messages are 1-4000 characters, not only whitespace, without control characters other than newlines and tabs"
    )]
    Text,
    #[error("client_id is 1-64 characters without control characters")]
    ClientId,
    #[error("usernames are 3-32 characters of a-z, 0-9, _, . and - (any case; stored lowercase)")]
    Username,
    #[error("passwords are 8-256 characters")]
    Password,
    #[error("a reaction is one emoji (one grapheme cluster of at most 16 bytes)")]
    Emoji,
}

const MAX_ROOM_LEN: usize = 64;
const MAX_NAME_CHARS: usize = 32;
pub const MAX_TEXT_CHARS: usize = 4000;
const MAX_CLIENT_ID_CHARS: usize = 64;

/// A room name matching `[A-Za-z0-9_-]{1,64}`. Cheap to clone: rooms are named in every frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomName(Arc<str>);

impl TryFrom<String> for RoomName {
    type Error = InvalidValue;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<RoomName> for String {
    fn from(room: RoomName) -> Self {
        room.0.to_string()
    }
}

impl RoomName {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_ROOM_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(raw.into()))
        } else {
            Err(InvalidValue::Room)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name: NFC-normalised, trimmed, 1-32 characters (counted after normalisation),
/// with at least one visible character and none of the characters that let one name pass for
/// another (see [`is_refused_in_names`]). Names are for people; identity is always the
/// [`UserId`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DisplayName(Arc<str>);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        // Normalise first: trimming and counting must see the characters people will see.
        let normalised: String = raw.nfc().collect();
        let trimmed = normalised.trim();
        let chars = trimmed.chars().count();
        let refused = trimmed
            .chars()
            .any(|c| c.is_control() || is_refused_in_names(c));
        let visible = trimmed.chars().any(|c| !is_invisible(c));
        if chars == 0 || chars > MAX_NAME_CHARS || refused || !visible {
            return Err(InvalidValue::Name);
        }
        Ok(Self(trimmed.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters refused anywhere in a display name: bidi controls (which reorder what follows,
/// so `\u{202E}ecila` shows as "alice"), and zero-width or invisible characters (which make two
/// names that look the same differ, or a name that looks empty). Emoji sequences joined with
/// U+200D are refused too, as a price of refusing U+200D; message text keeps all of these.
pub fn is_refused_in_names(c: char) -> bool {
    matches!(c,
        // Bidi controls.
        '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}'
        // Zero-width and invisible characters.
        | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{115F}' | '\u{1160}'
        | '\u{3164}' | '\u{FFA0}' | '\u{2800}'
    )
}

/// Characters that show nothing by themselves: white space, controls, the refused ones and the
/// rest of Unicode's Default_Ignorable_Code_Point set (soft hyphen, variation selectors, tags).
/// A name made only of these is refused; one of them beside visible characters is allowed.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || is_refused_in_names(c)
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}'
            | '\u{2061}'..='\u{206F}' | '\u{FE00}'..='\u{FE0F}' | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// An account's sign-in name: 3-32 of `[a-z0-9_.-]` once lowercased, so `DANA` is `dana`.
/// Unique across accounts; people see display names, and find each other by username.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let lower = raw.to_ascii_lowercase();
        let ok = (3..=32).contains(&lower.len())
            && lower
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
        if ok {
            Ok(Self(lower))
        } else {
            Err(InvalidValue::Username)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed: 8-256 characters (counted as characters, not bytes). Never stored or
/// logged; only its argon2id hash is kept.
pub struct Password(String);

impl Password {
    pub fn parse(raw: String) -> Result<Self, InvalidValue> {
        if (8..=256).contains(&raw.chars().count()) {
            Ok(Self(raw))
        } else {
            Err(InvalidValue::Password)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// Message text: 1-4000 characters, not only whitespace. Kept exactly as typed (newlines too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    pub fn parse(raw: String) -> Result<Self, InvalidValue> {
        let control = |c: char| c.is_control() && !matches!(c, '\n' | '\r' | '\t');
        if raw.trim().is_empty() || raw.chars().count() > MAX_TEXT_CHARS || raw.chars().any(control)
        {
            return Err(InvalidValue::Text);
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The client's idempotency key for a `send`: unique per user and room.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    /// A key nobody else holds, for a change the client sent without one.
    pub fn unique() -> Self {
        Self(format!("auto-{}", uuid::Uuid::now_v7()))
    }

    pub fn parse(raw: String) -> Result<Self, InvalidValue> {
        let chars = raw.chars().count();
        if chars == 0 || chars > MAX_CLIENT_ID_CHARS || raw.chars().any(char::is_control) {
            return Err(InvalidValue::ClientId);
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stable user id (UUIDv7 text). Two users may share a name, never an id. Cheap to clone:
/// a member's id is held by every room, presence list and registry it is in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(Arc<str>);

impl UserId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string().into())
    }

    /// Ids come from our own signed cookie or our own database, never from a client frame.
    pub fn from_trusted(raw: String) -> Self {
        Self(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who a connection or a message belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub name: DisplayName,
    /// A visitor without an account. Everything from before accounts existed was a guest, so
    /// that is what a missing field means.
    #[serde(default = "guest_by_default")]
    pub guest: bool,
}

fn guest_by_default() -> bool {
    true
}

impl User {
    /// A new guest: a fresh id and the name they picked.
    pub fn new_guest(name: DisplayName) -> Self {
        Self {
            id: UserId::generate(),
            name,
            guest: true,
        }
    }
}

/// What an item of a room's stream is. Every change to a room is one of these with the room's
/// next seq: a message, or an event about an earlier message (its `target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Event {
    #[default]
    Message,
    /// The message `target` was deleted (by its author or a moderator).
    Deleted { target: u64 },
    /// The author edited message `target`; the item's text is the new text.
    Edited { target: u64 },
    /// Someone reacted to message `target` (`added`) or took their reaction back; the item's
    /// text is the emoji.
    Reaction { target: u64, added: bool },
}

impl Event {
    /// The stored `kind` and the frame `type`.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Deleted { .. } => "deleted",
            Self::Edited { .. } => "edited",
            Self::Reaction { .. } => "reaction",
        }
    }

    pub fn target(self) -> Option<u64> {
        match self {
            Self::Message => None,
            Self::Deleted { target } | Self::Edited { target } | Self::Reaction { target, .. } => {
                Some(target)
            }
        }
    }

    /// Whether a reaction event added its reaction; `None` for other items.
    pub fn added(self) -> Option<bool> {
        match self {
            Self::Reaction { added, .. } => Some(added),
            _ => None,
        }
    }

    /// The item stored as `kind` with `target` (and `added`); `None` for anything unknown.
    pub fn from_stored(kind: &str, target: Option<u64>, added: Option<bool>) -> Option<Self> {
        match (kind, target) {
            ("message", _) => Some(Self::Message),
            ("deleted", Some(target)) => Some(Self::Deleted { target }),
            ("edited", Some(target)) => Some(Self::Edited { target }),
            ("reaction", Some(target)) => Some(Self::Reaction {
                target,
                added: added?,
            }),
            _ => None,
        }
    }
}

/// One emoji's reactions to a message: how many people, and the first ten of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reaction {
    pub emoji: String,
    pub count: u32,
    pub users: Vec<User>,
}

/// Users listed per emoji in a message's `reactions`.
pub const REACTION_USERS_LISTED: usize = 10;

/// An emoji to react with: one grapheme cluster, at most 16 bytes, that is an emoji (a
/// pictograph, a flag, or a keycap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emoji(String);

impl Emoji {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        use unicode_segmentation::UnicodeSegmentation;
        let one_cluster = raw.graphemes(true).count() == 1;
        let keycap = raw.ends_with('\u{20E3}')
            && raw.starts_with(|c: char| c.is_ascii_digit() || c == '#' || c == '*');
        if raw.len() <= 16 && one_cluster && (keycap || raw.chars().any(is_pictographic)) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue::Emoji)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters that are emoji by themselves: Unicode's pictographic blocks, the symbols that
/// have emoji presentation, and regional indicators (flags). An approximation of
/// Extended_Pictographic that needs no table.
fn is_pictographic(c: char) -> bool {
    matches!(c,
        '\u{1F000}'..='\u{1FAFF}' | '\u{2600}'..='\u{27BF}' | '\u{2300}'..='\u{23FF}'
        | '\u{2B00}'..='\u{2BFF}' | '\u{2190}'..='\u{21FF}' | '\u{3030}' | '\u{303D}'
        | '\u{3297}' | '\u{3299}' | '\u{00A9}' | '\u{00AE}' | '\u{203C}' | '\u{2049}'
        | '\u{2122}' | '\u{2139}' | '\u{24C2}' | '\u{25AA}'..='\u{25FE}'
    )
}

/// A stored item of a room's stream (a message or an event), as every reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub room: RoomName,
    pub seq: u64,
    pub id: String,
    /// Milliseconds since the Unix epoch, UTC.
    pub ts: i64,
    /// The author of a message; whoever acted, for an event.
    pub user: User,
    /// A message's text; empty once it is deleted, and for events without text.
    pub text: String,
    pub client_id: String,
    pub event: Event,
    /// A message removed by a later `deleted` event: shown as a tombstone.
    pub deleted: bool,
    /// When the message's text was last edited (ms since the epoch).
    pub edited_at: Option<i64>,
    /// The message this one answers.
    pub reply_to: Option<u64>,
    /// Reactions to the message, by emoji, in the order they were first given.
    pub reactions: Vec<Reaction>,
}

/// Who may read a room: anyone (`public`, what a room joined by name is) or its members only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }

    /// As stored; anything unknown reads as private, so a bad row hides rather than exposes.
    pub fn from_stored(raw: &str) -> Self {
        if raw == "public" {
            Self::Public
        } else {
            Self::Private
        }
    }
}

/// A member's role in one room, highest first: the derived order ranks them
/// (`Owner > Moderator > Member`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Moderator,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Moderator => "moderator",
            Self::Member => "member",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "owner" => Some(Self::Owner),
            "moderator" => Some(Self::Moderator),
            "member" => Some(Self::Member),
            _ => None,
        }
    }

    /// May add and remove members, ban, and set the topic.
    pub fn moderates(self) -> bool {
        self >= Self::Moderator
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_follow_the_pattern() {
        assert!(RoomName::parse("general").is_ok());
        assert!(RoomName::parse("a_b-C9").is_ok());
        assert!(RoomName::parse(&"x".repeat(64)).is_ok());
        assert_eq!(RoomName::parse(""), Err(InvalidValue::Room));
        assert_eq!(RoomName::parse(&"x".repeat(65)), Err(InvalidValue::Room));
        assert_eq!(RoomName::parse("with space"), Err(InvalidValue::Room));
        assert_eq!(RoomName::parse("café"), Err(InvalidValue::Room));
        assert_eq!(RoomName::parse("../etc"), Err(InvalidValue::Room));
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  alice ").unwrap().as_str(), "alice");
        assert!(DisplayName::parse(&"é".repeat(32)).is_ok());
        assert_eq!(DisplayName::parse("   "), Err(InvalidValue::Name));
        assert_eq!(DisplayName::parse(&"a".repeat(33)), Err(InvalidValue::Name));
        assert_eq!(DisplayName::parse("a\u{7}b"), Err(InvalidValue::Name));
        assert_eq!(DisplayName::parse("a\nb"), Err(InvalidValue::Name));
    }

    #[test]
    fn display_names_are_normalised_before_they_are_counted() {
        // "e" + combining acute is one character once composed.
        let decomposed = "e\u{301}".repeat(32);
        let name = DisplayName::parse(&decomposed).unwrap();
        assert_eq!(name.as_str(), "\u{e9}".repeat(32));
        assert_eq!(DisplayName::parse("e\u{301}"), DisplayName::parse("\u{e9}"));
        // Hangul jamo compose too: three code points, one syllable.
        assert_eq!(
            DisplayName::parse("\u{1100}\u{1161}\u{11A8}")
                .unwrap()
                .as_str(),
            "\u{AC01}"
        );
    }

    #[test]
    fn every_listed_bidi_and_invisible_character_is_refused() {
        let listed = [
            '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}',
            '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{061C}', '\u{200B}', '\u{200C}',
            '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}',
            '\u{2800}',
        ];
        for c in listed {
            for name in [
                format!("{c}"),
                format!("al{c}ice"),
                format!("{c}alice"),
                format!("alice{c}"),
            ] {
                assert_eq!(
                    DisplayName::parse(&name),
                    Err(InvalidValue::Name),
                    "{:?}",
                    name
                );
            }
        }
        // The spoof from the report: U+202E then a reversed, partly Cyrillic name.
        assert_eq!(
            DisplayName::parse("\u{202E}ecil\u{430}"),
            Err(InvalidValue::Name)
        );
        // An emoji family is joined with U+200D: refused in names (fine in messages).
        assert_eq!(
            DisplayName::parse("\u{1F468}\u{200D}\u{1F469}"),
            Err(InvalidValue::Name)
        );
        assert!(MessageText::parse("\u{1F468}\u{200D}\u{1F469} \u{202E}x".into()).is_ok());
    }

    #[test]
    fn names_with_nothing_visible_are_refused_and_anything_visible_is_kept() {
        for invisible in [
            "\u{00AD}",
            "\u{FE0F}",
            "\u{E0041}\u{E0042}",
            "\u{00A0}\u{3000}",
        ] {
            assert_eq!(
                DisplayName::parse(invisible),
                Err(InvalidValue::Name),
                "{invisible:?}"
            );
        }
        for visible in [
            "\u{1F600}",
            "\u{2764}\u{FE0F}",
            "\u{0639}\u{0644}\u{064A}",
            "\u{4E2D}\u{6587}",
            "\u{0430}lice",
            "x\u{00AD}y",
            "\u{0301}",
            "o'brien",
            "\u{1F44D}\u{1F3FD}",
        ] {
            assert!(
                DisplayName::parse(visible).is_ok(),
                "{visible:?} is visible"
            );
        }
    }

    #[test]
    fn text_counts_characters_not_bytes() {
        assert!(MessageText::parse("é".repeat(4000)).is_ok());
        assert_eq!(
            MessageText::parse("a".repeat(4001)),
            Err(InvalidValue::Text)
        );
        assert_eq!(MessageText::parse(" \n\t".into()), Err(InvalidValue::Text));
        assert_eq!(
            MessageText::parse("line\nnext".into()).unwrap().as_str(),
            "line\nnext"
        );
    }

    #[test]
    fn usernames_are_lowercased_and_bounded() {
        assert_eq!(Username::parse("DANA").unwrap().as_str(), "dana");
        assert_eq!(Username::parse("a.b_c-9").unwrap().as_str(), "a.b_c-9");
        for bad in ["ab", &"x".repeat(33), "dana!", "dàna", "da na", ""] {
            assert_eq!(Username::parse(bad), Err(InvalidValue::Username), "{bad:?}");
        }
        assert!(Password::parse("x".repeat(8)).is_ok());
        assert!(Password::parse("é".repeat(256)).is_ok());
        assert!(Password::parse("x".repeat(7)).is_err());
        assert!(Password::parse("x".repeat(257)).is_err());
    }

    #[test]
    fn client_ids_are_bounded() {
        assert!(ClientId::parse("c-1".into()).is_ok());
        assert_eq!(ClientId::parse(String::new()), Err(InvalidValue::ClientId));
        assert_eq!(ClientId::parse("x".repeat(65)), Err(InvalidValue::ClientId));
    }
}

/// A connection's id, unique within one server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl ConnectionId {
    pub fn next() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}
