//! Kafka, through rdkafka (librdkafka built by the crate, no system install).
//!
//! - [`KafkaSource`]: one topic read by a consumer group. Offsets are committed **only** through
//!   [`Source::commit`](confab_pipeline::Source::commit), that is only once every sink
//!   acknowledged the records before them (`enable.auto.commit=false`, and librdkafka never
//!   stores an offset on its own). A revocation is reported as
//!   [`Polled::Revoked`](confab_pipeline::Polled::Revoked) *while the partitions are still
//!   owned*: the rebalance waits (up to `revoke_timeout_ms`) until the pipeline has committed what
//!   it acknowledged on them, so the next owner resumes exactly there.
//! - [`KafkaGroupSink`]: completed groups to `chat_messages_grouped`, keyed by the group key,
//!   with the idempotent producer and `acks=all`. At least once: a retried write may append a
//!   group twice, with the same `confab-group-id` header, for consumers to deduplicate.
//! - [`KafkaDeadLetters`]: rejected records, unchanged, to a dead-letter topic, with the reason
//!   in the `confab-dlq-reason` header.

mod config;
mod dead_letter;
mod sink;
mod source;

pub use config::{
    default_brokers, KafkaDeadLetterConfig, KafkaSinkConfig, KafkaSourceConfig, StartPosition,
};
pub use dead_letter::{KafkaDeadLetters, HEADER_DLQ_REASON};
pub use sink::{KafkaGroupSink, HEADER_COUNT, HEADER_GROUP_ID, HEADER_REASON};
pub use source::KafkaSource;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, ClientContext};

/// Routes librdkafka's log lines and global errors to `tracing` (rdkafka's default goes to the
/// `log` crate, which this workspace does not collect).
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_librdkafka(level, facility, message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&error, reason);
    }
}

fn log_librdkafka(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(facility, message, "librdkafka reported"),
        RDKafkaLogLevel::Warning => tracing::warn!(facility, message, "librdkafka reported"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(facility, message, "librdkafka reported")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(facility, message, "librdkafka reported"),
    }
}

fn log_client_error(error: &KafkaError, reason: &str) {
    // rust-rdkafka hands every consumer error event to the context too, including the end of a
    // partition, which the source asks for (`enable.partition.eof`) and is no error at all.
    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
        tracing::trace!(%error, reason, "Kafka partition read to its end");
    } else if is_retryable(error) {
        // Transport errors repeat every few seconds while a broker is away; they are retried.
        tracing::debug!(%error, reason, "Kafka client error; librdkafka retries");
    } else {
        tracing::error!(%error, reason, "Kafka client error");
    }
}

/// Whether an operation that failed with `error` can succeed if tried again: the broker is away,
/// busy, moving leadership or rebalancing, or a local queue is full. Everything else (a record
/// too large, an unknown setting, a denied authorization) will fail again.
pub fn is_retryable(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    let Some(code) = error.rdkafka_error_code() else {
        return matches!(error, KafkaError::Canceled);
    };
    matches!(
        code,
        C::Fail
            | C::BrokerTransportFailure
            | C::Resolve
            | C::MessageTimedOut
            | C::AllBrokersDown
            | C::OperationTimedOut
            | C::QueueFull
            | C::WaitingForCoordinator
            | C::InProgress
            | C::PreviousInProgress
            | C::TimedOutQueue
            | C::Retry
            | C::PurgeQueue
            | C::PurgeInflight
            | C::Interrupted
            | C::UnknownPartition
            | C::UnknownTopic
            | C::UnknownTopicOrPartition
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::RequestTimedOut
            | C::BrokerNotAvailable
            | C::ReplicaNotAvailable
            | C::NetworkException
            | C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::RebalanceInProgress
            | C::IllegalGeneration
            | C::UnknownMemberId
            | C::KafkaStorageError
            | C::FencedLeaderEpoch
            | C::UnknownLeaderEpoch
            | C::OffsetNotAvailable
            | C::PreferredLeaderNotAvailable
            | C::EligibleLeadersNotAvailable
            | C::UnstableOffsetCommit
            | C::ThrottlingQuotaExceeded
            | C::AssignmentLost
    )
}

/// The message for a broker that cannot be reached, naming the address and the fix.
pub(crate) fn unreachable_message(brokers: &str, error: &dyn std::fmt::Display) -> String {
    format!(
        "cannot reach Kafka at {brokers} ({error}): start it with `scripts/infra up kafka` \
         or set KAFKA_BROKERS"
    )
}

/// A client config from `brokers`, `owned` settings and the user's extra `properties`, refusing
/// extra properties that would override an owned one (the settings a guarantee rests on). Every
/// Kafka client of the workspace is set up here: the connectors', the chat service's log, tail
/// and feed, and `confab tune`'s topic reader.
pub fn client_config(
    brokers: &str,
    owned: &[(&str, &str)],
    properties: &BTreeMap<String, String>,
) -> Result<ClientConfig, String> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in properties {
        if key == "bootstrap.servers" || owned.iter().any(|(k, _)| k == key) {
            return Err(format!(
                "Kafka property `{key}` is set by confab (a guarantee rests on it) and cannot be overridden"
            ));
        }
        config.set(key, value);
    }
    for (key, value) in owned {
        config.set(*key, *value);
    }
    Ok(config)
}

/// Creates `topic` with `partitions` partitions (the broker's default replication) through
/// `admin`, waiting at most `timeout`; a topic that exists already (another process made it
/// first) is success. The one way the workspace makes Kafka topics: the chat service's tail, the
/// tests and the examples.
pub async fn create_topic(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<(), String> {
    let options = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    // -1: the broker's default replication factor.
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    let results = admin
        .create_topics([&new], &options)
        .await
        .map_err(|err| err.to_string())?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(code.to_string()),
        }
    }
    Ok(())
}

/// An admin client for `brokers` with the connection `properties` (security included).
pub fn admin_client(
    brokers: &str,
    properties: &BTreeMap<String, String>,
) -> Result<AdminClient<DefaultClientContext>, String> {
    client_config(brokers, &[], properties)?
        .create()
        .map_err(|err| format!("invalid Kafka admin settings: {err}"))
}

/// Whether `error` refuses one record for its size or shape (the topic would take others): a
/// group that fails so is dead-lettered, and the run goes on.
pub fn is_too_large(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(C::MessageSizeTooLarge | C::InvalidRecord | C::InvalidMessageSize)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_broker_errors_are_retryable_and_bad_records_are_not() {
        let transient = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let too_large = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        let denied = KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed);
        let rebalance = KafkaError::ConsumerCommit(RDKafkaErrorCode::RebalanceInProgress);
        assert!(is_retryable(&transient));
        assert!(is_retryable(&rebalance));
        assert!(!is_retryable(&too_large));
        assert!(!is_retryable(&denied));
        assert!(is_too_large(&too_large) && !is_too_large(&denied));
    }

    #[test]
    fn owned_properties_cannot_be_overridden() {
        let mut extra = BTreeMap::new();
        extra.insert("enable.auto.commit".to_string(), "true".to_string());
        let err = client_config("b:9092", &[("enable.auto.commit", "false")], &extra)
            .expect_err("must refuse");
        assert!(err.contains("enable.auto.commit"), "{err}");
        extra.clear();
        extra.insert("fetch.max.bytes".to_string(), "1000".to_string());
        let config =
            client_config("b:9092", &[("enable.auto.commit", "false")], &extra).expect("config");
        assert_eq!(config.get("fetch.max.bytes"), Some("1000"));
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
    }
}
