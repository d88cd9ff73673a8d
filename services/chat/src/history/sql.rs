//! The history in the service's own database (SQLite by default, or PostgreSQL): the
//! `message_history` table, written by [`SqlHistorySink`] (a pipeline sink) and read by
//! [`SqlHistory`].
//!
//! Rows are keyed by `(chat_id, ticks, time)`, where `ticks` is the TimeUUID's timestamp, so the
//! key orders a chat's messages by time and a page is one index range scan. Writing a group
//! again (a replay after a crash, a retried batch) inserts nothing new: `ON CONFLICT DO NOTHING`
//! on the key makes the sink idempotent by `(chat_id, time)`.

use super::{History, HistoryError};
use crate::store::{on_pool, Store, StoreError};
use crate::timeuuid::ticks;
use async_trait::async_trait;
use confab_pipeline::{ChatMessage, Group, Sink, SinkError};
use uuid::Uuid;

/// Reads history pages from `message_history`.
#[derive(Debug, Clone)]
pub struct SqlHistory {
    store: Store,
}

impl SqlHistory {
    /// Reads from `store` (migrated).
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    message_id: String,
    chat_id: String,
    from_user: String,
    to_user: String,
    body: String,
    time: Uuid,
    time_iso: String,
}

fn history_error(err: StoreError) -> HistoryError {
    if err.is_retryable() {
        HistoryError::Unavailable(err.to_string())
    } else {
        HistoryError::Failed(err.to_string())
    }
}

#[async_trait]
impl History for SqlHistory {
    fn name(&self) -> &'static str {
        "sql"
    }

    async fn page(
        &self,
        chat_id: &str,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, HistoryError> {
        let (before_ticks, before_time) = match before {
            Some(cursor) => {
                let t = ticks(&cursor).ok_or_else(|| {
                    HistoryError::Failed(format!("cursor {cursor} is not a TimeUUID"))
                })?;
                (t, cursor)
            }
            None => (i64::MAX, Uuid::max()),
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = on_pool!(&self.store, pool => {
            sqlx::query_as::<_, Row>(
                "SELECT message_id, chat_id, from_user, to_user, body, time, time_iso \
                 FROM message_history \
                 WHERE chat_id = $1 AND (ticks, time) < ($2, $3) \
                 ORDER BY ticks DESC, time DESC \
                 LIMIT $4",
            )
            .bind(chat_id)
            .bind(before_ticks)
            .bind(before_time)
            .bind(limit)
            .fetch_all(pool)
            .await
        })
        .map_err(|err| history_error(crate::store::classify(err)))?;
        Ok(rows
            .into_iter()
            .map(|row| ChatMessage {
                message_id: row.message_id.into(),
                chat_id: row.chat_id.into(),
                from_user: row.from_user.into(),
                to_user: row.to_user.into(),
                body: row.body.into(),
                time: row.time,
                time_iso: row.time_iso.into(),
            })
            .collect())
    }

    async fn check(&self) -> Result<(), HistoryError> {
        self.store.ping().await.map_err(history_error)
    }
}

/// Rows per `INSERT` statement: 9 parameters each, far under both databases' limits, and at most
/// this many statement shapes in each connection's statement cache.
const ROWS_PER_INSERT: usize = 100;

/// A pipeline sink writing every message of every group as one `message_history` row.
#[derive(Debug, Clone)]
pub struct SqlHistorySink {
    store: Store,
}

impl SqlHistorySink {
    /// Writes to `store` (migrated).
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// PostgreSQL text cannot hold NUL; the service refuses such bodies, but the log may hold
/// records from other producers. Replace rather than refuse, so one record cannot block a batch.
fn text(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains('\0') {
        value.replace('\0', "\u{fffd}").into()
    } else {
        value.into()
    }
}

#[async_trait]
impl Sink<String, ChatMessage> for SqlHistorySink {
    fn name(&self) -> &str {
        "sql-history"
    }

    async fn write(&self, groups: &[Group<String, ChatMessage>]) -> Result<(), SinkError> {
        let mut rows = Vec::new();
        for group in groups {
            for message in &group.records {
                let Some(ticks) = ticks(&message.time) else {
                    tracing::warn!(
                        message_id = %message.message_id,
                        "Skipped a history row whose time is not a TimeUUID."
                    );
                    continue;
                };
                rows.push((group.id, ticks, message));
            }
        }
        // A statement per message was most of the SQL threads' work in `confab up` (a round trip
        // to the database's thread each); one per up to ROWS_PER_INSERT rows, in one transaction.
        let result = on_pool!(&self.store, pool => {
            async {
                let mut tx = pool.begin().await?;
                for chunk in rows.chunks(ROWS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::new(
                        "INSERT INTO message_history \
                           (chat_id, ticks, time, message_id, from_user, to_user, body, time_iso, \
                            group_id) ",
                    );
                    insert.push_values(chunk, |mut row, (group_id, ticks, message)| {
                        row.push_bind(text(&message.chat_id))
                            .push_bind(*ticks)
                            .push_bind(message.time)
                            .push_bind(text(&message.message_id))
                            .push_bind(text(&message.from_user))
                            .push_bind(text(&message.to_user))
                            .push_bind(text(&message.body))
                            .push_bind(text(&message.time_iso))
                            .push_bind(*group_id);
                    });
                    insert.push(" ON CONFLICT (chat_id, ticks, time) DO NOTHING");
                    insert.build().execute(&mut *tx).await?;
                }
                tx.commit().await
            }
            .await
        });
        result.map_err(|err| {
            let err = crate::store::classify(err);
            if err.is_retryable() {
                SinkError::retryable(format!("writing chat history to SQL: {err}"))
            } else {
                SinkError::fatal(format!("writing chat history to SQL: {err}"))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::text;

    #[test]
    fn nul_characters_are_replaced() {
        assert_eq!(text("a\0b"), "a\u{fffd}b");
        assert!(matches!(text("plain"), std::borrow::Cow::Borrowed(_)));
    }
}
