//! History pages: [`History`], read by the history endpoints, with the SQL implementation
//! ([`SqlHistory`], the embedded default, written by [`SqlHistorySink`]) and, with the
//! `cassandra` feature, [`CassandraHistory`] (the keyspace the aggregator's Cassandra sink
//! writes, through the connectors' pagination query).
//!
//! Contract of [`History::page`]: up to `limit` messages of the chat strictly older than
//! `before` (the newest ones when `None`), newest first, each message at most once across pages
//! walked with the `time` of each page's last message as the next `before`.

mod sql;

#[cfg(feature = "cassandra")]
mod cassandra;

pub use sql::{SqlHistory, SqlHistorySink};

#[cfg(feature = "cassandra")]
pub use cassandra::CassandraHistory;

use async_trait::async_trait;
use confab_pipeline::ChatMessage;
use uuid::Uuid;

/// Why a page could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The store is unreachable, overloaded or timed out; retrying later can help (503).
    #[error("the history store is unavailable: {0}")]
    Unavailable(String),
    /// Anything else (500).
    #[error("reading history failed: {0}")]
    Failed(String),
}

/// Where history pages come from.
#[async_trait]
pub trait History: Send + Sync {
    /// A short name for logs and `/readyz` (`sql`, `cassandra`).
    fn name(&self) -> &'static str;

    /// Up to `limit` messages of `chat_id` strictly older than `before` (a version-1 TimeUUID;
    /// the newest messages when `None`), newest first.
    async fn page(
        &self,
        chat_id: &str,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, HistoryError>;

    /// Checks that the store answers (for `/readyz`).
    async fn check(&self) -> Result<(), HistoryError>;
}
