//! Rooms on this node: the hub ([`hub`]: who subscribes to what, fan-out into each room's
//! [`log`] of encoded messages), presence per room ([`presence`]), members on other nodes
//! ([`elsewhere`]), the lobby's live counts ([`lobby`]), each connection's mailbox ([`outbox`]),
//! and the path of a sent message: group commit, then publish ([`writer`]).

pub mod elsewhere;
pub mod hub;
pub mod lobby;
pub mod log;
pub mod outbox;
pub mod presence;
pub mod writer;
