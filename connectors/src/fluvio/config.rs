//! The Fluvio source's settings. Every default lives in the `Default` impl here.

use serde::{Deserialize, Serialize};

use crate::{env_or, StartPosition};

/// The cluster address when none is configured: `$CONFAB_FLUVIO_ENDPOINT`, else the public port
/// of a local Fluvio SC (`127.0.0.1:9003`).
pub fn default_endpoint() -> String {
    env_or("CONFAB_FLUVIO_ENDPOINT", "127.0.0.1:9003")
}

/// Settings of a [`FluvioSource`](super::FluvioSource): one topic, some or all of its partitions,
/// positions kept under one consumer name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FluvioSourceConfig {
    /// The SC's public `host:port` (plain TCP; TLS is not compiled in).
    pub endpoint: String,
    /// The topic to read (one topic: a source position is a partition and an offset). Fluvio
    /// names use lowercase letters, digits and `-` only.
    pub topic: String,
    /// The consumer name under which Fluvio stores the committed offsets (Fluvio consumer
    /// offsets). A restart with the same name resumes where the pipeline last committed.
    pub consumer: String,
    /// The partitions to read; empty (the default) reads every partition of the topic. Fluvio
    /// has no consumer groups: to share a topic between processes, give each its own partitions
    /// (and the same `consumer`).
    pub partitions: Vec<u32>,
    /// Where a partition without a committed offset starts.
    pub start: StartPosition,
    /// Replay: start every partition at `start`, ignoring the committed offsets (which are then
    /// overwritten as the replay progresses).
    pub reset_committed: bool,
    /// End the input once every partition is read to its end (a batch replay or a bench),
    /// instead of waiting for more records.
    pub exit_at_end: bool,
    /// Records read ahead of the pipeline. Past this the partition readers stop fetching
    /// (backpressure) until the pipeline takes some.
    pub max_buffered_records: usize,
    /// How long connecting, opening a partition's stream, each commit, and each fetch of a
    /// partition being read to its end may take before failing (and being retried).
    pub request_timeout_ms: u64,
    /// How long a caught-up partition's open stream may go without a record before the reader
    /// reads the partition to its end again: a stream the client keeps on a connection that no
    /// longer answers costs at most this, and an idle partition one reopen per period.
    pub idle_recheck_ms: u64,
}

impl Default for FluvioSourceConfig {
    fn default() -> Self {
        Self {
            endpoint: default_endpoint(),
            topic: "chat-messages".into(),
            consumer: "confab-aggregator".into(),
            partitions: Vec::new(),
            start: StartPosition::Earliest,
            reset_committed: false,
            exit_at_end: false,
            max_buffered_records: 20_000,
            request_timeout_ms: 10_000,
            idle_recheck_ms: 20_000,
        }
    }
}

/// Settings of a [`FluvioDeadLetters`](super::FluvioDeadLetters): rejected records to a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FluvioDeadLetterConfig {
    /// The SC's public `host:port` (plain TCP; TLS is not compiled in).
    pub endpoint: String,
    /// The dead-letter topic (it must exist).
    pub topic: String,
    /// Payloads longer than this are cut to this length (the reason says so), so that an
    /// oversized record can never block the dead-letter topic.
    pub max_payload_bytes: usize,
    /// How long connecting, and each write of dead letters, may take before failing (a failed
    /// write is retried).
    pub request_timeout_ms: u64,
}

impl Default for FluvioDeadLetterConfig {
    fn default() -> Self {
        Self {
            endpoint: default_endpoint(),
            topic: "chat-messages-dead-letters".into(),
            max_payload_bytes: 512 * 1024,
            request_timeout_ms: 10_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_parses_with_defaults_and_refuses_unknown_fields() {
        let config: FluvioSourceConfig =
            serde_json::from_str(r#"{"topic":"t","start":"latest","partitions":[0,2]}"#)
                .expect("source config");
        assert_eq!(config.topic, "t");
        assert_eq!(config.start, StartPosition::Latest);
        assert_eq!(config.partitions, [0, 2]);
        assert_eq!(config.consumer, "confab-aggregator");
        assert!(!config.reset_committed);
        assert!(serde_json::from_str::<FluvioSourceConfig>(r#"{"group_id":"g"}"#).is_err());
        let letters: FluvioDeadLetterConfig = serde_json::from_str("{}").expect("defaults");
        assert_eq!(letters.topic, "chat-messages-dead-letters");
        assert!(serde_json::from_str::<FluvioDeadLetterConfig>(r#"{"source_topic":"t"}"#).is_err());
    }
}
