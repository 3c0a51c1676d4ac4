//! Who is present where, in one place: in each room this node hosts ([`RoomPresence`]: users
//! counted by their connections here and the other nodes they are on, with the changes waiting
//! for the next tick), and in every room on other nodes ([`Elsewhere`], so the lobby can count
//! rooms whose members are all elsewhere). Changes leave for other nodes through the broker's
//! `Announce` port and arrive through its `Deliver` sink.

mod elsewhere;
mod room;

use std::time::Duration;

pub use elsewhere::Elsewhere;
pub use room::{RoomPresence, Transition};

/// How long presence changes gather before one `presence` frame per room goes out. Under
/// churn every member of a busy room gets one frame per tick, so the tick sets the cost of
/// presence: at 50 ms, 10,000 joins into 100 rooms spent most of their time writing presence.
pub const TICK: Duration = Duration::from_millis(100);
