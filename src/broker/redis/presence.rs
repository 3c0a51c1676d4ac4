//! This node's presence in Redis and the cluster's upkeep: announcing local changes in order,
//! heartbeats, removing dead nodes' members, and re-reading everyone's presence now and then.

use std::collections::HashMap;
use std::sync::Arc;

use redis::AsyncCommands;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::wire::{Event, field, json};
use super::{NODE_TTL, RECONCILE_EVERY, Shared, TICK};
use crate::broker::{NodeId, PresenceChange};
use crate::domain::{RoomName, User};

impl Shared {
    pub(super) async fn heartbeat(&self) -> redis::RedisResult<()> {
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

    pub(super) async fn members_elsewhere(
        &self,
        room: &RoomName,
    ) -> redis::RedisResult<Vec<(NodeId, User)>> {
        let mut commands = self.commands.clone();
        let entries: Vec<(String, String)> =
            commands.hgetall(self.keys.presence(room.as_str())).await?;
        Ok(self.others(entries))
    }

    /// Removes every presence entry of `node` and tells the others it is gone.
    pub(super) async fn forget(&self, node: &str) -> redis::RedisResult<()> {
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
    pub(super) async fn sweep(&self) -> redis::RedisResult<()> {
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
    pub(super) async fn reconcile(&self) -> redis::RedisResult<()> {
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
    pub(super) fn others(&self, entries: Vec<(String, String)>) -> Vec<(NodeId, User)> {
        entries
            .into_iter()
            .filter_map(|(field, user)| {
                let (node, _) = field.split_once(' ')?;
                let user: User = serde_json::from_str(&user).ok()?;
                (node != &*self.node).then(|| (NodeId::from(node), user))
            })
            .collect()
    }
}

/// Writes this node's presence changes to Redis and the channel, in the order they happened.
pub(super) async fn announce(
    shared: Arc<Shared>,
    mut changes: mpsc::UnboundedReceiver<PresenceChange>,
) {
    while let Some(change) = changes.recv().await {
        let key = shared.keys.presence(change.room.as_str());
        let field = field(&shared.node, &change.user);
        let mut pipe = redis::pipe();
        if change.present {
            pipe.cmd("HSET")
                .arg(&key)
                .arg(&field)
                .arg(json(&change.user))
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
            .arg(json(&event))
            .ignore();
        let mut commands = shared.commands.clone();
        if let Err(error) = pipe.query_async::<()>(&mut commands).await {
            // The rebuild after reconnecting rewrites this node's whole presence.
            tracing::warn!(%error, "announcing presence failed");
        }
    }
}

/// Heartbeats, sweeps dead nodes, and reconciles presence now and then.
pub(super) async fn keep_alive(shared: Arc<Shared>, stop: CancellationToken) {
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
