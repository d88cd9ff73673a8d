//! Every message of every group as one history row.
//!
//! A write first records each `(chat_id, bucket)` it touches in `chat_buckets` (so a reader never
//! misses a bucket that holds rows), then writes the rows as single-partition unlogged batches
//! (one partition: applied together on one replica set, no batch log), split to stay under the
//! server's batch-size limit, with at most `max_concurrency` requests in flight. Rows are keyed
//! by `(chat_id, bucket, time)` and always carry the same values, so every statement is
//! idempotent and marked so (the driver may retry or speculate it safely).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use confab_pipeline::chat::timeuuid_ms;
use confab_pipeline::{ChatMessage, Group, Sink, SinkError};
use futures::{StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchStatement, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimeuuid;
use uuid::Uuid;

use super::config::CassandraConfig;
use super::{bucket_of, check_keyspace, connect, migrate, CassandraError};

/// Values of one `messages` row, in the insert's column order.
type MessageRow<'a> = (
    &'a str,
    i64,
    CqlTimeuuid,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Uuid,
);

/// Writes groups of chat messages to the history tables.
pub struct CassandraSink {
    session: Arc<Session>,
    insert_message: PreparedStatement,
    insert_bucket: PreparedStatement,
    config: CassandraConfig,
}

impl CassandraSink {
    /// Connects to `config.nodes`, migrates the keyspace if `config.migrate`, and prepares the
    /// statements.
    pub async fn connect(config: &CassandraConfig) -> Result<Self, CassandraError> {
        let session = connect(config).await?;
        Self::with_session(session, config).await
    }

