//! Who is present in one room this node hosts: users (not connections), counted by their
//! connections on this node and the other nodes where they are connected, with the changes not
//! yet announced.
//!
//! Changes are coalesced: a join or leave only records the user's new state (O(1)); the hub's
//! presence tick turns each room's changes into one `presence` frame every `TICK`, encoded
//! once for every member that was there before the tick. A user who comes and goes within one
//! tick is not announced to them at all. Each change has a version, so a member whose `joined`
//! came in the middle of a tick hears only what its member list did not already show.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::broker::NodeId;
use crate::domain::{User, UserId};
use crate::protocol::server::EncodedUser;

#[derive(Default)]
pub struct RoomPresence {
    /// Present users, ordered by id so that member lists page stably.
    members: BTreeMap<UserId, Member>,
    /// Users whose presence changed since the last tick.
    changes: HashMap<UserId, Change>,
    /// Counts recorded changes; a member's `joined` shows the room as of one version.
    version: u64,
    /// The version when the last tick took the changes.
    ticked_at: u64,
    /// Until the first view of other nodes' members is merged, which (node, user) pairs live
    /// events have already settled: those are newer than that view.
    settled: Option<HashSet<(NodeId, UserId)>>,
}

struct Member {
    user: User,
    /// The user as `joined` and `members` list them.
    listed: EncodedUser,
    /// This node's connections of the user in this room.
    connections: u32,
    /// Other nodes where the user is in this room.
    remote: HashSet<NodeId>,
}

impl Member {
    fn present(&self) -> bool {
        self.connections > 0 || !self.remote.is_empty()
    }
}

/// One user's change within a tick.
#[derive(Debug, Clone)]
pub struct Change {
    user: User,
    /// Present when the tick began.
    before: bool,
    /// Present now.
    now: bool,
    /// The version of the latest change.
    version: u64,
}

/// One tick's changes in a room.
pub struct Tick {
    changes: Vec<Change>,
    /// The version at the previous tick: members whose view is older get [`Tick::shared`].
    pub since: u64,
}

impl Tick {
    /// What every member that was there before the tick must hear: (arrived, departed).
    pub fn shared(&self) -> (Vec<User>, Vec<User>) {
        split(self.changes.iter().filter(|c| c.before != c.now))
    }

    /// What a member whose member list shows the room as of `seen` must hear.
    pub fn newer_than(&self, seen: u64) -> (Vec<User>, Vec<User>) {
        split(self.changes.iter().filter(|c| c.version > seen))
    }
}

fn split<'a>(changes: impl Iterator<Item = &'a Change>) -> (Vec<User>, Vec<User>) {
    let (mut arrived, mut departed) = (Vec::new(), Vec::new());
    for change in changes {
        if change.now {
            arrived.push(change.user.clone());
        } else {
            departed.push(change.user.clone());
        }
    }
    (arrived, departed)
}

/// What a local connection arriving or leaving changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The user's first connection on this node arrived, or their last one left: other nodes
    /// must hear of it.
    pub local: bool,
    /// The user became present or absent in the room as a whole.
    pub changed: bool,
}

impl RoomPresence {
    /// A room this node just started hosting: other nodes' members are still to be merged.
    pub fn fresh() -> Self {
        Self {
            settled: Some(HashSet::new()),
            ..Self::default()
        }
    }

    pub fn count(&self) -> usize {
        self.members.len()
    }

    /// A connection of `user` joined.
    pub fn connect(&mut self, user: &User) -> Transition {
        let member = self.member(user);
        let was_present = member.present();
        member.connections += 1;
        let local = member.connections == 1;
        if !was_present {
            self.record(user, true);
        }
        Transition {
            local,
            changed: !was_present,
        }
    }

