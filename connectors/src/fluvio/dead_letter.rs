//! Rejected records to a Fluvio dead-letter topic.
//!
//! Fluvio records have no headers, so each letter is one record whose key is the rejected
//! record's key and whose value is a [`DeadLetterLine`] as JSON (the same shape as the `file`
//! dead-letter sink: partition, offset, reason, and key and payload as text or base64). The
//! runtime retries a dead-letter write until it succeeds, so a payload over `max_payload_bytes`
//! is cut, and the reason says so, instead of being refused forever.

use std::time::Duration;

use async_trait::async_trait;
use confab_pipeline::{DeadLetter, DeadLetterSink, SinkError};
use fluvio::{Fluvio, FluvioClusterConfig, RecordKey, TopicProducerPool};

use super::config::FluvioDeadLetterConfig;
use crate::embedded::DeadLetterLine;

/// Writes dead letters to a Fluvio topic.
pub struct FluvioDeadLetters {
    producer: TopicProducerPool,
    config: FluvioDeadLetterConfig,
    // The producer borrows nothing from the client, but the client keeps the connection.
    _fluvio: Fluvio,
}

impl FluvioDeadLetters {
    /// A producer for `config.topic`; fails, naming the fix, when the cluster cannot be reached
    /// or the topic does not exist.
    pub async fn connect(config: &FluvioDeadLetterConfig) -> Result<Self, SinkError> {
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let endpoint = config.endpoint.as_str();
        let unreachable =
            |e: String| SinkError::fatal(super::source::unreachable_message(endpoint, &e));
        let fluvio = tokio::time::timeout(
            timeout,
            Fluvio::connect_with_config(&FluvioClusterConfig::new(endpoint)),
        )
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(|e| unreachable(format!("{e:#}")))?;
        let producer = fluvio
            .topic_producer(config.topic.clone())
            .await
            .map_err(|e| {
                SinkError::fatal(format!(
                    "cannot produce to the Fluvio dead-letter topic `{}` ({e:#}): create it with \
                 `fluvio topic create {}`",
                    config.topic, config.topic
                ))
            })?;
        Ok(Self {
            producer,
            config: config.clone(),
            _fluvio: fluvio,
        })
    }
}

#[async_trait]
impl DeadLetterSink for FluvioDeadLetters {
    /// One attempt, bounded by `request_timeout_ms` (the runtime retries a retryable failure):
    /// a producer waiting on a connection that no longer answers would otherwise hold the
    /// pipeline forever.
    async fn write(&self, letters: &[DeadLetter]) -> Result<(), SinkError> {
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        tokio::time::timeout(timeout, self.write_all(letters))
            .await
            .unwrap_or_else(|_| {
                Err(SinkError::retryable(format!(
                    "cannot write dead letters to Fluvio {}: no answer within {} ms",
                    self.config.topic,
                    timeout.as_millis()
                )))
            })
    }
}

impl FluvioDeadLetters {
    async fn write_all(&self, letters: &[DeadLetter]) -> Result<(), SinkError> {
        let topic = &self.config.topic;
        let failed = |e: String| {
            SinkError::retryable(format!("cannot write dead letters to Fluvio {topic}: {e}"))
        };
        let mut outputs = Vec::with_capacity(letters.len());
        for letter in letters {
            let limit = self.config.max_payload_bytes;
            let mut letter = letter.clone();
            if letter.payload.len() > limit {
                letter.reason = format!(
                    "{} (payload cut to its first {limit} of {} bytes)",
                    letter.reason,
                    letter.payload.len()
                );
                letter.payload.truncate(limit);
            }
            let value = serde_json::to_vec(&DeadLetterLine::from(&letter))
                .map_err(|e| SinkError::fatal(format!("cannot encode a dead letter: {e}")))?;
            let key = letter.key.clone().map_or(RecordKey::NULL, RecordKey::from);
            let output = self
                .producer
                .send(key, value)
                .await
                .map_err(|e| failed(format!("{e:#}")))?;
            outputs.push(output);
        }
        self.producer
            .flush()
            .await
            .map_err(|e| failed(format!("{e:#}")))?;
        for output in outputs {
            output.wait().await.map_err(|e| failed(format!("{e:#}")))?;
        }
        Ok(())
    }
}