    /// Like [`CassandraSink::connect`], on an existing session.
    pub async fn with_session(
        session: Arc<Session>,
        config: &CassandraConfig,
    ) -> Result<Self, CassandraError> {
        check_keyspace(&config.keyspace)?;
        if config.migrate {
            migrate(&session, &config.keyspace, &config.replication).await?;
        }
        let ks = &config.keyspace;
        let prepare = |cql: String| {
            let session = Arc::clone(&session);
            async move {
                let mut statement = session
                    .prepare(cql)
                    .await
                    .map_err(|e| CassandraError::query("preparing a history insert", e))?;
                statement.set_consistency(config.consistency.into());
                statement.set_is_idempotent(true);
                Ok::<_, CassandraError>(statement)
            }
        };
        let insert_message = prepare(format!(
            "INSERT INTO {ks}.messages (chat_id, bucket, time, message_id, from_user, to_user, \
             body, time_iso, group_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .await?;
        let insert_bucket = prepare(format!(
            "INSERT INTO {ks}.chat_buckets (chat_id, bucket) VALUES (?, ?)"
        ))
        .await?;
        Ok(Self {
            session,
            insert_message,
            insert_bucket,
            config: config.clone(),
        })
    }

    /// The session, to share with a [`History`](super::History) reader.
    pub fn session(&self) -> Arc<Session> {
        Arc::clone(&self.session)
    }

    async fn write_bucket(&self, chat_id: &str, bucket: i64) -> Result<(), SinkError> {
        self.session
            .execute_unpaged(&self.insert_bucket, (chat_id, bucket))
            .await
            .map(|_| ())
            .map_err(|e| Self::sink_error(&e, "writing a chat bucket"))
    }

    /// Writes rows of one partition: a lone row as a plain insert (the batch-size limit does not
    /// apply to it), several as one unlogged batch.
    async fn write_rows(
        &self,
        chat_id: &str,
        bucket: i64,
        chunk: &[(&ChatMessage, Uuid)],
    ) -> Result<(), SinkError> {
        let rows: Vec<MessageRow<'_>> = chunk
            .iter()
            .map(|(m, group_id)| {
                (
                    chat_id,
                    bucket,
                    CqlTimeuuid::from(m.time),
                    m.message_id.as_str(),
                    m.from_user.as_str(),
                    m.to_user.as_str(),
                    m.body.as_str(),
                    m.time_iso.as_str(),
                    *group_id,
                )
            })
            .collect();
        if let [row] = rows.as_slice() {
            return self
                .session
                .execute_unpaged(&self.insert_message, row)
                .await
                .map(|_| ())
                .map_err(|e| Self::sink_error(&e, "writing a message row"));
        }
        let statements =
            vec![BatchStatement::PreparedStatement(self.insert_message.clone()); rows.len()];
        let mut batch = Batch::new_with_statements(BatchType::Unlogged, statements);
        batch.set_consistency(self.config.consistency.into());
        batch.set_is_idempotent(true);
        self.session
            .batch(&batch, rows)
            .await
            .map(|_| ())
            .map_err(|e| Self::sink_error(&e, "writing a batch of message rows"))
    }

    fn sink_error(error: &scylla::errors::ExecutionError, what: &str) -> SinkError {
        let message = format!("Cassandra {what} failed: {error}");
        if super::is_retryable(error) {
            SinkError::retryable(message)
        } else {
            SinkError::fatal(message)
        }
    }
}

/// Rough size of a row in a batch, to keep batches under the server's limit.
fn row_bytes(m: &ChatMessage) -> usize {
    m.message_id.len()
        + m.chat_id.len()
        + m.from_user.len()
        + m.to_user.len()
        + m.body.len()
        + m.time_iso.len()
        + 64
}

/// Splits rows into chunks of at most `max_bytes` (a row larger than that goes alone).
fn chunks_by_bytes<'a>(
    rows: &'a [(&'a ChatMessage, Uuid)],
    max_bytes: usize,
) -> Vec<&'a [(&'a ChatMessage, Uuid)]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (message, _)) in rows.iter().enumerate() {
        let size = row_bytes(message);
        if i > start && bytes + size > max_bytes {
            chunks.push(&rows[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < rows.len() {
        chunks.push(&rows[start..]);
    }
    chunks
}

#[async_trait]
impl<K: Send + Sync> Sink<K, ChatMessage> for CassandraSink {
    fn name(&self) -> &str {
        "cassandra"
    }

    async fn write(&self, groups: &[Group<K, ChatMessage>]) -> Result<(), SinkError> {
        let size = self.config.bucket_size_ms;
        let mut partitions: BTreeMap<(&str, i64), Vec<(&ChatMessage, Uuid)>> = BTreeMap::new();
        for group in groups {
            for message in &group.records {
                let ms = timeuuid_ms(&message.time).ok_or_else(|| {
                    SinkError::rejected(format!(
                        "message {} has no version-1 TimeUUID time",
                        message.message_id
                    ))
                })?;
                partitions
                    .entry((message.chat_id.as_str(), bucket_of(ms, size)))
                    .or_default()
                    .push((message, group.id));
            }
        }
        let concurrency = self.config.max_concurrency.max(1);

        let buckets: BTreeSet<(&str, i64)> = partitions.keys().copied().collect();
        let mut writes = Vec::with_capacity(buckets.len());
        for (chat_id, bucket) in buckets {
            writes.push(self.write_bucket(chat_id, bucket));
        }
        futures::stream::iter(writes)
            .buffer_unordered(concurrency)
            .try_collect::<Vec<()>>()
            .await?;

        let mut writes = Vec::new();
        for (&(chat_id, bucket), rows) in &partitions {
            for chunk in chunks_by_bytes(rows, self.config.max_batch_bytes) {
                writes.push(self.write_rows(chat_id, bucket, chunk));
            }
        }
        futures::stream::iter(writes)
            .buffer_unordered(concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_pipeline::chat::{iso_from_ms, timeuuid_from_ms};

    fn message(body_len: usize) -> ChatMessage {
        ChatMessage {
            message_id: "m".into(),
            chat_id: "c".into(),
            from_user: "a".into(),
            to_user: "b".into(),
            body: "x".repeat(body_len).into(),
            time: timeuuid_from_ms(1, 0, [0; 6]),
            time_iso: iso_from_ms(1).into(),
        }
    }

    #[test]
    fn batches_split_by_size_and_an_oversized_row_goes_alone() {
        let small = message(100);
        let big = message(10_000);
        let id = Uuid::nil();
        let rows = vec![(&small, id), (&small, id), (&big, id), (&small, id)];
        let sizes: Vec<usize> = chunks_by_bytes(&rows, 500)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [2, 1, 1]);
        let sizes: Vec<usize> = chunks_by_bytes(&rows, 1_000_000)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [4]);
        assert!(chunks_by_bytes(&[], 10).is_empty());
    }
}
