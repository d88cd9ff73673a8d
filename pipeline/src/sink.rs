//! The sink side: where completed groups and dead letters go.
//!
//! Sinks must be idempotent: a group may be written again after a crash or a retry, always with
//! the same [`Group::id`](crate::Group) and the same records, and writing it again must leave the
//! same result (an upsert by group id, rows keyed by their time).

use async_trait::async_trait;

use crate::group::Group;
use crate::record::Position;

/// Whether retrying a failed operation can help, and what the runtime does about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server is unavailable, overloaded, or timed out: retry with backoff.
    Retryable,
    /// The sink or source cannot work at all (credentials, configuration, a missing table):
    /// every later write would fail too. The run stops with
    /// [`PipelineError::Sink`](crate::PipelineError::Sink), and nothing after the last
    /// acknowledged position is committed.
    Fatal,
    /// A sink refuses this data for good (too large, invalid for it) while it would take other
    /// data. The runtime writes each group of the batch alone to find the refused ones, sends
    /// their records to the dead-letter sink with their original bytes, counts them apart from
    /// written groups, and goes on.
    Rejected,
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
    /// A failure of the sink itself that every later write would repeat (credentials,
    /// configuration): the run stops.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Fatal,
            message: message.into(),
        }
    }
    /// A refusal of the groups written, for good, by a sink that would take others: the refused
    /// group goes to the dead letters and the run goes on.
    pub fn rejected(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Rejected,
            message: message.into(),
        }
    }
}

/// A destination for completed groups (Firestore, Cassandra, a Kafka topic, a broadcast).
///
/// Here a store of one document per group, and a pipeline writing to it:
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::{Arc, Mutex};
///
/// use confab_pipeline::uuid::Uuid;
/// use confab_pipeline::{async_trait, from_iter, Aggregatable, Group, Pipeline, Sink, SinkError};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Reading {
///     device: u32,
///     ts_ms: u64,
/// }
/// impl Aggregatable for Reading {
///     fn event_time_ms(&self) -> u64 {
///         self.ts_ms
///     }
/// }
///
/// /// Stores each group as one document, keyed by its id (so a rewrite replaces it).
/// #[derive(Clone, Default)]
/// struct Documents(Arc<Mutex<BTreeMap<Uuid, Vec<u64>>>>);
///
/// #[async_trait]
/// impl<K: Send + Sync> Sink<K, Reading> for Documents {
///     fn name(&self) -> &str {
///         "documents"
///     }
///     async fn write(&self, groups: &[Group<K, Reading>]) -> Result<(), SinkError> {
///         for group in groups {
///             if group.bytes > 1 << 20 {
///                 // This group never fits; others do: dead-letter it and go on.
///                 return Err(SinkError::rejected(format!("group {} is over 1 MiB", group.id)));
///             }
///         }
///         // A server that is away would be `SinkError::retryable` (the runtime retries),
///         // refused credentials `SinkError::fatal` (the run stops).
///         let mut store = self.0.lock().map_err(|_| SinkError::fatal("store poisoned"))?;
///         for group in groups {
///             store.insert(group.id, group.records.iter().map(|r| r.ts_ms).collect());
///         }
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Runtime::new().expect("runtime").block_on(async {
/// let documents = Documents::default();
/// let readings = [(1, 0), (2, 10), (1, 20)].map(|(device, ts_ms)| Reading { device, ts_ms });
/// Pipeline::typed(|r: &Reading| r.device)
///     .sink(Arc::new(documents.clone()))
///     .event_time_only()
///     .run_records(from_iter(readings), std::future::pending())
///     .await
///     .expect("runs");
/// let mut stored: Vec<Vec<u64>> = documents.0.lock().expect("store").values().cloned().collect();
/// stored.sort();
/// assert_eq!(stored, vec![vec![0, 20], vec![10]], "one document per device");
/// # });
/// ```
#[async_trait]
pub trait Sink<K, R>: Send + Sync {
    /// A short name for logs and metrics ("firestore", "cassandra", ...).
    fn name(&self) -> &str;

    /// Writes a batch of groups. Returns only when every group is durably written; an error
    /// means none of them may be assumed written. Say with the error's [`ErrorKind`] whether a
    /// retry can help ([`SinkError::retryable`]), whether these groups are refused for good
    /// ([`SinkError::rejected`]), or whether the sink cannot work at all ([`SinkError::fatal`]).
    async fn write(&self, groups: &[Group<K, R>]) -> Result<(), SinkError>;
}

/// A record that could not be processed, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Where the record sits in the source.
    pub position: Position,
    /// The record's key, if any.
    pub key: Option<Vec<u8>>,
    /// The record's bytes, unchanged as the source read them (a record from a typed source, which
    /// has no bytes, as JSON).
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

/// A sink that calls a function with each group, in turn: for printing, counting, or handing
/// groups to code that is not a sink. The function's error is the write's (say with its
/// [`ErrorKind`] whether to retry, reject the group, or stop).
pub struct FnSink<F> {
    name: String,
    write: F,
}

impl<F> FnSink<F> {
    /// A sink named `name` (for logs and errors) that calls `write` with each group.
    pub fn new(name: &str, write: F) -> Self {
        Self {
            name: name.to_string(),
            write,
        }
    }
}

#[async_trait]
impl<K, R, F> Sink<K, R> for FnSink<F>
where
    K: Send + Sync,
    R: Send + Sync,
    F: Fn(&Group<K, R>) -> Result<(), SinkError> + Send + Sync,
{
    fn name(&self) -> &str {
        &self.name
    }

    async fn write(&self, groups: &[Group<K, R>]) -> Result<(), SinkError> {
        groups.iter().try_for_each(|group| (self.write)(group))
    }
}

/// The dead-letter sink of a typed pipeline until one is set: each letter is logged as an error
/// (and the run's report counts them), so that a rejected group is never silent.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoggedDeadLetters;

#[async_trait]
impl DeadLetterSink for LoggedDeadLetters {
    async fn write(&self, letters: &[DeadLetter]) -> Result<(), SinkError> {
        for letter in letters {
            tracing::error!(position = %letter.position, reason = %letter.reason, payload = %String::from_utf8_lossy(&letter.payload), "dead letter");
        }
        Ok(())
    }
}
