//! The lobby's live room list: connections that sent `rooms {}` get a snapshot, then coalesced
//! updates of the counts that changed. Coalescing keeps a burst of joins from becoming a burst
//! of lobby frames; updates read counts at send time, so none is staler than the snapshot.
//! Frames here are shared by every watcher, so they list public rooms only: a member's own
//! private rooms are added to their snapshot alone (`Hub::lobby_for`).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

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

impl Lobby {
    /// Sends coalesced lobby updates until shutdown, with each changed room's count as
    /// `online` tells it at send time, for the changed rooms `public` keeps (it reads rooms'
    /// access, from the store when not cached; no private room may reach a shared frame).
    pub async fn run<F: Future<Output = Vec<RoomName>>>(
        &self,
        online: impl Fn(&RoomName) -> u32,
        public: impl Fn(Vec<RoomName>) -> F,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = self.notify.notified() => {}
                () = shutdown.cancelled() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(COALESCE) => {}
                () = shutdown.cancelled() => return,
            }
            let (dirty, watchers) = {
                let mut state = self.state();
                let dirty = std::mem::take(&mut state.dirty);
                (dirty, state.watchers.values().cloned().collect::<Vec<_>>())
            };
            let listed = public(dirty.into_iter().collect()).await;
            if listed.is_empty() {
                continue;
            }
            let mut changed: Vec<RoomCount> = listed
                .into_iter()
                .map(|name| RoomCount {
                    online: online(&name),
                    name,
                    private: false,
                    unread: None,
                    mentions: None,
                })
                .collect();
            changed.sort_by(|a, b| a.name.cmp(&b.name));
            let frame = server::rooms(&changed, false);
            for watcher in watchers {
                watcher.push(frame.clone());
            }
        }
    }

    /// The lobby's room list, ranked so that made-up rooms never push out a conversation:
    /// rooms with a message in the last 24 hours first, then by people online (distinct
    /// users), then by the time of the last message. Occupied rooms without recent messages
    /// still show when there is space.
    /// `occupied`: the public rooms with people in them now, with their counts; stored rooms
    /// are read public only.
    pub async fn snapshot(
        &self,
        occupied: Vec<RoomCount>,
        store: &dyn Store,
    ) -> Result<Vec<RoomCount>, StoreError> {
        let activity = store.public_room_activity(ACTIVITY_SCAN).await?;
        Ok(rank(occupied, activity, now_millis()))
    }
}

/// Rooms read from the store to rank a snapshot, most recently active first. An occupied room
/// beyond these ranks as if it had no recent message, which is true unless more than this many
/// rooms were talked in more recently.
const ACTIVITY_SCAN: u32 = 1000;
/// What "a room with recent messages" means.
const RECENT_MS: i64 = 24 * 60 * 60 * 1000;

/// Ranks occupied rooms (with their counts) and stored rooms (with their last message time)
/// into at most [`SNAPSHOT_ROOMS`] entries.
fn rank(occupied: Vec<RoomCount>, activity: Vec<(RoomName, i64)>, now: i64) -> Vec<RoomCount> {
    let mut last_message: HashMap<RoomName, i64> = activity.into_iter().collect();
    let mut ranked: Vec<(RoomCount, Option<i64>)> = occupied
        .into_iter()
        .map(|room| {
            let last = last_message.remove(&room.name);
            (room, last)
        })
        .collect();
    ranked.extend(last_message.into_iter().map(|(name, last)| {
        (
            RoomCount {
                name,
                online: 0,
                private: false,
                unread: None,
                mentions: None,
            },
            Some(last),
        )
    }));
    let recent = |last: Option<i64>| last.is_some_and(|at| at >= now - RECENT_MS);
    ranked.sort_by(|(a, a_last), (b, b_last)| {
        recent(*b_last)
            .cmp(&recent(*a_last))
            .then_with(|| b.online.cmp(&a.online))
            .then_with(|| b_last.cmp(a_last))
            .then_with(|| a.name.cmp(&b.name))
    });
    ranked.truncate(SNAPSHOT_ROOMS as usize);
    ranked.into_iter().map(|(room, _)| room).collect()
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    fn names(rooms: &[RoomCount]) -> Vec<&str> {
        rooms.iter().map(|room| room.name.as_str()).collect()
    }

    const NOW: i64 = 1_000_000_000_000;

    #[test]
    fn a_conversation_ranks_above_any_number_of_made_up_rooms() {
        let mut occupied: Vec<RoomCount> = (0..300)
            .map(|i| RoomCount {
                name: room(&format!("a{i:03}")),
                online: 2,
                private: false,
                unread: None,
                mentions: None,
            })
            .collect();
        occupied.push(RoomCount {
            name: room("general"),
            online: 1,
            private: false,
            unread: None,
            mentions: None,
        });
        let activity = vec![(room("general"), NOW - 60_000)];
        let ranked = rank(occupied, activity, NOW);
        assert_eq!(ranked.len(), SNAPSHOT_ROOMS as usize);
        assert_eq!(ranked[0].name.as_str(), "general");
    }

    #[test]
    fn recent_rooms_rank_by_people_online_then_by_last_message() {
        let occupied = vec![
            RoomCount {
                name: room("quiet-crowd"),
                online: 9,
                private: false,
                unread: None,
                mentions: None,
            },
            RoomCount {
                name: room("busy"),
                online: 3,
                private: false,
                unread: None,
                mentions: None,
            },
            RoomCount {
                name: room("chatty"),
                online: 1,
                private: false,
                unread: None,
                mentions: None,
            },
        ];
        let activity = vec![
            (room("fresh-empty"), NOW - 1_000),
            (room("chatty"), NOW - 2_000),
            (room("busy"), NOW - 50_000),
            (room("stale"), NOW - RECENT_MS - 1),
        ];
        let ranked = rank(occupied, activity, NOW);
        assert_eq!(
            names(&ranked),
            ["busy", "chatty", "fresh-empty", "quiet-crowd", "stale"]
        );
        assert_eq!(ranked[3].online, 9, "occupied rooms keep their count");
    }
}
