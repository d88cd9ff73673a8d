//! The Cassandra / ScyllaDB history: the connectors' schema (`messages` partitioned by
//! `(chat_id, bucket)`, `time` clustering DESC, `chat_buckets` listing a chat's non-empty
//! buckets) and their pagination query, which walks buckets newest first and never uses
//! `ALLOW FILTERING`. On start the service runs the connectors' migrations when `migrate` is set,
//! so the aggregator and the service agree on one schema whichever starts first.

use super::{History, HistoryError};
use async_trait::async_trait;
use confab_connectors::cassandra::{self, CassandraConfig, CassandraError};
use confab_pipeline::ChatMessage;
use scylla::client::session::Session;
use std::sync::Arc;
use uuid::Uuid;

/// Reads history pages from Cassandra.
pub struct CassandraHistory {
    session: Arc<Session>,
    history: cassandra::History,
    keyspace: String,
}

impl std::fmt::Debug for CassandraHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CassandraHistory")
            .field("keyspace", &self.keyspace)
            .finish_non_exhaustive()
    }
}

fn history_error(err: CassandraError) -> HistoryError {
    match &err {
        CassandraError::Unreachable { .. } => HistoryError::Unavailable(err.to_string()),
        CassandraError::Query {
            retryable: true, ..
        } => HistoryError::Unavailable(err.to_string()),
        _ => HistoryError::Failed(err.to_string()),
    }
}

impl CassandraHistory {
    /// Connects to `config.nodes`, migrates the keyspace if `config.migrate`, and prepares the
    /// pagination queries.
    pub async fn connect(config: &CassandraConfig) -> Result<Self, HistoryError> {
        let session = cassandra::connect(config).await.map_err(history_error)?;
        if config.migrate {
            cassandra::migrate(&session, &config.keyspace, &config.replication)
                .await
                .map_err(history_error)?;
        }
        Self::with_session(session, config).await
    }

    /// Reads with an open session (the keyspace must be migrated).
    pub async fn with_session(
        session: Arc<Session>,
        config: &CassandraConfig,
    ) -> Result<Self, HistoryError> {
        let history = cassandra::History::new(Arc::clone(&session), config)
            .await
            .map_err(history_error)?;
        Ok(Self {
            session,
            history,
            keyspace: config.keyspace.clone(),
        })
    }
}

#[async_trait]
impl History for CassandraHistory {
    fn name(&self) -> &'static str {
        "cassandra"
    }

    async fn page(
        &self,
        chat_id: &str,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, HistoryError> {
        self.history
            .page(chat_id, before, limit)
            .await
            .map_err(history_error)
    }

    async fn check(&self) -> Result<(), HistoryError> {
        self.session
            .query_unpaged("SELECT release_version FROM system.local", &[])
            .await
            .map(|_| ())
            .map_err(|err| HistoryError::Unavailable(format!("Cassandra does not answer: {err}")))
    }
}
