//! Rooms on this node: membership and presence ([`hub`]), members on other nodes
//! ([`elsewhere`]), the lobby's live counts ([`lobby`]), each connection's bounded queue
//! ([`outbox`]), each room's newest messages ([`recent`]), and the path of a sent message:
//! group commit, then publish ([`writer`]).

pub mod elsewhere;
pub mod hub;
pub mod lobby;
pub mod outbox;
pub mod recent;
pub mod writer;
