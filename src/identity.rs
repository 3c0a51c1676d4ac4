//! Who a request is: guest identities carried in a signed cookie, and the key that signs it.
//! The cookie holds the user's id and display name, the session's own id and its expiry, so
//! checking it needs no database and a session survives restarts for as long as the key does.
//! Only signing out needs storage: a revoked session's id is kept there until it expires
//! (see `http::edge`, which refuses revoked cookies on every node). The key lives in the data
//! folder, so the helpers that create that folder and its files readable by their owner only
//! live here too, for every file that holds secrets or messages.

use std::io::Write;
use std::path::Path;

use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::{Cookie, Key, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use serde::{Deserialize, Serialize};

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
            create_private_dir(data_dir).map_err(io)?;
            let key = Key::generate();
            let mut file = create_private_file(&path).map_err(io)?;
            file.write_all(hex::encode(key.master()).as_bytes())
                .map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(key)
        }
        Err(error) => Err(io(error)),
    }
}

/// Creates `path` readable by this user only; fails if it exists.
pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    private_file_options().create_new(true).open(path)
}

/// Opens `path` for writing, creating it readable by this user only if it is missing; an
/// existing file keeps its contents and its mode.
pub fn open_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    private_file_options()
        .create(true)
        .truncate(false)
        .open(path)
}

fn private_file_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Creates `dir` (and missing parents) readable by this user only.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A fresh secret for a cluster to share: 64 random bytes, hex-encoded.
pub fn random_secret() -> String {
    hex::encode(Key::generate().master())
}

/// What the session cookie says, signed: who, which session (so that it can be revoked), and
/// until when. Cookies from before sessions had ids carry no `sid` and are refused: a guest
/// who had one simply picks a name again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    #[serde(flatten)]
    pub user: User,
    /// 128 random bits, hex: the handle `DELETE /api/session` revokes.
    pub sid: String,
    /// Milliseconds since the epoch after which the server refuses the cookie, whatever the
    /// browser does with its Max-Age.
    pub exp: i64,
}

impl Session {
    /// A new session for `user`, valid for a year.
    pub fn start(user: User) -> Self {
        Self {
            user,
            sid: format!("{:032x}", rand::random::<u128>()),
            exp: now_ms().saturating_add(ONE_YEAR.whole_milliseconds() as i64),
        }
    }
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// The session a signed cookie carries, if the cookie is present, authentic, well-formed and
/// not expired. Whether it was revoked is for the caller to ask the store.
pub fn session_from(jar: &SignedCookieJar) -> Option<Session> {
    let cookie = jar.get(COOKIE)?;
    let json = URL_SAFE_NO_PAD.decode(cookie.value()).ok()?;
    let session: Session = serde_json::from_slice(&json).ok()?;
    // Re-validate: a cookie signed by an older version must still meet today's rules.
    DisplayName::parse(session.user.name.as_str()).ok()?;
    (!session.sid.is_empty() && session.exp > now_ms()).then_some(session)
}

/// The user a signed cookie names (see [`session_from`]).
pub fn user_from(jar: &SignedCookieJar) -> Option<User> {
    session_from(jar).map(|session| session.user)
}

/// The session cookie: signed, HttpOnly, SameSite=Lax, for a year; `Secure` when the browser
/// reached us over HTTPS, so that it never travels in clear afterwards.
pub fn cookie_for(session: &Session, secure: bool) -> Cookie<'static> {
    let json = serde_json::to_vec(session).expect("a session is plain strings and numbers");
    Cookie::build((COOKIE, URL_SAFE_NO_PAD.encode(json)))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(ONE_YEAR)
        .build()
}

/// A cookie that, once set, removes the session cookie.
pub fn removal(secure: bool) -> Cookie<'static> {
    Cookie::build(COOKIE).path("/").secure(secure).build()
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
            guest: true,
        };
        let session = Session::start(user.clone());
        let jar = SignedCookieJar::new(key.clone()).add(cookie_for(&session, false));
        assert_eq!(session_from(&jar), Some(session));
        assert_eq!(user_from(&jar), Some(user));
        let forged = SignedCookieJar::new(Key::generate()).add(Cookie::new(COOKIE, "e30"));
        assert_eq!(user_from(&forged), None);
    }

    #[test]
    fn expired_and_pre_session_cookies_are_refused() {
        let key = Key::generate();
        let user = User {
            id: UserId::generate(),
            name: DisplayName::parse("zoë").unwrap(),
            guest: true,
        };
        let mut expired = Session::start(user.clone());
        expired.exp = now_ms() - 1;
        let jar = SignedCookieJar::new(key.clone()).add(cookie_for(&expired, false));
        assert_eq!(user_from(&jar), None);
        // What versions before session ids signed: the user alone.
        let old = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&user).unwrap());
        let jar = SignedCookieJar::new(key).add(Cookie::new(COOKIE, old));
        assert_eq!(user_from(&jar), None);
    }
}
