//! The session-cookie decoder (`identity::user_from`) on arbitrary input: as a raw `Cookie`
//! header (parsing and the signature check), and as the value of a correctly signed cookie (the
//! base64 and JSON decoding behind the signature). It must never panic, and whatever it accepts
//! must name a valid user.
#![no_main]

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, header};
use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::{Cookie, Key};
use confab::domain::DisplayName;
use confab::identity::{self, COOKIE};
use libfuzzer_sys::fuzz_target;

static KEY: LazyLock<Key> = LazyLock::new(|| Key::derive_from(&[7u8; 64]));

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let jar = if mode % 2 == 0 {
        let Ok(value) = HeaderValue::from_bytes(rest) else {
            return;
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, value);
        SignedCookieJar::from_headers(&headers, KEY.clone())
    } else {
        let value = String::from_utf8_lossy(rest).into_owned();
        SignedCookieJar::new(KEY.clone()).add(Cookie::new(COOKIE, value))
    };
    if let Some(user) = identity::user_from(&jar) {
        assert!(DisplayName::parse(user.name.as_str()).is_ok(), "{user:?}");
    }
});
