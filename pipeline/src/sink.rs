//! The sink side: where completed groups and dead letters go.
//!
//! Sinks must be idempotent: a group may be written again after a crash or a retry, always with
//! the same [`Group::id`](crate::Group) and the same records, and writing it again must leave the
//! same result (an upsert by group id, rows keyed by their time).

use async_trait::async_trait;

use crate::group::Group;
use crate::record::Position;

/// Whether retrying a failed operation can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The server is unavailable, overloaded, or timed out: retry with backoff.
    Retryable,
    /// The request itself is wrong (too large, invalid, unauthorized): retrying repeats it.
    Fatal,
}

/// A sink error, saying whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// Whether a retry can succeed.
    pub kind: ErrorKind,
    /// What went wrong, naming the thing and, where possible, the fix.
    pub message: String,
}

impl SinkError {
    /// A failure worth retrying.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Retryable,
            message: message.into(),
        }
    }
    /// A failure that retrying would repeat.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Fatal,
            message: message.into(),
        }
    }
}

/// A destination for completed groups (Firestore, Cassandra, a Kafka topic, a broadcast).
#[async_trait]
pub trait Sink<K, R>: Send + Sync {
    /// A short name for logs and metrics ("firestore", "cassandra", ...).
    fn name(&self) -> &str;

    /// Writes a batch of groups. Returns only when every group is durably written; an error
    /// means none of them may be assumed written.
    async fn write(&self, groups: &[Group<K, R>]) -> Result<(), SinkError>;
}

/// A record that could not be processed, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Where the record sits in the source.
    pub position: Position,
    /// The record's key, if any.
    pub key: Option<Vec<u8>>,
    /// The record's bytes, unchanged.
    pub payload: Vec<u8>,
    /// Why it was rejected.
    pub reason: String,
}

/// A destination for dead letters (a Kafka topic, a file, memory).
#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    /// Writes the letters durably; an error means none may be assumed written.
    async fn write(&self, letters: &[DeadLetter]) -> Result<(), SinkError>;
}
