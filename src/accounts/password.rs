//! Password hashing: argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane), the `argon2`
//! crate's defaults. Each hash takes tens of milliseconds of CPU and 19 MiB on purpose, so it
//! runs on the blocking pool, and only a few run at once: a burst of logins waits its turn
//! rather than taking the server's memory and cores.

use std::sync::{Arc, LazyLock};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::domain::Password;

/// Hashes running at once, server-wide.
const CONCURRENT_HASHES: usize = 2;

static HASHING: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(CONCURRENT_HASHES)));

/// A hash of a password nobody has, verified against when a username is unknown, so that a
/// wrong username takes as long as a wrong password.
static DECOY: LazyLock<String> =
    LazyLock::new(|| hash_now(&format!("{:032x}", rand::random::<u128>())).unwrap_or_default());

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the hashing task did not finish")]
    Task,
}

fn hash_now(password: &str) -> Result<String, HashError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| HashError::Hash(error.to_string()))
}

fn verify_now(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashError> {
    let _turn = HASHING
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| HashError::Task)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| HashError::Task)
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) to store for `password`.
pub async fn hash(password: &Password) -> Result<String, HashError> {
    let password = password.as_str().to_owned();
    blocking(move || hash_now(&password)).await?
}

/// Whether `password` matches `hash`; with no hash (unknown user, or a guest), checks a decoy
/// and answers false, in about the same time.
pub async fn verify(password: &str, hash: Option<&str>) -> Result<bool, HashError> {
    let password = password.to_owned();
    let (hash, real) = match hash {
        Some(hash) => (hash.to_owned(), true),
        None => (DECOY.clone(), false),
    };
    blocking(move || verify_now(&password, &hash) && real).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let password = Password::parse("correct horse".into()).unwrap();
        let hash = hash(&password).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify("correct horse", Some(&hash)).await.unwrap());
        assert!(!verify("correct horsf", Some(&hash)).await.unwrap());
        assert!(!verify("correct horse", None).await.unwrap());
        assert!(!verify("x", Some("not a hash")).await.unwrap());
    }
}
