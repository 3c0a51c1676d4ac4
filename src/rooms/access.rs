//! Who may read and moderate each room: a per-node cache of every room's access rules
//! (visibility, members' roles, bans) read from the store on first need, and the rules
//! themselves ([`RoomAccess`]).
//!
//! Every `join` is checked here, so the common case must cost no store round trip: a room's
//! entry stays cached until any node changes that room's access and says so
//! (`Control::AccessChanged`, applied on the node that made the change before its request
//! answers, and on the others within the broker's delay). An entry also expires after
//! [`TTL`], a bound on how long a node that missed a broadcast (a broker outage) can act on
//! old rules.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::{Role, RoomName, UserId, Visibility};
use crate::store::{Store, StoreError};

/// Room names starting with this are direct-message rooms, named after their two members
/// ([`direct_room`]): nobody may create or join-create a room with such a name.
pub const DIRECT_PREFIX: &str = "dm-";
/// Rooms cached at most. Past it the cache starts afresh (each room then costs one more read):
/// anyone can make up room names, so the cache must not grow with them.
const MAX_CACHED: usize = 10_000;
/// How long an entry is trusted without news.
const TTL: Duration = Duration::from_secs(300);

/// One room's access rules, as stored when they were read.
#[derive(Debug, Clone)]
pub struct RoomAccess {
    pub visibility: Visibility,
    /// The room has a stored row (it was created, has messages, or was moderated); a room
    /// without one exists only while someone is in it.
    pub stored: bool,
    pub topic: String,
    roles: HashMap<UserId, Role>,
    bans: HashSet<UserId>,
}

/// How much say someone has in a room, for comparing whom they may remove: an administrator
/// outranks everyone but the owner, and stands in for the owner of an ownerless room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    None,
    Member,
    Moderator,
    Admin,
    Owner,
}

impl RoomAccess {
    /// The rules of a room without a stored row: public, ownerless, nobody banned; except a
    /// name reserved for direct messages, which is private to nobody.
    fn unstored(room: &RoomName) -> Self {
        let visibility = if is_direct(room) {
            Visibility::Private
        } else {
            Visibility::Public
        };
        Self {
            visibility,
            stored: false,
            topic: String::new(),
            roles: HashMap::new(),
            bans: HashSet::new(),
        }
    }

    /// Whether `user` may join (read) the room: not banned, and a member if it is private.
    pub fn may_join(&self, user: &UserId) -> bool {
        !self.bans.contains(user)
            && (self.visibility == Visibility::Public || self.roles.contains_key(user))
    }

    pub fn role(&self, user: &UserId) -> Option<Role> {
        self.roles.get(user).copied()
    }

    pub fn is_banned(&self, user: &UserId) -> bool {
        self.bans.contains(user)
    }

    pub fn owner(&self) -> Option<&UserId> {
        self.roles
            .iter()
            .find(|(_, role)| **role == Role::Owner)
            .map(|(user, _)| user)
    }

    /// Whether the caller may learn that the room exists: anyone for a public room; a member
    /// or a server administrator (who moderates every room) for a private one.
    pub fn visible_to(&self, user: &UserId, admin: bool) -> bool {
        self.visibility == Visibility::Public || admin || self.roles.contains_key(user)
    }

    /// The caller's say in the room.
    pub fn rank(&self, user: &UserId, admin: bool) -> Rank {
        let own = match self.role(user) {
            Some(Role::Owner) => Rank::Owner,
            Some(Role::Moderator) => Rank::Moderator,
            Some(Role::Member) => Rank::Member,
            None => Rank::None,
        };
        if !admin {
            return own;
        }
        let as_admin = if self.owner().is_none() {
            Rank::Owner
        } else {
            Rank::Admin
        };
        own.max(as_admin)
    }

    /// The rank `target` is defended by against removal.
    pub fn rank_of(&self, target: &UserId) -> Rank {
        self.rank(target, false)
    }
}

/// Whether `room` is named like a direct-message room.
pub fn is_direct(room: &RoomName) -> bool {
    room.as_str().starts_with(DIRECT_PREFIX)
}

