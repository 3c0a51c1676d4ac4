//! The payload each bench message carries, `b:<sender>:<n>:<ns>`: which client sent it, its
//! number on that client, and when it was written, in ns since a process-wide base instant.
//!
//! The write time is stamped rather than the time the schedule said: tokio's timer fires up
//! to a millisecond late, which would add a constant error to every sub-millisecond figure.
//! How far senders fell behind their schedule is measured separately (the send lag), so a
//! sender held up by a slow server cannot hide that delay (coordinated omission).

use std::sync::OnceLock;
use std::time::Instant;

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Nanoseconds from the process base to `at` (0 if `at` is before the base).
pub fn ns_at(at: Instant) -> u64 {
    at.saturating_duration_since(base()).as_nanos() as u64
}

/// Nanoseconds from the process base to now.
pub fn now_ns() -> u64 {
    ns_at(Instant::now())
}

/// Bytes every payload is padded to (after a space), 0 for none; set once by scenarios that
/// measure a given message size (`persist`).
static TEXT_BYTES: OnceLock<usize> = OnceLock::new();

/// Pads every payload from now on to `bytes` (payloads longer than that stay as they are).
pub fn pad_texts_to(bytes: usize) {
    let _ = TEXT_BYTES.set(bytes);
}

/// A decoded payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sender: u32,
    pub n: u64,
    pub sent_ns: u64,
}

impl Stamp {
    /// The message text for this stamp.
    pub fn encode(&self) -> String {
        let mut text = format!("b:{}:{}:{}", self.sender, self.n, self.sent_ns);
        let pad_to = TEXT_BYTES.get().copied().unwrap_or(0);
        if text.len() + 1 < pad_to {
            text.push(' ');
            text.extend(std::iter::repeat_n('.', pad_to - text.len()));
        }
        text
    }

    /// Decodes a message text; `None` for text that is not a bench payload. Anything after a
    /// fourth `:` is padding (the `burst` scenario's long texts) and is ignored.
    pub fn parse(text: &str) -> Option<Stamp> {
        let mut parts = text.strip_prefix("b:")?.split(':');
        Some(Stamp {
            sender: parts.next()?.parse().ok()?,
            n: parts.next()?.parse().ok()?,
            sent_ns: parts.next()?.split(' ').next()?.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_survives_encoding() {
        let stamp = Stamp {
            sender: 7,
            n: 42,
            sent_ns: 123_456_789,
        };
        assert_eq!(stamp.encode(), "b:7:42:123456789");
        assert_eq!(Stamp::parse(&stamp.encode()), Some(stamp));
    }

    #[test]
    fn padding_after_a_fourth_colon_is_ignored() {
        let stamp = Stamp {
            sender: 1,
            n: 2,
            sent_ns: 3,
        };
        assert_eq!(Stamp::parse("b:1:2:3:xxxxxxxx"), Some(stamp));
    }

    #[test]
    fn a_padded_stamp_still_decodes() {
        let stamp = Stamp {
            sender: 7,
            n: 42,
            sent_ns: 123_456_789,
        };
        let padded = format!("{} {}", stamp.encode(), ".".repeat(80));
        assert_eq!(Stamp::parse(&padded), Some(stamp));
    }

    #[test]
    fn other_texts_are_not_stamps() {
        assert_eq!(Stamp::parse("hello"), None);
        assert_eq!(Stamp::parse("b:1:2"), None);
        assert_eq!(Stamp::parse("b:x:2:3"), None);
    }
}
