//! Who a request is: guest identities carried in a signed cookie, and the key that signs it.
//! The cookie holds the user's id and display name, so checking it needs no database and a
//! session survives restarts for as long as the key does.

use std::io::Write;
use std::path::Path;

use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::{Cookie, Key, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::domain::{DisplayName, User};

pub const COOKIE: &str = "confab_session";
const SECRET_FILE: &str = "secret.key";
const ONE_YEAR: time::Duration = time::Duration::days(365);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} does not hold a valid secret; delete it to generate a new one")]
    Invalid { path: String },
}

/// The signing key: from the configured secret, else from `secret.key` in the data folder,
/// generated there on first run.
pub fn load_or_create_key(secret: Option<&str>, data_dir: &Path) -> Result<Key, KeyError> {
    if let Some(secret) = secret {
        return Ok(Key::derive_from(secret.as_bytes()));
    }
    let path = data_dir.join(SECRET_FILE);
    let shown = path.display().to_string();
    let io = |source| KeyError::Io {
        path: shown.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim()).map_err(|_| KeyError::Invalid {
                path: shown.clone(),
            })?;
            Key::try_from(bytes.as_slice()).map_err(|_| KeyError::Invalid {
                path: shown.clone(),
            })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(io)?;
            let key = Key::generate();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path).map_err(io)?;
            file.write_all(hex::encode(key.master()).as_bytes())
                .map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(key)
        }
        Err(error) => Err(io(error)),
    }
}

/// A fresh secret for a cluster to share: 64 random bytes, hex-encoded.
pub fn random_secret() -> String {
    hex::encode(Key::generate().master())
}

/// The user a signed cookie names, if the cookie is present, authentic and well-formed.
pub fn user_from(jar: &SignedCookieJar) -> Option<User> {
    let cookie = jar.get(COOKIE)?;
    let json = URL_SAFE_NO_PAD.decode(cookie.value()).ok()?;
    let user: User = serde_json::from_slice(&json).ok()?;
    // Re-validate: a cookie signed by an older version must still meet today's rules.
    DisplayName::parse(user.name.as_str()).ok()?;
    Some(user)
}

/// The session cookie for `user`: signed, HttpOnly, SameSite=Lax, for a year.
pub fn cookie_for(user: &User) -> Cookie<'static> {
    let json = serde_json::to_vec(user).unwrap_or_default();
    Cookie::build((COOKIE, URL_SAFE_NO_PAD.encode(json)))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(ONE_YEAR)
        .build()
}

/// A cookie that, once set, removes the session cookie.
pub fn removal() -> Cookie<'static> {
    Cookie::build(COOKIE).path("/").build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;

    #[test]
    fn a_generated_key_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_key(None, dir.path()).unwrap();
        let second = load_or_create_key(None, dir.path()).unwrap();
        assert_eq!(first.master(), second.master());
    }

    #[test]
    fn a_cookie_round_trips_through_a_signed_jar() {
        let key = Key::generate();
        let user = User {
            id: UserId::generate(),
            name: DisplayName::parse("zoë").unwrap(),
        };
        let jar = SignedCookieJar::new(key.clone()).add(cookie_for(&user));
        assert_eq!(user_from(&jar), Some(user));
        let forged = SignedCookieJar::new(Key::generate()).add(Cookie::new(COOKIE, "e30"));
        assert_eq!(user_from(&forged), None);
    }
}
