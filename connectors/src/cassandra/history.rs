//! The history query: a page of a chat's messages older than a cursor, newest first.
//!
//! Walks the chat's non-empty buckets (`chat_buckets`) from the one holding the cursor down,
//! asking each for at most the messages still missing, and stops as soon as the page is full or
//! the oldest bucket is read. Every query names its partition; none needs `ALLOW FILTERING`.

use std::sync::Arc;

use confab_pipeline::chat::timeuuid_ms;
use confab_pipeline::ChatMessage;
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimeuuid;
use uuid::Uuid;

use super::config::CassandraConfig;
use super::{check_keyspace, CassandraError};

/// A `messages` row as read back.
type MessageColumns = (
    String,
    String,
    String,
    String,
    Option<String>,
    CqlTimeuuid,
    Option<String>,
);

/// Reads pages of chat history.
pub struct History {
    session: Arc<Session>,
    buckets: PreparedStatement,
    latest: PreparedStatement,
    before: PreparedStatement,
}

impl History {
    /// Prepares the queries on `session` for the keyspace in `config` (which must be migrated).
    pub async fn new(
        session: Arc<Session>,
        config: &CassandraConfig,
    ) -> Result<Self, CassandraError> {
        check_keyspace(&config.keyspace)?;
        let ks = &config.keyspace;
        let columns = "message_id, chat_id, from_user, to_user, body, time, time_iso";
        let prepare = |cql: String, page_size: i32| {
            let session = Arc::clone(&session);
            async move {
                let mut statement = session
                    .prepare(cql)
                    .await
                    .map_err(|e| CassandraError::query("preparing a history query", e))?;
                statement.set_consistency(config.consistency.into());
                statement.set_page_size(page_size);
                Ok::<_, CassandraError>(statement)
            }
        };
        Ok(Self {
            buckets: prepare(
                format!("SELECT bucket FROM {ks}.chat_buckets WHERE chat_id = ? AND bucket <= ?"),
                16,
            )
            .await?,
            latest: prepare(
                format!(
                    "SELECT {columns} FROM {ks}.messages WHERE chat_id = ? AND bucket = ? LIMIT ?"
                ),
                5000,
            )
            .await?,
            before: prepare(
                format!(
                    "SELECT {columns} FROM {ks}.messages \
                     WHERE chat_id = ? AND bucket = ? AND time < ? LIMIT ?"
                ),
                5000,
            )
            .await?,
            session,
        })
    }

    /// Up to `limit` messages of `chat_id` older than `before` (the newest ones when `None`),
    /// newest first. A page shorter than `limit` means the history is exhausted.
    pub async fn page(
        &self,
        chat_id: &str,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, CassandraError> {
        let limit = limit.min(i32::MAX as usize);
        let mut page = Vec::with_capacity(limit.min(1000));
        if limit == 0 {
            return Ok(page);
        }
        let upper = match before {
            Some(cursor) => {
                timeuuid_ms(&cursor).ok_or(CassandraError::InvalidCursor(cursor))? as i64
            }
            None => i64::MAX,
        };
        let mut buckets = self
            .session
            .execute_iter(self.buckets.clone(), (chat_id, upper))
            .await
            .map_err(|e| CassandraError::query("listing history buckets", e))?
            .rows_stream::<(i64,)>()
            .map_err(|e| CassandraError::query("listing history buckets", e))?;
        while let Some((bucket,)) = buckets
            .try_next()
            .await
            .map_err(|e| CassandraError::query("listing history buckets", e))?
        {
            let missing = (limit - page.len()) as i32;
            let result = match before {
                Some(cursor) => {
                    self.session
                        .execute_unpaged(
                            &self.before,
                            (chat_id, bucket, CqlTimeuuid::from(cursor), missing),
                        )
                        .await
                }
                None => {
                    self.session
                        .execute_unpaged(&self.latest, (chat_id, bucket, missing))
                        .await
                }
            }
            .map_err(|e| CassandraError::execution("reading a history page", &e))?;
            let rows = result
                .into_rows_result()
                .map_err(|e| CassandraError::query("reading a history page", e))?;
            for row in rows
                .rows::<MessageColumns>()
                .map_err(|e| CassandraError::query("reading a history page", e))?
            {
                let (message_id, chat_id, from_user, to_user, body, time, time_iso) =
                    row.map_err(|e| CassandraError::query("reading a history row", e))?;
                page.push(ChatMessage {
                    message_id: message_id.into(),
                    chat_id: chat_id.into(),
                    from_user: from_user.into(),
                    to_user: to_user.into(),
                    body: body.unwrap_or_default().into(),
                    time: time.into(),
                    time_iso: time_iso.unwrap_or_default().into(),
                });
            }
            if page.len() >= limit {
                break;
            }
        }
        Ok(page)
    }
}
