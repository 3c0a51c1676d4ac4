//! The cluster broker on Redis. Every node publishes committed messages and presence changes
//! on one pub/sub channel and applies what it hears to its own rooms; presence is also kept in
//! Redis hashes, so a node that starts hosting a room (or that lost its connection) can read
//! the whole picture. Nodes heartbeat; any node that sees a heartbeat lapse removes the dead
//! node's members and tells the others.
//!
//! Keys, all under the configured prefix `P`:
//! - `P:events`: the pub/sub channel.
//! - `P:node:<node>`: a node's heartbeat, expiring after [`NODE_TTL`].
//! - `P:nodes`: the set of nodes that may hold presence.
//! - `P:presence:<room>`: hash, field `<node> <user id>` → the user (JSON).
//! - `P:node-rooms:<node>`: the rooms where a node has presence entries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Broker, BrokerError, Deliver, NodeId, PresenceChange, Published};
use crate::domain::{ConnectionId, Message, RoomName, User};
use crate::protocol::RESUME_CAP;
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

/// What travels on the channel.
#[derive(Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
enum Event {
    Message {
        node: String,
        conn: u64,
        message: WireMessage,
    },
    Presence {
        node: String,
        room: RoomName,
        user: User,
        present: bool,
    },
    Down {
        node: String,
    },
    Resync {
        node: String,
    },
}

#[derive(Serialize, Deserialize)]
struct WireMessage {
    room: String,
    seq: u64,
    id: String,
    ts: i64,
    user: User,
    text: String,
    client_id: String,
}

impl WireMessage {
    fn from_message(message: &Message) -> Self {
        Self {
            room: message.room.as_str().to_owned(),
            seq: message.seq,
            id: message.id.clone(),
            ts: message.ts,
            user: message.user.clone(),
            text: message.text.clone(),
            client_id: message.client_id.clone(),
        }
    }

    fn into_message(self) -> Option<Message> {
        Some(Message {
            room: RoomName::parse(&self.room).ok()?,
            seq: self.seq,
            id: self.id,
            ts: self.ts,
            user: self.user,
            text: self.text,
            client_id: self.client_id,
        })
    }
}

struct Keys {
    prefix: String,
}

impl Keys {
    fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }
    fn node(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }
    fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
    fn presence(&self, room: &str) -> String {
        format!("{}:presence:{room}", self.prefix)
    }
    fn node_rooms(&self, node: &str) -> String {
        format!("{}:node-rooms:{node}", self.prefix)
    }
}

