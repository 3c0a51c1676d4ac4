//! Cross-node fan-out behind one small trait. A node publishes every committed message to the
//! broker; the broker hands it to every node's [`Deliver`] sink (its own included), which fans
//! it out to local connections. On one node the broker is a direct call; a Redis broker slots
//! in here without touching sessions or rooms.

pub mod local;

use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;

use crate::domain::{ConnectionId, Message};

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

/// Where a broker hands what it receives: the local fan-out.
pub trait Deliver: Send + Sync + 'static {
    fn deliver(&self, published: Published);
}

#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publishes committed messages, in seq order per room. Returns once every node will see
    /// them in that order.
    async fn publish(&self, batch: Vec<Published>) -> Result<(), BrokerError>;
}