    /// A connection of `user` left.
    pub fn disconnect(&mut self, user: &UserId) -> Transition {
        let Some(member) = self.members.get_mut(user) else {
            return Transition {
                local: false,
                changed: false,
            };
        };
        member.connections = member.connections.saturating_sub(1);
        let local = member.connections == 0;
        let gone = !member.present();
        if gone && let Some(member) = self.members.remove(user) {
            self.record(&member.user, false);
        }
        Transition {
            local,
            changed: gone,
        }
    }

    /// Whether the user has a connection to this room on this node.
    pub fn has_local(&self, user: &UserId) -> bool {
        self.members.get(user).is_some_and(|m| m.connections > 0)
    }

    /// The user behind a local connection, for announcing a local transition.
    pub fn user(&self, id: &UserId) -> Option<&User> {
        self.members.get(id).map(|m| &m.user)
    }

    /// Another node's member arrived or left. Returns whether the room's presence changed.
    pub fn remote(&mut self, node: &NodeId, user: &User, present: bool) -> bool {
        if let Some(settled) = &mut self.settled {
            settled.insert((node.clone(), user.id.clone()));
        }
        self.apply_remote(node, user, present)
    }

    fn apply_remote(&mut self, node: &NodeId, user: &User, present: bool) -> bool {
        let member = self.member(user);
        let was_present = member.present();
        if present {
            member.remote.insert(node.clone());
        } else {
            member.remote.remove(node);
        }
        let now_present = member.present();
        if !now_present {
            self.members.remove(&user.id);
        }
        if was_present != now_present {
            self.record(user, now_present);
        }
        was_present != now_present
    }

    /// Merges the first view of other nodes' members; what live events settled wins.
    pub fn merge_remote(&mut self, members: Vec<(NodeId, User)>) -> bool {
        let Some(settled) = self.settled.take() else {
            return false; // merged already, by an earlier join
        };
        let mut changed = false;
        for (node, user) in members {
            if !settled.contains(&(node.clone(), user.id.clone())) {
                changed |= self.apply_remote(&node, &user, true);
            }
        }
        changed
    }

    /// Replaces everything believed about other nodes' members.
    pub fn replace_remote(&mut self, members: Vec<(NodeId, User)>) -> bool {
        self.settled = None;
        let wanted: HashSet<(NodeId, UserId)> = members
            .iter()
            .map(|(node, user)| (node.clone(), user.id.clone()))
            .collect();
        let stale: Vec<(NodeId, User)> = self
            .members
            .values()
            .flat_map(|m| m.remote.iter().map(|node| (node.clone(), m.user.clone())))
            .filter(|(node, user)| !wanted.contains(&(node.clone(), user.id.clone())))
            .collect();
        let mut changed = false;
        for (node, user) in stale {
            changed |= self.apply_remote(&node, &user, false);
        }
        for (node, user) in members {
            changed |= self.apply_remote(&node, &user, true);
        }
        changed
    }

    /// A node is gone: its members leave. Returns whether presence changed.
    pub fn node_gone(&mut self, node: &NodeId) -> bool {
        let gone: Vec<User> = self
            .members
            .values()
            .filter(|m| m.remote.contains(node))
            .map(|m| m.user.clone())
            .collect();
        let mut changed = false;
        for user in gone {
            changed |= self.apply_remote(node, &user, false);
        }
        changed
    }

    /// Users with a connection on this node.
    pub fn local_users(&self) -> Vec<User> {
        self.members
            .values()
            .filter(|m| m.connections > 0)
            .map(|m| m.user.clone())
            .collect()
    }

    /// Up to `limit` members with an id above `after`, in id order, and whether more follow.
    pub fn page(&self, after: Option<&UserId>, limit: usize) -> (Vec<&User>, bool) {
        let (members, more) = self.members_after(after, limit);
        (members.into_iter().map(|m| &m.user).collect(), more)
    }

    /// Like [`RoomPresence::page`], as the frames list them (encoded once per member).
    pub fn listed_page(&self, after: Option<&UserId>, limit: usize) -> (Vec<&EncodedUser>, bool) {
        let (members, more) = self.members_after(after, limit);
        (members.into_iter().map(|m| &m.listed).collect(), more)
    }

