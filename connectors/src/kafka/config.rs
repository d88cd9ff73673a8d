//! The Kafka connectors' settings. Every default lives in a `Default` impl here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::env_or;
pub use crate::StartPosition;

/// The broker list when none is configured: `$KAFKA_BROKERS`, else the local broker that
/// `scripts/infra up kafka` starts.
pub fn default_brokers() -> String {
    env_or("KAFKA_BROKERS", "127.0.0.1:9092")
}

impl StartPosition {
    /// The librdkafka `auto.offset.reset` value.
    pub fn as_reset(self) -> &'static str {
        match self {
            Self::Earliest => "earliest",
            Self::Latest => "latest",
        }
    }
}

/// Settings of a [`KafkaSource`](super::KafkaSource): one topic, read by a consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSourceConfig {
    /// Comma-separated `host:port` bootstrap brokers.
    pub brokers: String,
    /// The topic to read (one topic: a source position is a partition and an offset).
    pub topic: String,
    /// The consumer group. Its committed offsets are where a restart resumes; consumers with the
    /// same group share the partitions.
    pub group_id: String,
    /// Where a partition without a committed offset starts.
    pub start: StartPosition,
    /// Replay: start every partition at `start` the first time it is assigned, ignoring the
    /// group's committed offsets (which are then overwritten as the replay progresses).
    pub reset_committed: bool,
    /// End the input once every assigned partition is read to its end (a batch replay or a
    /// bench), instead of waiting for more records.
    pub exit_at_end: bool,
    /// How partitions are shared in the group (`partition.assignment.strategy`).
    /// `cooperative-sticky` revokes only the partitions that change owner. The eager strategies
    /// (`range`, `roundrobin`) revoke every partition on each rebalance, and a partition this
    /// consumer gets back is re-read from the last commit while the runtime still holds its old
    /// open groups, which the current runtime does not handle (see the crate README).
    pub assignment_strategy: String,
    /// Broker-side session timeout: how long a silent consumer keeps its partitions.
    pub session_timeout_ms: u64,
    /// How long a revocation waits for the pipeline to commit what it acknowledged on the revoked
    /// partitions before giving them up. Keep it well below `max.poll.interval.ms` (5 min).
    pub revoke_timeout_ms: u64,
    /// Records read ahead of the pipeline, in the source's queue. Past this the source stops
    /// taking records from librdkafka (backpressure), whose own prefetch is bounded by
    /// `queued.min.messages` and `queued.max.messages.kbytes` (here derived from this limit, at
    /// most 16 MiB, unless set in `properties`), while the consumer
    /// keeps serving the group protocol. At ~400 bytes per chat message, 20,000 records is
    /// ~8 MB. More read-ahead did not read a backlog faster once librdkafka refilled its queue
    /// promptly (`fetch.queue.backoff.ms`), and costs memory.
    pub max_buffered_records: usize,
    /// Whether records carry their Kafka headers ([`SourceRecord::headers`]). librdkafka parses
    /// a record's headers, with an allocation, when they are asked for, even when there are none:
    /// about 3 % of the aggregator's CPU in `connectors/examples/kafka_throughput.rs`. Turn it
    /// off when the decoder does not read headers (the chat message decoder does not, so
    /// `confab aggregate` never reads them).
    ///
    /// [`SourceRecord::headers`]: confab_pipeline::SourceRecord::headers
    pub headers: bool,
    /// Extra librdkafka consumer properties (`fetch.max.bytes`, `security.protocol`,
    /// `partition.assignment.strategy`, ...). Properties that the source's guarantees rest on
    /// (`enable.auto.commit`, `enable.auto.offset.store`, `enable.partition.eof`, `group.id`,
    /// `bootstrap.servers`, `auto.offset.reset`, and those set by the fields above) are refused.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSourceConfig {
    fn default() -> Self {
        Self {
            brokers: default_brokers(),
            topic: "chat_messages".into(),
            group_id: "confab-aggregator".into(),
            start: StartPosition::Earliest,
            reset_committed: false,
            exit_at_end: false,
            assignment_strategy: "cooperative-sticky".into(),
            session_timeout_ms: 10_000,
            revoke_timeout_ms: 10_000,
            max_buffered_records: 20_000,
            headers: true,
            properties: BTreeMap::new(),
        }
    }
}

/// Settings of a [`KafkaGroupSink`](super::KafkaGroupSink): completed groups to a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSinkConfig {
    /// Comma-separated `host:port` bootstrap brokers.
    pub brokers: String,
    /// The topic groups go to, keyed by the group key (the chat id by default).
    pub topic: String,
    /// How long a write waits for the brokers to acknowledge (`message.timeout.ms`) before it
    /// fails as retryable.
    pub delivery_timeout_ms: u64,
    /// Compression of produced batches (`none`, `gzip`, `lz4`, `snappy`).
    pub compression: String,
    /// Extra librdkafka producer properties. `acks` and `enable.idempotence` are refused: the
    /// sink's guarantees rest on `acks=all` and the idempotent producer.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSinkConfig {
    fn default() -> Self {
        Self {
            brokers: default_brokers(),
            topic: "chat_messages_grouped".into(),
            delivery_timeout_ms: 30_000,
            compression: "lz4".into(),
            properties: BTreeMap::new(),
        }
    }
}

/// Settings of a [`KafkaDeadLetters`](super::KafkaDeadLetters): rejected records to a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaDeadLetterConfig {
    /// Comma-separated `host:port` bootstrap brokers.
    pub brokers: String,
    /// The dead-letter topic.
    pub topic: String,
    /// The topic the rejected records came from, written into a header for whoever replays them.
    pub source_topic: Option<String>,
    /// Payloads longer than this are cut to this length (the header `confab-dlq-original-bytes`
    /// keeps the real size), so that an oversized record can never block the dead-letter topic.
    pub max_payload_bytes: usize,
    /// How long a write waits for the brokers to acknowledge before it fails as retryable.
    pub delivery_timeout_ms: u64,
    /// Extra librdkafka producer properties. `acks` and `enable.idempotence` are refused.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaDeadLetterConfig {
    fn default() -> Self {
        Self {
            brokers: default_brokers(),
            topic: "chat_messages_dead_letters".into(),
            source_topic: None,
            max_payload_bytes: 512 * 1024,
            delivery_timeout_ms: 30_000,
            properties: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_with_defaults_and_refuse_unknown_fields() {
        let source: KafkaSourceConfig =
            serde_json::from_str(r#"{"topic":"t","start":"latest","properties":{"a":"b"}}"#)
                .expect("source config");
        assert_eq!(source.topic, "t");
        assert_eq!(source.start, StartPosition::Latest);
        assert_eq!(source.group_id, KafkaSourceConfig::default().group_id);
        assert!(serde_json::from_str::<KafkaSourceConfig>(r#"{"topik":"t"}"#).is_err());
        let sink: KafkaSinkConfig = serde_json::from_str("{}").expect("sink config");
        assert_eq!(sink.topic, "chat_messages_grouped");
        assert!(serde_json::from_str::<KafkaDeadLetterConfig>(r#"{"reason":"x"}"#).is_err());
    }
}
