//! The Kafka message log: an idempotent producer with `acks=all`, so a send is acknowledged only
//! once every in-sync replica has it, and librdkafka's own retries never duplicate or reorder a
//! partition. Records are keyed by chat id (Kafka's default partitioner keeps a chat in one
//! partition, in order). A send waits at most `delivery_timeout_ms` before answering 503.

use super::{LogError, MessageLog, Tail};
use crate::config::KafkaLogConfig;
use async_trait::async_trait;
use confab_connectors::kafka::{is_retryable, TracingContext};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long `/readyz` and the start-up probe wait for the brokers' metadata (under `/readyz`'s
/// own 3 s limit, so that its answer names the cause).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A [`MessageLog`] producing to a Kafka topic.
pub struct KafkaMessageLog {
    producer: FutureProducer<TracingContext>,
    topic: String,
    brokers: String,
    /// The connection settings a reader of the topic needs too (security, DNS, sockets).
    connection: BTreeMap<String, String>,
}

/// Whether a producer property is about reaching the brokers, so the live lane's consumer of
/// the same topic needs it too (producer-only settings would only draw librdkafka warnings).
fn is_connection_property(key: &str) -> bool {
    [
        "security.",
        "sasl.",
        "ssl.",
        "socket.",
        "client.dns.",
        "broker.address.",
    ]
    .iter()
    .any(|prefix| key.starts_with(prefix))
}

impl std::fmt::Debug for KafkaMessageLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaMessageLog")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

fn unreachable(brokers: &str, error: &dyn std::fmt::Display) -> LogError {
    LogError::Unavailable(format!(
        "cannot reach Kafka at {brokers} ({error}): start it with `scripts/infra up kafka` \
         or set KAFKA_BROKERS"
    ))
}

impl KafkaMessageLog {
    /// A producer for `config.topic`, without contacting the brokers yet.
    pub fn new(config: &KafkaLogConfig) -> Result<Self, LogError> {
        let timeout = config.delivery_timeout_ms.to_string();
        let mut client = confab_connectors::kafka::client_config(
            &config.brokers,
            &[
                ("acks", "all"),
                ("enable.idempotence", "true"),
                ("message.timeout.ms", &timeout),
            ],
            &config.properties,
        )
        .map_err(LogError::Rejected)?;
        if !config.properties.contains_key("linger.ms") {
            // A chat message should leave at once; batching buys little at chat rates.
            client.set("linger.ms", "2");
        }
        let producer = client
            .create_with_context(TracingContext)
            .map_err(|err| LogError::Rejected(format!("invalid Kafka producer settings: {err}")))?;
        Ok(Self {
            producer,
            topic: config.topic.clone(),
            brokers: config.brokers.clone(),
            connection: config
                .properties
                .iter()
                .filter(|(key, _)| is_connection_property(key))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        })
    }

    /// A producer for `config.topic`, checked against the brokers: fails, naming the fix, when
    /// they cannot be reached.
    pub async fn connect(config: &KafkaLogConfig) -> Result<Self, LogError> {
        let log = Self::new(config)?;
        // A topic the brokers create on first use has no leader for a moment.
        let mut attempts = 0;
        while let Err(err) = log.check().await {
            attempts += 1;
            if attempts == 5 {
                return Err(err);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tracing::info!(brokers = %log.brokers, topic = %log.topic, "Producing messages to Kafka.");
        Ok(log)
    }

    /// The topic records go to.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

#[async_trait]
impl MessageLog for KafkaMessageLog {
    fn name(&self) -> &'static str {
        "kafka"
    }

    async fn append(&self, key: &str, payload: Vec<u8>) -> Result<(), LogError> {
        let record = FutureRecord::to(&self.topic).key(key).payload(&payload);
        // A full local queue fails at once (503) rather than holding the request.
        match self.producer.send(record, Duration::ZERO).await {
            Ok(_) => Ok(()),
            Err((err, _)) if is_retryable(&err) => Err(LogError::Unavailable(format!(
                "producing to Kafka topic {} at {} failed: {err}",
                self.topic, self.brokers
            ))),
            Err((err, _)) => Err(LogError::Rejected(format!(
                "Kafka topic {} refused the record: {err}",
                self.topic
            ))),
        }
    }

    async fn check(&self) -> Result<(), LogError> {
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        let metadata = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), PROBE_TIMEOUT)
        })
        .await
        .map_err(|err| LogError::Unavailable(format!("the Kafka probe failed: {err}")))?
        .map_err(|err| unreachable(&self.brokers, &err))?;
        match metadata.topics().first() {
            Some(topic) if topic.error().is_none() && !topic.partitions().is_empty() => Ok(()),
            Some(topic) => Err(LogError::Unavailable(format!(
                "Kafka topic {} is not available ({:?}): create it, or enable auto-creation",
                self.topic,
                topic.error()
            ))),
            None => Err(LogError::Unavailable(format!(
                "Kafka at {} returned no metadata for topic {}",
                self.brokers, self.topic
            ))),
        }
    }

    fn tail(&self) -> Option<Tail> {
        Some(Tail::Kafka {
            brokers: self.brokers.clone(),
            topic: self.topic.clone(),
            properties: self.connection.clone(),
        })
    }
}
