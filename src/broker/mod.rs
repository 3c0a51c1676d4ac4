//! Cross-node fan-out behind small traits, one per direction:
//!
//! - out: [`Broker::publish`] (committed messages) and [`Announce`] (this node's presence
//!   changes, from [`Broker::presence_out`]);
//! - in: [`Deliver`], the sink every broker hands what it hears to: messages (its own node's
//!   included) and other nodes' presence; plus [`Broker::remote_members`] to read a room's
//!   members elsewhere.
//!
//! On one node the broker is a direct call ([`local`]); several nodes share Redis ([`redis`]).

pub mod local;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;

use crate::domain::{ConnectionId, Message, RoomName, User, UserId};

/// A node's id, unique per process start.
pub type NodeId = Arc<str>;

#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// A committed message on its way to every member of its room.
#[derive(Debug, Clone)]
pub struct Published {
    pub message: Arc<Message>,
    /// The connection that sent it, if it is on this node: it gets the copy with `client_id`.
    pub origin: Option<ConnectionId>,
}

/// One user's presence in one room *on this node* changed: their first connection there joined
/// (`present`), or their last one left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    pub room: RoomName,
    pub user: User,
    pub present: bool,
}

/// Why a user was removed from a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    Kicked,
    Banned,
}

impl Removal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kicked => "kicked",
            Self::Banned => "banned",
        }
    }
}

/// A change every node must apply to its own connections, within a second of it being made
/// on any node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "c", rename_all = "snake_case")]
pub enum Control {
    /// A session was signed out or revoked: its connections close with 4003.
    SessionEnded { sid: String },
    /// A server administrator closed `user`'s connections (`code` 4004) or banned the user
    /// (4005): every connection of theirs closes with `code`.
    UserClosed { user: UserId, code: u16 },
    /// A user was kicked or banned from a room: their connections leave it and are told so.
    Removed {
        room: RoomName,
        user: UserId,
        reason: Removal,
    },
    /// `user`'s read marker in `room` moved to `seq`: all their connections hear it.
    ReadMarker {
        user: UserId,
        room: RoomName,
        seq: u64,
    },
    /// `user` is typing in `room` (already throttled where it was typed).
    Typing { room: RoomName, user: User },
    /// A room's visibility, members or bans changed: forget what is cached about it.
    AccessChanged { room: RoomName },
}

/// Where a broker hands what it receives: this node's rooms.
pub trait Deliver: Send + Sync + 'static {
    /// A committed message, in seq order per room.
    fn deliver(&self, published: Published);
    /// Another node's member of `room` arrived (`present`) or left.
    fn remote_presence(&self, node: &NodeId, room: &RoomName, user: &User, present: bool);
    /// Everything this node believes about other nodes' members of `room`, replaced.
    fn replace_remote(&self, room: &RoomName, members: Vec<(NodeId, User)>);
    /// Every room's members on other nodes, replaced (for the lobby's counts of rooms that are
    /// not hosted here).
    fn replace_elsewhere(&self, entries: Vec<(RoomName, NodeId, UserId)>);
    /// A node died or left: its members leave every room.
    fn node_gone(&self, node: &NodeId);
    /// This node's own members, per room with local connections (to rebuild shared state).
    fn local_presence(&self) -> Vec<(RoomName, Vec<User>)>;
    /// Rooms hosted here with the last seq each has fanned out (to catch up after a gap).
    fn hosted_seqs(&self) -> Vec<(RoomName, Option<u64>)>;
    /// A change to apply to this node's connections (from any node, this one included).
    fn control(&self, control: &Control);
}

/// Where this node's presence changes go when other nodes must hear of them. It must not wait:
/// the hub calls it under a room's lock.
pub trait Announce: Send + Sync + 'static {
    fn announce(&self, change: PresenceChange);
}

#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publishes committed messages, in seq order per room. Returns once every node will see
    /// them in that order.
    async fn publish(&self, batch: Vec<Published>) -> Result<(), BrokerError>;

    /// Applies `control` on this node at once, then on every other node. An error means other
    /// nodes may not have heard; this node has applied it.
    async fn control(&self, control: Control) -> Result<(), BrokerError>;

    /// Where this node's presence changes go; `None` when there are no other nodes.
    fn presence_out(&self) -> Option<Arc<dyn Announce>>;

    /// Members of `room` connected to other nodes, for a room this node starts hosting.
    async fn remote_members(&self, room: &RoomName) -> Result<Vec<(NodeId, User)>, BrokerError>;

    /// Whether the broker can carry messages now, answered quickly (`/readyz`): a cheap round
    /// trip to whatever it depends on. Callers bound it with their own timeout.
    async fn ready(&self) -> Result<(), BrokerError>;

    /// Says goodbye to the other nodes (their users see this node's members leave).
    async fn stop(&self);
}
