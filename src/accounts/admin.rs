//! `confab admin …`: grant or revoke server administration and reset a password, on the same
//! storage as the server (`--data-dir` or `--database-url`), also while it runs. The server
//! reads accounts and sessions from the store on every request, so a change holds at once.

use crate::config::{AdminAction, Config};
use crate::domain::{Password, Username};
use crate::store::accounts::Accounts;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteAccounts;
use crate::store::{Sessions, StoreError};

use super::password;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Hash(#[from] password::HashError),
    #[error("no account has the username {0:?}")]
    NoSuchUser(String),
    #[error("{0}")]
    Invalid(String),
}

trait AccountStore: Accounts + Sessions {}
impl<T: Accounts + Sessions> AccountStore for T {}

/// Runs `action`; returns what to print.
pub async fn run(config: &Config, action: &AdminAction) -> Result<String, AdminError> {
    let store: Box<dyn AccountStore> = match &config.database_url {
        Some(url) => Box::new(PostgresStore::connect(url).await?),
        None => Box::new(SqliteAccounts::open(&config.data_dir).await?),
    };
    let username = |raw: &str| {
        Username::parse(raw)
            .map(|username| username.as_str().to_owned())
            .map_err(|error| AdminError::Invalid(error.to_string()))
    };
    match action {
        AdminAction::Grant { username: raw } | AdminAction::Revoke { username: raw } => {
            let username = username(raw)?;
            let admin = matches!(action, AdminAction::Grant { .. });
            if !store.set_admin(&username, admin).await? {
                return Err(AdminError::NoSuchUser(username));
            }
            Ok(if admin {
                format!("{username} is now a server administrator")
            } else {
                format!("{username} is no longer a server administrator")
            })
        }
        AdminAction::ResetPassword { username: raw } => {
            let username = username(raw)?;
            let account = store
                .account_by_username(&username)
                .await?
                .ok_or_else(|| AdminError::NoSuchUser(username.clone()))?;
            // 20 characters from a 32-letter alphabet without look-alikes: 100 bits.
            const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
            let fresh: String = (0..20)
                .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
                .collect();
            let parsed = Password::parse(fresh.clone())
                .map_err(|error| AdminError::Invalid(error.to_string()))?;
            let hash = password::hash(&parsed).await?;
            store.set_password(&account.user.id, &hash).await?;
            for ended in store.end_sessions_of(&account.user.id, None).await? {
                store.revoke_session(&ended.sid, ended.expires_at).await?;
            }
            Ok(format!(
                "new password for {username}: {fresh}\n(all their sessions ended; they can change it after signing in)"
            ))
        }
    }
}
