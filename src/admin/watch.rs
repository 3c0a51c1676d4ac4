//! The admin view's live feed: connections that sent `admin_watch` get an `admin_stats` frame
//! every [`EVERY`], computed and encoded once per tick for all of them. Nothing is computed
//! while nobody watches.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::ConnectionId;
use crate::protocol::server;
use crate::rooms::outbox::Outbox;
use crate::state::AppState;

/// How often watchers hear the figures.
pub const EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Watchers {
    watching: Mutex<HashMap<ConnectionId, Outbox>>,
    first: Notify,
}

impl Watchers {
    fn watching(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, Outbox>> {
        self.watching.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn watch(&self, conn: ConnectionId, outbox: Outbox) {
        let mut watching = self.watching();
        watching.insert(conn, outbox);
        if watching.len() == 1 {
            self.first.notify_one();
        }
    }

    pub fn unwatch(&self, conn: ConnectionId) {
        self.watching().remove(&conn);
    }

    fn outboxes(&self) -> Vec<Outbox> {
        self.watching().values().cloned().collect()
    }
}

/// Sends the figures to every watcher each tick until shutdown.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let watchers = &state.admin_watchers;
    loop {
        let outboxes = watchers.outboxes();
        if outboxes.is_empty() {
            tokio::select! {
                () = watchers.first.notified() => continue,
                () = shutdown.cancelled() => return,
            }
        }
        match super::stats(&state).await {
            Ok(stats) => {
                let frame = server::admin_stats(&stats);
                for outbox in outboxes {
                    outbox.push(frame.clone());
                }
            }
            Err(error) => tracing::warn!(%error, "cannot gather the admin view's figures"),
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
