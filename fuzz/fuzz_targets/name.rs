//! Display-name validation (`DisplayName::parse`) on arbitrary text. It must never panic, and
//! an accepted name must be NFC, trimmed, 1-32 characters, free of refused characters, and
//! accepted again unchanged (parsing is idempotent).
#![no_main]

use confab::domain::{DisplayName, is_refused_in_names};
use libfuzzer_sys::fuzz_target;
use unicode_normalization::is_nfc;

fuzz_target!(|raw: &str| {
    let Ok(name) = DisplayName::parse(raw) else {
        return;
    };
    let text = name.as_str();
    let chars = text.chars().count();
    assert!((1..=32).contains(&chars), "{text:?}");
    assert!(is_nfc(text), "{text:?}");
    assert_eq!(text, text.trim(), "{text:?}");
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() || is_refused_in_names(c)),
        "{text:?}"
    );
    assert_eq!(
        DisplayName::parse(text).as_ref().map(DisplayName::as_str),
        Ok(text)
    );
});
