//! Cross-node publish order on PostgreSQL: a session-level advisory lock per room, taken
//! before a batch is stored and released after it is published. Seqs are assigned under the
//! room's row lock anyway; holding the advisory lock past the commit until the publish has
//! reached Redis is what makes every node see a room's messages in seq order.

use async_trait::async_trait;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

use super::{OrderHold, PublishOrder, StoreError};
use crate::domain::RoomName;

/// The advisory-lock class confab uses, so its locks never collide with another application's.
const LOCK_CLASS: i32 = 0x00C0_FAB0;

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
        let mut rooms: Vec<&str> = rooms.iter().map(|room| room.as_str()).collect();
        // One global order of acquisition: two nodes with overlapping batches cannot deadlock.
        rooms.sort_unstable();
        rooms.dedup();
        let mut connection = self.pool.acquire().await?;
        for room in rooms {
            let locked = sqlx::query("SELECT pg_advisory_lock($1, hashtext($2))")
                .bind(LOCK_CLASS)
                .bind(room)
                .execute(&mut *connection)
                .await;
            if let Err(error) = locked {
                release(connection).await;
                return Err(error.into());
            }
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
