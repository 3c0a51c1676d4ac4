//! Rooms on this node: who may read each ([`access`]), the hub ([`hub`]: who subscribes to what, fan-out into each room's
//! [`log`] of encoded messages), who is present where, here and on other nodes
//! ([`presence`]), the lobby's live counts ([`lobby`]), each connection's mailbox ([`outbox`]),
//! connections by session and user ([`registry`]), what a user has not read ([`unread`]), and the path of a sent message: group commit, then
//! publish ([`writer`]).

pub mod access;
pub mod hub;
pub mod lobby;
pub mod log;
pub mod outbox;
pub mod presence;
pub mod registry;
pub mod unread;
pub mod writer;
