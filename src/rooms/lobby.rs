//! The lobby's live room list: connections that sent `rooms {}` get a snapshot, then coalesced
//! updates of the counts that changed. Coalescing keeps a burst of joins from becoming a burst
//! of lobby frames; updates read counts at send time, so none is staler than the snapshot.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::hub::Hub;
use super::outbox::Outbox;
use crate::domain::{ConnectionId, RoomName};
use crate::protocol::server::{self, RoomCount};
use crate::store::{Store, StoreError};

/// How long changes gather before one update goes out (at most ~10 updates a second).
const COALESCE: Duration = Duration::from_millis(100);
/// Rooms in a snapshot.
pub const SNAPSHOT_ROOMS: u32 = 100;

#[derive(Default)]
pub struct Lobby {
    state: Mutex<LobbyState>,
    notify: Notify,
}

#[derive(Default)]
struct LobbyState {
    watchers: HashMap<ConnectionId, Outbox>,
    dirty: HashSet<RoomName>,
}

impl Lobby {
    fn state(&self) -> std::sync::MutexGuard<'_, LobbyState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a watcher. Call before taking the snapshot, so no change falls between them.
    pub fn watch(&self, conn: ConnectionId, outbox: Outbox) {
        self.state().watchers.insert(conn, outbox);
    }

    pub fn unwatch(&self, conn: ConnectionId) {
        self.state().watchers.remove(&conn);
    }

    pub(super) fn changed(&self, room: &RoomName) {
        let mut state = self.state();
        if !state.watchers.is_empty() && state.dirty.insert(room.clone()) && state.dirty.len() == 1
        {
            self.notify.notify_one();
        }
    }
}

impl Hub {
    /// Sends coalesced lobby updates until shutdown.
    pub async fn run_lobby(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = self.lobby.notify.notified() => {}
                () = shutdown.cancelled() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(COALESCE) => {}
                () = shutdown.cancelled() => return,
            }
            let (dirty, watchers) = {
                let mut state = self.lobby.state();
                let dirty = std::mem::take(&mut state.dirty);
                (dirty, state.watchers.values().cloned().collect::<Vec<_>>())
            };
            let mut changed: Vec<RoomCount> = dirty
                .into_iter()
                .map(|name| RoomCount {
                    online: self.online(&name),
                    name,
                })
                .collect();
            changed.sort_by(|a, b| a.name.cmp(&b.name));
            let frame = server::rooms(&changed, false);
            for watcher in watchers {
                watcher.push(frame.clone());
            }
        }
    }

    /// The lobby's room list: occupied rooms first (busiest first), then recently active ones.
    pub async fn snapshot(&self, store: &dyn Store) -> Result<Vec<RoomCount>, StoreError> {
        let mut rooms = self.occupied_rooms();
        rooms.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.name.cmp(&b.name)));
        rooms.truncate(SNAPSHOT_ROOMS as usize);
        let recent = store.recent_rooms(SNAPSHOT_ROOMS).await?;
        for name in recent {
            if rooms.len() >= SNAPSHOT_ROOMS as usize {
                break;
            }
            if !rooms.iter().any(|room| room.name == name) {
                rooms.push(RoomCount { online: 0, name });
            }
        }
        Ok(rooms)
    }
}
