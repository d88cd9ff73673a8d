//! Where a log source starts reading a partition that has no committed position, shared by the
//! Kafka and Fluvio sources.

use serde::{Deserialize, Serialize};

/// Where a partition starts when the consumer has no committed offset for it (or, with
/// `reset_committed`, always).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// The oldest record still in the partition: nothing already produced is skipped.
    Earliest,
    /// The end of the partition: only records produced from now on.
    Latest,
}
