//! The single-node broker: publishing is delivering, in the caller's order, with no copy; there
//! are no other nodes, so no remote members.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Announce, Broker, BrokerError, Control, Deliver, NodeId, Published};
use crate::domain::{RoomName, User};

pub struct LocalBroker {
    sink: Arc<dyn Deliver>,
}

impl LocalBroker {
    pub fn new(sink: Arc<dyn Deliver>) -> Self {
        Self { sink }
    }
}

#[async_trait]
impl Broker for LocalBroker {
    async fn publish(&self, batch: Vec<Published>) -> Result<(), BrokerError> {
        for published in batch {
            self.sink.deliver(published);
        }
        Ok(())
    }

    async fn control(&self, control: Control) -> Result<(), BrokerError> {
        self.sink.control(&control);
        Ok(())
    }

    fn presence_out(&self) -> Option<Arc<dyn Announce>> {
        None
    }

    async fn remote_members(&self, _room: &RoomName) -> Result<Vec<(NodeId, User)>, BrokerError> {
        Ok(Vec::new())
    }

    /// Nothing outside the process to wait for.
    async fn ready(&self) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn stop(&self) {}
}
