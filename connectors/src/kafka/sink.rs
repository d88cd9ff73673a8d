//! Completed groups to a Kafka topic (`chat_messages_grouped`), as the seed's Camel route did.
//!
//! Each group is one record: key = the group key (the chat id with the default key), value = the
//! [`Group`] as JSON (decode it as `Group<String, ChatMessage>`), headers `confab-group-id`,
//! `confab-reason` and `confab-count`. The producer is idempotent with `acks=all`, so librdkafka's
//! own retries never duplicate or reorder a partition. A write the pipeline retries after a
//! failure may append a group again: consumers deduplicate by `confab-group-id`.

use std::fmt::{Display, Write as _};
use std::time::Duration;

use async_trait::async_trait;
use confab_pipeline::{Aggregatable, Group, Sink, SinkError};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde::Serialize;

use super::config::KafkaSinkConfig;
use super::{client_config, is_retryable, is_too_large, unreachable_message, TracingContext};

/// Header holding the group's id, for deduplication downstream.
pub const HEADER_GROUP_ID: &str = "confab-group-id";
/// Header holding what completed the group.
pub const HEADER_REASON: &str = "confab-reason";
/// Header holding the number of records in the group.
pub const HEADER_COUNT: &str = "confab-count";

/// Writes every group as one record to a topic.
pub struct KafkaGroupSink {
    producer: FutureProducer<TracingContext>,
    topic: String,
    delivery_timeout: Duration,
}

/// An idempotent `acks=all` producer, checked against the brokers.
pub(crate) async fn connect_producer(
    brokers: &str,
    delivery_timeout_ms: u64,
    compression: &str,
    properties: &std::collections::BTreeMap<String, String>,
) -> Result<FutureProducer<TracingContext>, SinkError> {
    let timeout = delivery_timeout_ms.to_string();
    let owned = [
        ("acks", "all"),
        ("enable.idempotence", "true"),
        ("message.timeout.ms", timeout.as_str()),
        ("compression.type", compression),
    ];
    let producer: FutureProducer<TracingContext> = client_config(brokers, &owned, properties)
        .map_err(SinkError::fatal)?
        .create_with_context(TracingContext)
        .map_err(|e| SinkError::fatal(format!("invalid Kafka producer settings: {e}")))?;
    let probe = producer.clone();
    tokio::task::spawn_blocking(move || {
        probe
            .client()
            .fetch_metadata(None, Duration::from_secs(10))
            .map(|_| ())
    })
    .await
    .map_err(|e| SinkError::fatal(format!("Kafka metadata probe panicked: {e}")))?
    .map_err(|e| SinkError::retryable(unreachable_message(brokers, &e)))?;
    Ok(producer)
}

impl KafkaGroupSink {
    /// A producer for `config.topic`; fails, naming the fix, when the brokers cannot be reached.
    pub async fn connect(config: &KafkaSinkConfig) -> Result<Self, SinkError> {
        let producer = connect_producer(
            &config.brokers,
            config.delivery_timeout_ms,
            &config.compression,
            &config.properties,
        )
        .await?;
        Ok(Self {
            producer,
            topic: config.topic.clone(),
            delivery_timeout: Duration::from_millis(config.delivery_timeout_ms),
        })
    }
}

/// Waits for every delivery; the first error decides the kind (fatal wins over retryable).
pub(crate) async fn await_deliveries<F>(
    deliveries: impl IntoIterator<Item = F>,
    what: &str,
    topic: &str,
) -> Result<(), SinkError>
where
    F: std::future::Future<Output = Result<(), KafkaError>>,
{
    let results = futures::future::join_all(deliveries).await;
    let mut retryable = None;
    for result in results {
        if let Err(e) = result {
            let message = format!("cannot write {what} to Kafka topic {topic}: {e}");
            if is_too_large(&e) {
                return Err(SinkError::rejected(message));
            }
            if !is_retryable(&e) {
                return Err(SinkError::fatal(message));
            }
            retryable.get_or_insert(message);
        }
    }
    match retryable {
        Some(message) => Err(SinkError::retryable(message)),
        None => Ok(()),
    }
}

#[async_trait]
impl<K, R> Sink<K, R> for KafkaGroupSink
where
    K: Serialize + Display + Send + Sync,
    R: Aggregatable + Sync,
{
    fn name(&self) -> &str {
        "kafka"
    }

    /// Each group is encoded into one buffer reused for the whole batch and handed to librdkafka
    /// at once (it copies the bytes), so that a batch allocates no string per group: not its
    /// JSON, key, id or count. The deliveries are awaited together.
    async fn write(&self, groups: &[Group<K, R>]) -> Result<(), SinkError> {
        let mut payload = Vec::new();
        let mut key = String::new();
        let mut deliveries = Vec::with_capacity(groups.len());
        for group in groups {
            payload.clear();
            payload.reserve(group.bytes + 64 * group.records.len() + 256);
            group.write_json(&mut payload);
            key.clear();
            // Writing into a String cannot fail.
            let _ = write!(key, "{}", group.key);
            let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
            let id = group.id.hyphenated().encode_lower(&mut id);
            let mut count = [0u8; 20];
            let count = decimal(group.records.len(), &mut count);
            let headers = OwnedHeaders::new_with_capacity(3)
                .insert(Header {
                    key: HEADER_GROUP_ID,
                    value: Some(id.as_bytes()),
                })
                .insert(Header {
                    key: HEADER_REASON,
                    value: Some(group.reason.as_str().as_bytes()),
                })
                .insert(Header {
                    key: HEADER_COUNT,
                    value: Some(count),
                });
            let record = FutureRecord::to(&self.topic)
                .key(key.as_bytes())
                .payload(payload.as_slice())
                .headers(headers);
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(Delivery::Queued(delivery)),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                    // librdkafka's queue is full: this one waits for room (up to the delivery
                    // timeout) before the buffer is reused.
                    let result = self.producer.send(record, self.delivery_timeout).await;
                    deliveries.push(Delivery::Done(Some(delivered(result))));
                }
                Err((e, _)) => deliveries.push(Delivery::Done(Some(Err(e)))),
            }
        }
        await_deliveries(deliveries, "groups", &self.topic).await
    }
}

/// A delivery: queued in librdkafka (its report to come), or already known.
enum Delivery {
    Queued(rdkafka::producer::DeliveryFuture),
    Done(Option<Result<(), KafkaError>>),
}

impl std::future::Future for Delivery {
    type Output = Result<(), KafkaError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match &mut *self {
            // The report's sender goes away only when the producer is dropped.
            Delivery::Queued(delivery) => std::pin::Pin::new(delivery)
                .poll(cx)
                .map(|report| report.map_or(Err(KafkaError::Canceled), delivered)),
            Delivery::Done(result) => {
                std::task::Poll::Ready(result.take().unwrap_or(Err(KafkaError::Canceled)))
            }
        }
    }
}

/// What a delivery report says: written, or why not.
pub(crate) fn delivered(
    report: rdkafka::producer::future_producer::OwnedDeliveryResult,
) -> Result<(), KafkaError> {
    report.map(|_| ()).map_err(|(e, _)| e)
}

/// `n` in decimal, written into `buffer`.
fn decimal(mut n: usize, buffer: &mut [u8; 20]) -> &[u8] {
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buffer[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimal_writes_what_to_string_writes() {
        for n in [0, 7, 10, 99, 100, 12_345, usize::MAX] {
            let mut buffer = [0u8; 20];
            assert_eq!(super::decimal(n, &mut buffer), n.to_string().as_bytes());
        }
    }
}
