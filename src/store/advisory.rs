//! Cross-node publish order on PostgreSQL: session-level advisory locks over the batch's rooms,
//! taken before a batch is stored and released after it is published. Seqs are assigned under
//! the room's row lock anyway; holding the advisory lock past the commit until the publish has
//! reached Redis is what makes every node see a room's messages in seq order.
//!
//! Rooms are hashed into [`BUCKETS`] lock keys and a batch locks the set of its rooms' buckets,
//! sorted, in one statement: one round trip and at most 64 locks whatever the number of rooms
//! (a lock per room cost a round trip per room, 1,000 per batch over 1,000 rooms). The price is
//! false sharing: two nodes' batches over disjoint rooms wait for each other when their rooms
//! share a bucket, and a batch over hundreds of rooms holds every bucket. Each node has one
//! writer, so that serialises at most one batch per node against the other nodes' batches,
//! and group commit makes the waiting batches larger rather than more numerous.

use async_trait::async_trait;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

use super::{OrderHold, PublishOrder, StoreError};
use crate::domain::RoomName;

/// The advisory-lock class confab uses, so its locks never collide with another application's.
pub(crate) const LOCK_CLASS: i32 = 0x00C0_FAB0;
/// Lock keys rooms are hashed into. Every node must use the same number and hash.
const BUCKETS: u64 = 64;

/// A room's lock key: FNV-1a of its name, the same on every node and every build (std's
/// hasher is seeded per process and would not do).
fn bucket(room: &RoomName) -> i32 {
    let hash = room
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    // Below BUCKETS (64), so it fits.
    i32::try_from(hash % BUCKETS).unwrap_or_default()
}

pub struct AdvisoryLocks {
    pool: PgPool,
}

impl AdvisoryLocks {
    /// One connection: the node has one writer, which holds at most one batch's locks at once.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy(url)?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl PublishOrder for AdvisoryLocks {
    async fn hold(&self, rooms: &[&RoomName]) -> Result<Box<dyn OrderHold>, StoreError> {
        let mut buckets: Vec<i32> = rooms.iter().map(|room| bucket(room)).collect();
        // One global order of acquisition: two nodes with overlapping batches cannot deadlock.
        // `unnest` yields the array in order, so the locks are taken in this order.
        buckets.sort_unstable();
        buckets.dedup();
        let mut connection = self.pool.acquire().await?;
        let locked =
            sqlx::query("SELECT count(pg_advisory_lock($1, b)) FROM unnest($2::int4[]) AS b")
                .bind(LOCK_CLASS)
                .bind(&buckets)
                .execute(&mut *connection)
                .await;
        if let Err(error) = locked {
            release(connection).await;
            return Err(error.into());
        }
        Ok(Box::new(Held { connection }))
    }
}

struct Held {
    connection: PoolConnection<Postgres>,
}

#[async_trait]
impl OrderHold for Held {
    async fn release(self: Box<Self>) {
        release(self.connection).await;
    }
}

async fn release(mut connection: PoolConnection<Postgres>) {
    let unlocked = sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut *connection)
        .await;
    if unlocked.is_err() {
        // Closing the session releases its locks on the server side.
        let _ = connection.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rooms_lock_key_is_fnv1a_of_its_name_so_every_node_agrees() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (the published test vector); 0x8c % 64 = 12.
        assert_eq!(bucket(&RoomName::parse("a").unwrap()), 12);
        for name in ["general", "r-1", &"x".repeat(64)] {
            let key = bucket(&RoomName::parse(name).unwrap());
            assert!((0..BUCKETS as i32).contains(&key), "{name}: {key}");
        }
    }
}