/// The direct-message room of two users: the same name whoever asks (the ids are sorted),
/// within the room-name alphabet and length (`dm-` and 40 hex digits).
pub fn direct_room(a: &UserId, b: &UserId) -> RoomName {
    use sha1::{Digest, Sha1};
    let (first, second) = if a.as_str() <= b.as_str() {
        (a, b)
    } else {
        (b, a)
    };
    let mut hasher = Sha1::new();
    hasher.update(first.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(second.as_str().as_bytes());
    let name = format!("{DIRECT_PREFIX}{}", hex::encode(hasher.finalize()));
    RoomName::parse(&name).expect("dm- and 40 hex digits is a valid room name")
}

/// The per-node cache. A std mutex held only to look up, insert or drop an entry, never
/// across the store read; `epoch` moves on every drop, so a read that started before a change
/// is not cached after it (it is still answered: it was true when the read began).
#[derive(Default)]
pub struct Access {
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    rooms: HashMap<RoomName, (Instant, Arc<RoomAccess>)>,
    epoch: u64,
}

impl Access {
    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `room`'s rules: cached, or read from the store (and cached).
    pub async fn get(
        &self,
        store: &dyn Store,
        room: &RoomName,
    ) -> Result<Arc<RoomAccess>, StoreError> {
        let epoch = {
            let cache = self.cache();
            if let Some((at, access)) = cache.rooms.get(room)
                && at.elapsed() < TTL
            {
                return Ok(access.clone());
            }
            cache.epoch
        };
        let access = Arc::new(load(store, room).await?);
        let mut cache = self.cache();
        if cache.epoch == epoch {
            if cache.rooms.len() >= MAX_CACHED {
                cache.rooms.clear();
            }
            cache
                .rooms
                .insert(room.clone(), (Instant::now(), access.clone()));
        }
        Ok(access)
    }

    /// Drops what is cached about `room` (its access changed somewhere).
    pub fn forget(&self, room: &RoomName) {
        let mut cache = self.cache();
        cache.rooms.remove(room);
        cache.epoch += 1;
    }

    /// Which of `rooms` are public, in order: what a shared room list may show. A room whose
    /// rules cannot be read is left out (hidden rather than exposed).
    pub async fn public_only(&self, store: &dyn Store, rooms: Vec<RoomName>) -> Vec<RoomName> {
        let mut public = Vec::with_capacity(rooms.len());
        for room in rooms {
            match self.get(store, &room).await {
                Ok(access) if access.visibility == Visibility::Public => public.push(room),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, room = %room, "cannot read a room's access; not listed");
                }
            }
        }
        public
    }
}

async fn load(store: &dyn Store, room: &RoomName) -> Result<RoomAccess, StoreError> {
    let Some(row) = store.room_row(room).await? else {
        // No row: nothing was ever created, stored or moderated here (moderation makes a
        // row first), so one read settles it.
        return Ok(RoomAccess::unstored(room));
    };
    let roles = store.room_roles(room).await?.into_iter().collect();
    let bans = store.room_bans(room).await?.into_iter().collect();
    Ok(RoomAccess {
        visibility: row.visibility,
        stored: true,
        topic: row.topic,
        roles,
        bans,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: &str) -> UserId {
        UserId::from_trusted(raw.into())
    }

    fn room(roles: &[(&str, Role)], visibility: Visibility) -> RoomAccess {
        RoomAccess {
            visibility,
            stored: true,
            topic: String::new(),
            roles: roles.iter().map(|(user, role)| (id(user), *role)).collect(),
            bans: HashSet::from([id("troll")]),
        }
    }

    #[test]
    fn a_direct_room_is_the_same_whoever_asks_and_a_valid_name() {
        let (a, b) = (id("0190-a"), id("0190-b"));
        assert_eq!(direct_room(&a, &b), direct_room(&b, &a));
        assert_ne!(direct_room(&a, &b), direct_room(&a, &id("0190-c")));
        assert!(is_direct(&direct_room(&a, &b)));
        assert_eq!(direct_room(&a, &b).as_str().len(), 43);
    }

    #[test]
    fn private_rooms_admit_members_and_nobody_banned_is_admitted() {
        let private = room(&[("ann", Role::Member)], Visibility::Private);
        assert!(private.may_join(&id("ann")));
        assert!(!private.may_join(&id("ben")));
        let public = room(&[], Visibility::Public);
        assert!(public.may_join(&id("ben")));
        assert!(!public.may_join(&id("troll")));
    }

    #[test]
    fn an_administrator_stands_in_for_a_missing_owner_and_never_outranks_one() {
        let ownerless = room(&[("mod", Role::Moderator)], Visibility::Public);
        assert_eq!(ownerless.rank(&id("root"), true), Rank::Owner);
        let owned = room(&[("own", Role::Owner)], Visibility::Public);
        assert_eq!(owned.rank(&id("root"), true), Rank::Admin);
        assert!(owned.rank(&id("root"), true) < owned.rank_of(&id("own")));
        assert_eq!(owned.rank(&id("own"), true), Rank::Owner);
    }

    #[test]
    fn an_unstored_dm_name_is_private_to_nobody() {
        let dm = RoomName::parse("dm-0000").unwrap();
        assert!(!RoomAccess::unstored(&dm).may_join(&id("ann")));
        let plain = RoomName::parse("general").unwrap();
        assert!(RoomAccess::unstored(&plain).may_join(&id("ann")));
    }
}
