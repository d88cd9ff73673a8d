//! Rejected records to a Kafka dead-letter topic, unchanged, with why in a header.
//!
//! Headers: `confab-dlq-reason` (the reason), `confab-dlq-partition` and `confab-dlq-offset`
//! (where the record sat), `confab-dlq-source-topic` when configured, and
//! `confab-dlq-original-bytes` when the payload had to be cut to `max_payload_bytes` (the runtime
//! retries a dead-letter write until it succeeds, so a record too large for the topic must never
//! be refused for good).

use std::time::Duration;

use async_trait::async_trait;
use confab_pipeline::{DeadLetter, DeadLetterSink, SinkError};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::config::KafkaDeadLetterConfig;
use futures::FutureExt as _;

use super::sink::{await_deliveries, connect_producer, delivered};
use super::TracingContext;

/// Header holding why the record was rejected.
pub const HEADER_DLQ_REASON: &str = "confab-dlq-reason";

/// Writes dead letters to a topic.
pub struct KafkaDeadLetters {
    producer: FutureProducer<TracingContext>,
    config: KafkaDeadLetterConfig,
}

impl KafkaDeadLetters {
    /// A producer for `config.topic`; fails, naming the fix, when the brokers cannot be reached.
    pub async fn connect(config: &KafkaDeadLetterConfig) -> Result<Self, SinkError> {
        let producer = connect_producer(
            &config.brokers,
            config.delivery_timeout_ms,
            "none",
            &config.properties,
        )
        .await?;
        Ok(Self {
            producer,
            config: config.clone(),
        })
    }
}

#[async_trait]
impl DeadLetterSink for KafkaDeadLetters {
    async fn write(&self, letters: &[DeadLetter]) -> Result<(), SinkError> {
        let limit = self.config.max_payload_bytes;
        let texts: Vec<(String, String, String)> = letters
            .iter()
            .map(|l| {
                (
                    l.position.partition.to_string(),
                    l.position.offset.to_string(),
                    l.payload.len().to_string(),
                )
            })
            .collect();
        let timeout = Duration::from_millis(self.config.delivery_timeout_ms);
        let deliveries = letters
            .iter()
            .zip(&texts)
            .map(|(letter, (partition, offset, size))| {
                let mut headers = OwnedHeaders::new_with_capacity(5)
                    .insert(Header {
                        key: HEADER_DLQ_REASON,
                        value: Some(letter.reason.as_bytes()),
                    })
                    .insert(Header {
                        key: "confab-dlq-partition",
                        value: Some(partition.as_bytes()),
                    })
                    .insert(Header {
                        key: "confab-dlq-offset",
                        value: Some(offset.as_bytes()),
                    });
                if let Some(topic) = &self.config.source_topic {
                    headers = headers.insert(Header {
                        key: "confab-dlq-source-topic",
                        value: Some(topic.as_bytes()),
                    });
                }
                let payload = if letter.payload.len() > limit {
                    headers = headers.insert(Header {
                        key: "confab-dlq-original-bytes",
                        value: Some(size.as_bytes()),
                    });
                    &letter.payload[..limit]
                } else {
                    &letter.payload[..]
                };
                let mut record = FutureRecord::to(&self.config.topic)
                    .payload(payload)
                    .headers(headers);
                if let Some(key) = &letter.key {
                    record = record.key(key.as_slice());
                }
                self.producer.send(record, timeout).map(delivered)
            });
        await_deliveries(deliveries, "dead letters", &self.config.topic).await
    }
}
