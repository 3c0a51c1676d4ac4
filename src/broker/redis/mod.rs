//! The cluster broker on Redis. Every node publishes committed messages and presence changes
//! on one pub/sub channel and applies what it hears to its own rooms; presence is also kept in
//! Redis hashes, so a node that starts hosting a room (or that lost its connection) can read
//! the whole picture. Nodes heartbeat; any node that sees a heartbeat lapse removes the dead
//! node's members and tells the others.
//!
//! - [`wire`]: the events on the channel and the key names.
//! - [`listener`]: hears the channel, applies events, reconnects and rebuilds after an outage.
//! - [`presence`]: this node's presence in Redis, heartbeats, dead nodes, reconciling.

mod listener;
mod presence;
mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::wire::{Event, Keys, WireMessage, json};
use super::{Announce, Broker, BrokerError, Control, Deliver, NodeId, PresenceChange, Published};
use crate::domain::{ConnectionId, RoomName, User};
use crate::store::Store;

/// A node whose heartbeat is older than this is dead. With [`TICK`], its members leave every
/// other node's rooms within about `NODE_TTL + TICK` (well inside 15 s).
const NODE_TTL: Duration = Duration::from_secs(8);
/// Heartbeat and dead-node sweep period.
const TICK: Duration = Duration::from_secs(2);
/// How often each node re-reads the full presence of the rooms it hosts: a safety net that
/// makes any missed event good within this period.
const RECONCILE_EVERY: u32 = 8;
/// Redis commands give up after this; the caller sees `unavailable`, not a hang.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

fn redis_error(error: redis::RedisError) -> BrokerError {
    BrokerError::Unavailable(error.to_string())
}

struct Shared {
    node: NodeId,
    /// Set when the channel was lost: this node's shared state must be written again. Cleared
    /// only by a rebuild that succeeded; the upkeep tick retries until then.
    needs_rebuild: std::sync::atomic::AtomicBool,
    /// This node's published messages not yet heard back on the channel, with the connection
    /// that sent each: if the channel drops them, the catch-up from the store can still give
    /// the sender its own copy (with `client_id`).
    unheard: std::sync::Mutex<HashMap<(RoomName, u64), ConnectionId>>,
    keys: Keys,
    client: redis::Client,
    commands: ConnectionManager,
    sink: Arc<dyn Deliver>,
    store: Arc<dyn Store>,
}

/// This node's presence changes on their way to Redis, in the order they happened.
struct Announcer(mpsc::UnboundedSender<PresenceChange>);

impl Announce for Announcer {
    fn announce(&self, change: PresenceChange) {
        // The receiver lives as long as the broker; after it stops, nobody needs to hear.
        let _ = self.0.send(change);
    }
}