fn field(node: &str, user: &User) -> String {
    format!("{node} {}", user.id.as_str())
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

pub struct RedisBroker {
    shared: Arc<Shared>,
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
        announcements: mpsc::UnboundedReceiver<PresenceChange>,
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
        let tasks = vec![
            tokio::spawn(listen(shared.clone(), stop.clone(), subscribed)),
            tokio::spawn(announce(shared.clone(), announcements)),
            tokio::spawn(keep_alive(shared.clone(), stop.clone())),
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
            let payload = serde_json::to_string(&event).unwrap_or_default();
            pipe.cmd("PUBLISH").arg(&channel).arg(payload).ignore();
        }
        let mut commands = shared.commands.clone();
        match pipe.query_async::<()>(&mut commands).await {
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

    async fn remote_members(&self, room: &RoomName) -> Result<Vec<(NodeId, User)>, BrokerError> {
        self.shared
            .members_elsewhere(room)
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

    async fn heartbeat(&self) -> redis::RedisResult<()> {
        let mut commands = self.commands.clone();
        let ttl = u64::try_from(NODE_TTL.as_millis()).unwrap_or(u64::MAX);
        redis::pipe()
            .cmd("SET")
            .arg(self.keys.node(&self.node))
            .arg(1)
            .arg("PX")
            .arg(ttl)
            .ignore()
            .cmd("SADD")
            .arg(self.keys.nodes())
            .arg(&*self.node)
            .ignore()
            .query_async(&mut commands)
            .await
    }

    async fn publish_event(&self, event: &Event) -> redis::RedisResult<()> {
        let mut commands = self.commands.clone();
        let payload = serde_json::to_string(event).unwrap_or_default();
        commands.publish(self.keys.events(), payload).await
    }

    async fn members_elsewhere(&self, room: &RoomName) -> redis::RedisResult<Vec<(NodeId, User)>> {
        let mut commands = self.commands.clone();
        let entries: Vec<(String, String)> =
            commands.hgetall(self.keys.presence(room.as_str())).await?;
        Ok(self.others(entries))
    }

    /// Removes every presence entry of `node` and tells the others it is gone.
    async fn forget(&self, node: &str) -> redis::RedisResult<()> {
        let mut commands = self.commands.clone();
        let rooms: Vec<String> = commands.smembers(self.keys.node_rooms(node)).await?;
        for room in rooms {
            let key = self.keys.presence(&room);
            let fields: Vec<String> = commands.hkeys(&key).await?;
            let prefix = format!("{node} ");
            let theirs: Vec<&String> = fields.iter().filter(|f| f.starts_with(&prefix)).collect();
            if !theirs.is_empty() {
                let _: () = commands.hdel(&key, theirs).await?;
            }
        }
        let _: () = commands.del(self.keys.node_rooms(node)).await?;
        let removed: i64 = commands.srem(self.keys.nodes(), node).await?;
        if removed > 0 || node == &*self.node {
            self.publish_event(&Event::Down {
                node: node.to_owned(),
            })
            .await?;
        }
        Ok(())
    }

    /// Nodes whose heartbeat lapsed lose their presence.
    async fn sweep(&self) -> redis::RedisResult<()> {
        let mut commands = self.commands.clone();
        let nodes: Vec<String> = commands.smembers(self.keys.nodes()).await?;
        for node in nodes.iter().filter(|n| n.as_str() != &*self.node) {
            let alive: bool = commands.exists(self.keys.node(node)).await?;
            if !alive {
                tracing::info!(node, "a node stopped heartbeating; removing its members");
                self.forget(node).await?;
                self.sink.node_gone(&NodeId::from(node.as_str()));
            }
        }
        Ok(())
    }

    /// Re-reads every room's members on other nodes: hosted rooms get their member lists
    /// replaced, and the lobby its counts of rooms hosted elsewhere.
    async fn reconcile(&self) -> redis::RedisResult<()> {
        let mut commands = self.commands.clone();
        let prefix = self.keys.presence("");
        let pattern = format!("{prefix}*");
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut commands)
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("HGETALL").arg(key);
        }
        let hashes: Vec<Vec<(String, String)>> = if keys.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut commands).await?
        };
        let mut by_room: HashMap<RoomName, Vec<(NodeId, User)>> = HashMap::new();
        for (key, entries) in keys.iter().zip(hashes) {
            let Some(room) = key
                .strip_prefix(&prefix)
                .and_then(|r| RoomName::parse(r).ok())
            else {
                continue;
            };
            by_room
                .entry(room.clone())
                .or_default()
                .extend(self.others(entries));
        }
        for (room, _) in self.sink.local_presence() {
            let members = by_room.get(&room).cloned().unwrap_or_default();
            self.sink.replace_remote(&room, members);
        }
        let everywhere = by_room
            .into_iter()
            .flat_map(|(room, members)| {
                members
                    .into_iter()
                    .map(move |(node, user)| (room.clone(), node, user.id))
            })
            .collect();
        self.sink.replace_elsewhere(everywhere);
        Ok(())
    }

    /// Presence hash entries of other nodes, parsed.
    fn others(&self, entries: Vec<(String, String)>) -> Vec<(NodeId, User)> {
        entries
            .into_iter()
            .filter_map(|(field, user)| {
                let (node, _) = field.split_once(' ')?;
                let user: User = serde_json::from_str(&user).ok()?;
                (node != &*self.node).then(|| (NodeId::from(node), user))
            })
            .collect()
    }

    /// After (re)connecting: write this node's presence again (Redis may have restarted empty),
    /// tell the others to re-read, re-read theirs, and deliver messages missed meanwhile.
    async fn rebuild(&self) -> redis::RedisResult<()> {
        self.heartbeat().await?;
        let mut commands = self.commands.clone();
        for (room, users) in self.sink.local_presence() {
            let key = self.keys.presence(room.as_str());
            let fields: Vec<String> = commands.hkeys(&key).await?;
            let prefix = format!("{} ", self.node);
            let stale: Vec<&String> = fields.iter().filter(|f| f.starts_with(&prefix)).collect();
            if !stale.is_empty() {
                let _: () = commands.hdel(&key, stale).await?;
            }
            for user in &users {
                let _: () = commands
                    .hset(
                        &key,
                        field(&self.node, user),
                        serde_json::to_string(user).unwrap_or_default(),
                    )
                    .await?;
            }
            let _: () = commands
                .sadd(self.keys.node_rooms(&self.node), room.as_str())
                .await?;
        }
        self.publish_event(&Event::Resync {
            node: self.node.to_string(),
        })
        .await?;
        self.reconcile().await?;
        self.catch_up().await;
        // Whatever is still unheard belongs to rooms no longer hosted here.
        self.unheard().clear();
        Ok(())
    }

    async fn try_rebuild(&self) {
        use std::sync::atomic::Ordering;
        if !self.needs_rebuild.load(Ordering::SeqCst) {
            return;
        }
        match self.rebuild().await {
            Ok(()) => self.needs_rebuild.store(false, Ordering::SeqCst),
            Err(error) => {
                tracing::warn!(%error, "rebuilding shared state failed; retrying shortly")
            }
        }
    }

    /// Messages committed while this node could not hear the channel, from the store.
    async fn catch_up(&self) {
        for (room, last) in self.sink.hosted_seqs() {
            let Some(last) = last else { continue };
            match self.store.after(&room, last, RESUME_CAP).await {
                Ok(page) => {
                    for message in page.messages {
                        let origin = self.unheard().remove(&(room.clone(), message.seq));
                        self.sink.deliver(Published {
                            message: Arc::new(message),
                            origin,
                        });
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, room = %room, "catching up from the store failed")
                }
            }
        }
    }

    async fn apply(&self, payload: &str) {
        let Ok(event) = serde_json::from_str::<Event>(payload) else {
            tracing::warn!("ignoring an unreadable event on the channel");
            return;
        };
        match event {
            Event::Message {
                node,
                conn,
                message,
            } => {
                let origin = (node == *self.node).then_some(ConnectionId(conn));
                if let Some(message) = message.into_message() {
                    if origin.is_some() {
                        self.unheard().remove(&(message.room.clone(), message.seq));
                    }
                    self.sink.deliver(Published {
                        message: Arc::new(message),
                        origin,
                    });
                }
            }
            Event::Presence {
                node,
                room,
                user,
                present,
            } => {
                if node != *self.node {
                    self.sink
                        .remote_presence(&NodeId::from(node), &room, &user, present);
                }
            }
            Event::Down { node } => {
                if node != *self.node {
                    self.sink.node_gone(&NodeId::from(node));
                }
            }
            Event::Resync { node } => {
                if node != *self.node
                    && let Err(error) = self.reconcile().await
                {
                    tracing::warn!(%error, "re-reading presence failed");
                }
            }
        }
    }
}

