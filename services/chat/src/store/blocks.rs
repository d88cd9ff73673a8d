//! Blocks in the SQL database: who blocked whom. They live there whichever store holds the chats
//! (the SQL database is always present, and a block is about two users, not about a chat).

use super::{classify, now, on_pool, Store, StoreError};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One of a user's blocks, with the blocked user's username.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BlockRecord {
    /// The blocked user.
    pub blocked: Uuid,
    /// Their username (`None` when the user no longer exists).
    pub username: Option<String>,
    /// When the block was made.
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Records that `blocker` blocks `blocked`; returns the block and whether it is new (an
    /// existing block keeps its time).
    pub async fn block(
        &self,
        blocker: Uuid,
        blocked: Uuid,
    ) -> Result<(DateTime<Utc>, bool), StoreError> {
        let at = now();
        let inserted = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO blocks (blocker, blocked, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (blocker, blocked) DO NOTHING",
            )
            .bind(blocker)
            .bind(blocked)
            .bind(at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(classify)?;
        if inserted == 1 {
            return Ok((at, true));
        }
        let existing: Option<DateTime<Utc>> = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT created_at FROM blocks WHERE blocker = $1 AND blocked = $2",
            )
            .bind(blocker)
            .bind(blocked)
            .fetch_optional(pool)
            .await
        })
        .map_err(classify)?;
        // Unblocked between the two queries: the caller still asked for a block, so make it.
        match existing {
            Some(created_at) => Ok((created_at, false)),
            None => Box::pin(self.block(blocker, blocked)).await,
        }
    }

    /// Removes `blocker`'s block of `blocked`; returns whether there was one.
    pub async fn unblock(&self, blocker: Uuid, blocked: Uuid) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM blocks WHERE blocker = $1 AND blocked = $2")
                .bind(blocker)
                .bind(blocked)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() > 0)
        })
        .map_err(classify)
    }

    /// How many users `blocker` blocks.
    pub async fn count_blocks(&self, blocker: Uuid) -> Result<u64, StoreError> {
        let count: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM blocks WHERE blocker = $1")
                .bind(blocker)
                .fetch_one(pool)
                .await
        })
        .map_err(classify)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Up to `limit` of `blocker`'s blocks, newest first.
    pub async fn list_blocks(
        &self,
        blocker: Uuid,
        limit: u32,
    ) -> Result<Vec<BlockRecord>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_as::<_, BlockRecord>(
                "SELECT b.blocked, u.username, b.created_at FROM blocks b \
                 LEFT JOIN users u ON u.id = b.blocked \
                 WHERE b.blocker = $1 ORDER BY b.created_at DESC, b.blocked LIMIT $2",
            )
            .bind(blocker)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })
        .map_err(classify)
    }

    /// Whether either of `a` and `b` blocks the other (one indexed lookup per direction, in
    /// one round trip).
    pub async fn blocked_between(&self, a: Uuid, b: Uuid) -> Result<bool, StoreError> {
        let found: Option<i32> = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT 1 FROM blocks WHERE (blocker = $1 AND blocked = $2) \
                 OR (blocker = $2 AND blocked = $1) LIMIT 1",
            )
            .bind(a)
            .bind(b)
            .fetch_optional(pool)
            .await
        })
        .map_err(classify)?;
        Ok(found.is_some())
    }
}