pub struct RedisBroker {
    shared: Arc<Shared>,
    announcer: Arc<Announcer>,
    stop: CancellationToken,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl RedisBroker {
    /// Connects (failing fast if Redis is unreachable now) and starts the listener, the
    /// presence announcer and the heartbeat.
    pub async fn start(
        url: &str,
        prefix: &str,
        sink: Arc<dyn Deliver>,
        store: Arc<dyn Store>,
    ) -> Result<Self, BrokerError> {
        let client = redis::Client::open(url).map_err(redis_error)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(BACKOFF_MAX);
        let commands = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(redis_error)?;
        let node: NodeId = uuid::Uuid::now_v7().to_string().into();
        let shared = Arc::new(Shared {
            node,
            needs_rebuild: false.into(),
            unheard: Default::default(),
            keys: Keys {
                prefix: prefix.to_owned(),
            },
            client,
            commands,
            sink,
            store,
        });
        shared.heartbeat().await.map_err(redis_error)?;
        let stop = CancellationToken::new();
        let (subscribed, first_subscription) = tokio::sync::oneshot::channel();
        let (announcer, announcements) = mpsc::unbounded_channel();
        let tasks = vec![
            tokio::spawn(listener::listen(shared.clone(), stop.clone(), subscribed)),
            tokio::spawn(presence::announce(shared.clone(), announcements)),
            tokio::spawn(presence::keep_alive(shared.clone(), stop.clone())),
        ];
        // Serve only once this node hears the channel: otherwise its first messages could be
        // published before it listens, and its own users would miss them.
        let _ = tokio::time::timeout(COMMAND_TIMEOUT * 2, first_subscription).await;
        // Learn who is where already, so the lobby counts rooms hosted only elsewhere.
        if let Err(error) = shared.reconcile().await {
            tracing::warn!(%error, "reading the cluster's presence failed; the next reconcile retries");
        }
        tracing::info!(node = %shared.node, prefix, "joined the cluster through Redis");
        Ok(Self {
            shared,
            announcer: Arc::new(Announcer(announcer)),
            stop,
            tasks: std::sync::Mutex::new(tasks),
        })
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, batch: Vec<Published>) -> Result<(), BrokerError> {
        if batch.is_empty() {
            return Ok(());
        }
        let shared = &self.shared;
        let channel = shared.keys.events();
        let mut pipe = redis::pipe();
        {
            let mut unheard = shared.unheard();
            for published in &batch {
                if let Some(origin) = published.origin {
                    unheard.insert(
                        (published.message.room.clone(), published.message.seq),
                        origin,
                    );
                }
            }
        }
        for published in &batch {
            let event = Event::Message {
                node: shared.node.to_string(),
                conn: published.origin.map_or(0, |c| c.0),
                message: WireMessage::from_message(&published.message),
            };
            pipe.cmd("PUBLISH").arg(&channel).arg(json(&event)).ignore();
        }
        let mut commands = shared.commands.clone();
        let started = std::time::Instant::now();
        let published = pipe.query_async::<()>(&mut commands).await;
        crate::telemetry::metrics::broker_published(started.elapsed());
        match published {
            Ok(()) => Ok(()),
            Err(error) => {
                // Stored already: this node's own members still get it now; other nodes see a
                // gap at their next message and resume from the store.
                for published in batch {
                    shared
                        .unheard()
                        .remove(&(published.message.room.clone(), published.message.seq));
                    shared.sink.deliver(published);
                }
                Err(redis_error(error))
            }
        }
    }

    async fn control(&self, control: Control) -> Result<(), BrokerError> {
        self.shared.sink.control(&control);
        let event = Event::Control {
            node: self.shared.node.to_string(),
            control,
        };
        self.shared.publish_event(&event).await.map_err(redis_error)
    }

    async fn remote_members(&self, room: &RoomName) -> Result<Vec<(NodeId, User)>, BrokerError> {
        self.shared
            .members_elsewhere(room)
            .await
            .map_err(redis_error)
    }

    fn presence_out(&self) -> Option<Arc<dyn Announce>> {
        Some(self.announcer.clone())
    }

    /// A PING on the command connection (the one publishes use), which reconnects by itself
    /// after an outage: ready again as soon as Redis is.
    async fn ready(&self) -> Result<(), BrokerError> {
        let mut commands = self.shared.commands.clone();
        redis::cmd("PING")
            .query_async::<()>(&mut commands)
            .await
            .map_err(redis_error)
    }

    async fn stop(&self) {
        self.stop.cancel();
        let tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for task in tasks {
            task.abort();
        }
        let node = self.shared.node.to_string();
        if let Err(error) = self.shared.forget(&node).await {
            tracing::warn!(%error, "could not remove this node's presence from Redis");
        }
    }
}

impl Shared {
    fn unheard(&self) -> std::sync::MutexGuard<'_, HashMap<(RoomName, u64), ConnectionId>> {
        self.unheard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn publish_event(&self, event: &Event) -> redis::RedisResult<()> {
        use redis::AsyncCommands;
        let mut commands = self.commands.clone();
        commands.publish(self.keys.events(), json(event)).await
    }
}
