//! Read positions in the SQL database: how far each member has read each chat, as the `time` of
//! the newest message they have seen. Positions only move forward: the upsert compares the
//! TimeUUIDs' timestamps (`read_ticks`), so concurrent marks from two devices keep the newer.

use super::{classify, now, on_pool, Store, StoreError};
use crate::timeuuid::ticks;
use std::collections::HashMap;
use uuid::Uuid;

impl Store {
    /// Moves `user`'s position in `chat_id` forward to `time`; returns the stored position.
    pub(crate) async fn mark_read_sql(
        &self,
        user: Uuid,
        chat_id: Uuid,
        time: Uuid,
    ) -> Result<Uuid, StoreError> {
        let read_ticks = ticks(&time).ok_or_else(|| {
            StoreError::Corrupt(format!("read position {time} is not a version-1 TimeUUID"))
        })?;
        let at = now();
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO read_positions (user_id, chat_id, read_up_to, read_ticks, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (user_id, chat_id) DO UPDATE \
                 SET read_up_to = excluded.read_up_to, read_ticks = excluded.read_ticks, \
                     updated_at = excluded.updated_at \
                 WHERE read_positions.read_ticks < excluded.read_ticks",
            )
            .bind(user)
            .bind(chat_id)
            .bind(time)
            .bind(read_ticks)
            .bind(at)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(classify)?;
        let stored: Option<Uuid> = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT read_up_to FROM read_positions WHERE user_id = $1 AND chat_id = $2",
            )
            .bind(user)
            .bind(chat_id)
            .fetch_optional(pool)
            .await
        })
        .map_err(classify)?;
        stored.ok_or_else(|| StoreError::Corrupt("a read position vanished after its write".into()))
    }

    /// `user`'s positions in `chats` (those never marked are absent).
    pub(crate) async fn read_positions_sql(
        &self,
        user: Uuid,
        chats: &[Uuid],
    ) -> Result<HashMap<Uuid, Uuid>, StoreError> {
        if chats.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(Uuid, Uuid)> = on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(
                "SELECT chat_id, read_up_to FROM read_positions WHERE user_id = ",
            );
            query.push_bind(user);
            query.push(" AND chat_id IN (");
            let mut list = query.separated(", ");
            for chat in chats {
                list.push_bind(*chat);
            }
            query.push(")");
            query.build_query_as::<(Uuid, Uuid)>().fetch_all(pool).await
        })
        .map_err(classify)?;
        Ok(rows.into_iter().collect())
    }
}
