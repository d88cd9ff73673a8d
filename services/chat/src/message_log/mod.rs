//! The log that sent messages are produced to: [`MessageLog`], with the in-process
//! [`MemoryMessageLog`] (embedded mode) and, with the `kafka` feature, [`KafkaMessageLog`].
//!
//! Contract: [`MessageLog::append`] returns `Ok` only once the log has durably accepted the
//! record (Kafka: every in-sync replica, `acks=all`), and records of one key keep their order
//! (one chat's messages go to one partition). The send endpoint answers 201 only after `Ok`; on
//! an error nothing was written that a reader could see, except that a Kafka write which timed out
//! may still land later. That is harmless: a retry with the same `client_message_id` produces the
//! very same record (same `message_id` and `time`), and every history and realtime sink
//! deduplicates by it.

mod memory;

#[cfg(feature = "kafka")]
mod kafka;

pub use memory::MemoryMessageLog;

#[cfg(feature = "kafka")]
pub use kafka::KafkaMessageLog;

use async_trait::async_trait;
use confab_pipeline::memory::MemoryLog;
use std::collections::BTreeMap;

/// Where the live lane reads a log back from (each instance tails it itself).
#[derive(Clone)]
#[non_exhaustive]
pub enum Tail {
    /// The in-process log.
    Memory(MemoryLog),
    /// A Kafka topic.
    Kafka {
        /// Bootstrap brokers.
        brokers: String,
        /// The topic.
        topic: String,
        /// Consumer properties (the connection and security settings of the log's producer).
        properties: BTreeMap<String, String>,
    },
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tail::Memory(log) => f.debug_tuple("Memory").field(&log.len()).finish(),
            Tail::Kafka { brokers, topic, .. } => f
                .debug_struct("Kafka")
                .field("brokers", brokers)
                .field("topic", topic)
                .finish_non_exhaustive(),
        }
    }
}

/// Why a record could not be appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The log is unreachable, overloaded or timed out; retrying later can help (503).
    #[error("the message log is unavailable: {0}")]
    Unavailable(String),
    /// The log refused the record or is misconfigured; retrying repeats the failure (500).
    #[error("the message log refused the record: {0}")]
    Rejected(String),
}

/// Where sent messages go, keyed by chat id.
#[async_trait]
pub trait MessageLog: Send + Sync {
    /// A short name for logs and `/readyz` (`memory`, `kafka`).
    fn name(&self) -> &'static str;

    /// Appends `payload` under `key`; returns once the log has durably accepted it.
    async fn append(&self, key: &str, payload: Vec<u8>) -> Result<(), LogError>;

    /// Checks that the log can take records now (for `/readyz`).
    async fn check(&self) -> Result<(), LogError>;

    /// Where the live lane can read this log back from; `None` when it cannot (no live lane).
    fn tail(&self) -> Option<Tail> {
        None
    }
}