/// Listens on the channel for as long as the node runs, reconnecting with backoff.
async fn listen(
    shared: Arc<Shared>,
    stop: CancellationToken,
    subscribed: tokio::sync::oneshot::Sender<()>,
) {
    let mut subscribed = Some(subscribed);
    let mut backoff = BACKOFF_MIN;
    loop {
        let connected = async {
            let mut pubsub = shared.client.get_async_pubsub().await?;
            pubsub.subscribe(shared.keys.events()).await?;
            redis::RedisResult::Ok(pubsub)
        };
        let pubsub = tokio::select! {
            () = stop.cancelled() => return,
            result = tokio::time::timeout(COMMAND_TIMEOUT, connected) => result,
        };
        match pubsub {
            Ok(Ok(pubsub)) => {
                backoff = BACKOFF_MIN;
                if let Some(subscribed) = subscribed.take() {
                    let _ = subscribed.send(());
                } else {
                    tracing::info!("reconnected to Redis; rebuilding shared state");
                    shared
                        .needs_rebuild
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    shared.try_rebuild().await;
                }
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        () = stop.cancelled() => return,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    match message.get_payload::<String>() {
                        Ok(payload) => shared.apply(&payload).await,
                        Err(error) => tracing::warn!(%error, "unreadable pub/sub payload"),
                    }
                }
                tracing::warn!("lost the Redis subscription; reconnecting");
            }
            Ok(Err(error)) => tracing::warn!(%error, ?backoff, "cannot subscribe to Redis"),
            Err(_) => tracing::warn!(?backoff, "subscribing to Redis timed out"),
        }
        let jitter = Duration::from_millis(rand::random_range(0..=backoff.as_millis() as u64 / 2));
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff + jitter) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Writes this node's presence changes to Redis and the channel, in the order they happened.
async fn announce(shared: Arc<Shared>, mut changes: mpsc::UnboundedReceiver<PresenceChange>) {
    while let Some(change) = changes.recv().await {
        let key = shared.keys.presence(change.room.as_str());
        let field = field(&shared.node, &change.user);
        let mut pipe = redis::pipe();
        if change.present {
            pipe.cmd("HSET")
                .arg(&key)
                .arg(&field)
                .arg(serde_json::to_string(&change.user).unwrap_or_default())
                .ignore();
            pipe.cmd("SADD")
                .arg(shared.keys.node_rooms(&shared.node))
                .arg(change.room.as_str())
                .ignore();
        } else {
            pipe.cmd("HDEL").arg(&key).arg(&field).ignore();
        }
        let event = Event::Presence {
            node: shared.node.to_string(),
            room: change.room,
            user: change.user,
            present: change.present,
        };
        pipe.cmd("PUBLISH")
            .arg(shared.keys.events())
            .arg(serde_json::to_string(&event).unwrap_or_default())
            .ignore();
        let mut commands = shared.commands.clone();
        if let Err(error) = pipe.query_async::<()>(&mut commands).await {
            // The rebuild after reconnecting rewrites this node's whole presence.
            tracing::warn!(%error, "announcing presence failed");
        }
    }
}

/// Heartbeats, sweeps dead nodes, and reconciles presence now and then.
async fn keep_alive(shared: Arc<Shared>, stop: CancellationToken) {
    let mut ticks = 0u32;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(TICK) => {}
        }
        ticks = ticks.wrapping_add(1);
        let result = async {
            shared.try_rebuild().await;
            shared.heartbeat().await?;
            shared.sweep().await?;
            if ticks.is_multiple_of(RECONCILE_EVERY) {
                shared.reconcile().await?;
            }
            redis::RedisResult::Ok(())
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, "cluster upkeep failed; retrying");
        }
    }
}