    fn members_after(&self, after: Option<&UserId>, limit: usize) -> (Vec<&Member>, bool) {
        let mut page = Vec::with_capacity(limit.min(self.members.len()));
        let mut iter = match after {
            Some(after) => self
                .members
                .range::<UserId, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => self.members.range::<UserId, _>(..),
        };
        page.extend(iter.by_ref().take(limit).map(|(_, member)| member));
        (page, iter.next().is_some())
    }

    /// The version a member list taken now shows.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The changes since the last tick, sorted by user id; `None` if there were none.
    pub fn take_changes(&mut self) -> Option<Tick> {
        if self.changes.is_empty() {
            return None;
        }
        let mut changes: Vec<Change> = self.changes.drain().map(|(_, change)| change).collect();
        changes.sort_by(|a, b| a.user.id.cmp(&b.user.id));
        let since = std::mem::replace(&mut self.ticked_at, self.version);
        Some(Tick { changes, since })
    }

    fn member(&mut self, user: &User) -> &mut Member {
        self.members
            .entry(user.id.clone())
            .or_insert_with(|| Member {
                user: user.clone(),
                listed: EncodedUser::new(user),
                connections: 0,
                remote: HashSet::new(),
            })
    }

    /// Notes a transition for the next tick.
    fn record(&mut self, user: &User, present: bool) {
        self.version += 1;
        let version = self.version;
        let change = self
            .changes
            .entry(user.id.clone())
            .or_insert_with(|| Change {
                user: user.clone(),
                before: !present,
                now: present,
                version,
            });
        change.now = present;
        change.version = version;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DisplayName;

    fn user(name: &str) -> User {
        User {
            id: UserId::from_trusted(format!("id-{name}")),
            name: DisplayName::parse(name).unwrap(),
            guest: true,
        }
    }

    #[test]
    fn two_tabs_are_one_member_and_one_announcement() {
        let mut room = RoomPresence::default();
        assert!(room.connect(&user("ann")).changed);
        assert!(!room.connect(&user("ann")).changed);
        assert_eq!(room.count(), 1);
        let (arrived, departed) = room.take_changes().unwrap().shared();
        assert_eq!(arrived, [user("ann")]);
        assert!(departed.is_empty());
        assert!(!room.disconnect(&user("ann").id).changed);
        assert!(room.disconnect(&user("ann").id).changed);
        assert_eq!(room.take_changes().unwrap().shared().1, [user("ann")]);
    }

    #[test]
    fn coming_and_going_within_a_tick_is_announced_only_to_who_saw_the_coming() {
        let mut room = RoomPresence::default();
        room.connect(&user("ann"));
        let seen = room.version(); // someone's `joined` lists ann
        room.disconnect(&user("ann").id);
        let tick = room.take_changes().unwrap();
        assert_eq!(tick.shared(), (vec![], vec![]), "older members never knew");
        assert_eq!(tick.newer_than(seen), (vec![], vec![user("ann")]));
    }

    #[test]
    fn members_page_in_id_order() {
        let mut room = RoomPresence::default();
        for name in ["d", "a", "c", "b", "e"] {
            room.connect(&user(name));
        }
        let (first, more) = room.page(None, 2);
        assert_eq!(first, [&user("a"), &user("b")]);
        assert!(more);
        let (rest, more) = room.page(Some(&user("b").id), 10);
        assert_eq!(rest, [&user("c"), &user("d"), &user("e")]);
        assert!(!more);
    }

    #[test]
    fn a_user_on_two_nodes_is_one_member() {
        let mut room = RoomPresence::fresh();
        let node: NodeId = "n2".into();
        room.connect(&user("ann"));
        assert!(!room.remote(&node, &user("ann"), true));
        assert!(!room.disconnect(&user("ann").id).changed);
        assert!(room.remote(&node, &user("ann"), false));
        assert_eq!(room.count(), 0);
    }
}
