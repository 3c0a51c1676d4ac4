//! Hearing the channel: applying each event to this node's rooms, and after an outage
//! reconnecting with backoff, rebuilding this node's shared state and catching up from the
//! store.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use super::wire::{Event, field, json};
use super::{BACKOFF_MAX, BACKOFF_MIN, COMMAND_TIMEOUT, Shared};
use crate::broker::{NodeId, Published};
use crate::domain::ConnectionId;
use crate::protocol::RESUME_CAP;

impl Shared {
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
                    .hset(&key, field(&self.node, user), json(user))
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

    pub(super) async fn try_rebuild(&self) {
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
            Event::Control { node, control } => {
                // This node applied its own before publishing.
                if node != *self.node {
                    self.sink.control(&control);
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
pub(super) async fn listen(
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
