//! The source side: a partitioned log the runtime reads from and commits to.

use std::time::Duration;

use async_trait::async_trait;

use crate::record::Position;
use crate::sink::ErrorKind;

/// One undecoded record as read from a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// Where it sits in the log.
    pub position: Position,
    /// The record's key, if the log has keys (Kafka does).
    pub key: Option<Vec<u8>>,
    /// The record's bytes.
    pub payload: Vec<u8>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// What one poll of a source found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// Records, in log order within each partition.
    Records(Vec<SourceRecord>),
    /// Nothing to read now: every assigned partition is caught up. The runtime then lets the
    /// clock advance time, so idle groups complete.
    Idle,
    /// These partitions were taken away (a consumer-group rebalance). The runtime stops
    /// tracking them after committing what it may.
    Revoked(Vec<u32>),
    /// The input has ended (a file or a closed in-memory log). The runtime flushes and stops.
    End,
}

/// A source error, saying whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    /// Whether a retry can succeed.
    pub kind: ErrorKind,
    /// What went wrong, naming the thing and, where possible, the fix.
    pub message: String,
}

impl SourceError {
    /// A failure that a later retry may not see (a broker briefly away).
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Retryable,
            message: message.into(),
        }
    }
    /// A failure that will repeat (bad configuration, authorization).
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Fatal,
            message: message.into(),
        }
    }
}

/// A partitioned, replayable log with committable positions (Kafka, Fluvio, an in-memory log).
///
/// The runtime calls [`Source::commit`] only with positions below which every record was
/// acknowledged by every sink, so a restart from the committed positions loses nothing.
#[async_trait]
pub trait Source: Send {
    /// Reads up to `max` records, waiting at most `wait` for the first one.
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Polled, SourceError>;

    /// Commits, for each listed partition, the offset of the next record to read after a restart.
    async fn commit(&mut self, next: &[Position]) -> Result<(), SourceError>;

    /// Whether `partition` has been read to its current end: `Some(true)` caught up,
    /// `Some(false)` still behind, `None` when the source cannot tell (the default).
    ///
    /// Time waits for partitions that are behind, so a replay of a backlog forms the same groups
    /// however the partitions' fetches interleave; a caught-up partition does not hold time back.
    /// Without this information the runtime treats a partition silent for `lateness_ms` as
    /// caught up.
    fn caught_up(&self, partition: u32) -> Option<bool> {
        let _ = partition;
        None
    }

    /// The partitions this source reads now, or `None` when it cannot tell (the default).
    ///
    /// An assigned partition that is behind but has delivered no record yet holds time where it
    /// is: its backlog may be older than the other partitions' records, and letting time run
    /// ahead of it would make its records late, so that arrival timing, not the log, decided
    /// their groups (after a restart, or when a rebalance hands this consumer a partition).
    fn assigned(&self) -> Option<Vec<u32>> {
        None
    }
}
