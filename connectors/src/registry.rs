//! The registry: a config file names each connector by `type`; this is the one place that maps
//! a name to its config and constructor. Connectors whose feature is off are not in the build,
//! and naming one is an "unknown variant" error that lists the available names.
//!
//! ```toml
//! [source]
//! type = "kafka"
//! topic = "chat_messages"
//!
//! [[sinks]]
//! type = "cassandra"
//! keyspace = "confab"
//! ```
//!
//! The broadcast sink is not here: its subscribers are wired in code
//! ([`crate::embedded::BroadcastSink::subscribe`]), not in a config file.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use confab_pipeline::{
    ChatMessage, DeadLetterSink, Polled, Position, Sink, Source, SourceError, Text,
};
use serde::{Deserialize, Serialize};

use crate::embedded::{
    JsonLinesDeadLetters, JsonLinesFileConfig, JsonLinesFileSink, JsonLinesSource,
    JsonLinesSourceConfig, StdoutConfig, StdoutSink,
};

/// A connector that could not be built, naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot start the `{name}` {role}: {message}")]
pub struct BuildError {
    /// The connector's `type`.
    pub name: &'static str,
    /// `source`, `sink` or `dead-letter sink`.
    pub role: &'static str,
    /// Why, with the fix where one is known.
    pub message: String,
}

fn failed(name: &'static str, role: &'static str) -> impl FnOnce(String) -> BuildError {
    move |message| BuildError {
        name,
        role,
        message,
    }
}

/// Where chat messages come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SourceConfig {
    /// A Kafka topic read by a consumer group.
    #[cfg(feature = "kafka")]
    Kafka(crate::kafka::KafkaSourceConfig),
    /// A Fluvio topic, positions kept as Fluvio consumer offsets.
    #[cfg(feature = "fluvio")]
    Fluvio(crate::fluvio::FluvioSourceConfig),
    /// JSON lines from a file or stdin.
    File(JsonLinesSourceConfig),
}

/// Where completed groups of chat messages go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SinkConfig {
    /// A Kafka topic, one record per group.
    #[cfg(feature = "kafka")]
    Kafka(crate::kafka::KafkaSinkConfig),
    /// Firestore, one document per group.
    #[cfg(feature = "firestore")]
    Firestore(crate::firestore::FirestoreConfig),
    /// Cassandra / ScyllaDB history rows.
    #[cfg(feature = "cassandra")]
    Cassandra(crate::cassandra::CassandraConfig),
    /// A JSON-lines file, one line per group.
    File(JsonLinesFileConfig),
    /// Standard output, one line per group.
    Stdout(StdoutConfig),
}

/// Where records that cannot be processed go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeadLetterConfig {
    /// A Kafka topic, the reason in a header.
    #[cfg(feature = "kafka")]
    Kafka(crate::kafka::KafkaDeadLetterConfig),
    /// A Fluvio topic, one JSON record per letter.
    #[cfg(feature = "fluvio")]
    Fluvio(crate::fluvio::FluvioDeadLetterConfig),
    /// A JSON-lines file.
    File(JsonLinesFileConfig),
}

/// Any source the registry builds.
#[non_exhaustive]
pub enum AnySource {
    /// A Kafka consumer-group member.
    #[cfg(feature = "kafka")]
    Kafka(crate::kafka::KafkaSource),
    /// A Fluvio topic reader.
    #[cfg(feature = "fluvio")]
    Fluvio(crate::fluvio::FluvioSource),
    /// A JSON-lines reader.
    File(JsonLinesSource),
}

#[async_trait]
impl Source for AnySource {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Polled, SourceError> {
        match self {
            #[cfg(feature = "kafka")]
            Self::Kafka(s) => s.poll(max, wait).await,
            #[cfg(feature = "fluvio")]
            Self::Fluvio(s) => s.poll(max, wait).await,
            Self::File(s) => s.poll(max, wait).await,
        }
    }

    async fn commit(&mut self, next: &[Position]) -> Result<(), SourceError> {
        match self {
            #[cfg(feature = "kafka")]
            Self::Kafka(s) => s.commit(next).await,
            #[cfg(feature = "fluvio")]
            Self::Fluvio(s) => s.commit(next).await,
            Self::File(s) => s.commit(next).await,
        }
    }

    fn caught_up(&self, partition: u32) -> Option<bool> {
        match self {
            #[cfg(feature = "kafka")]
            Self::Kafka(s) => s.caught_up(partition),
            #[cfg(feature = "fluvio")]
            Self::Fluvio(s) => s.caught_up(partition),
            Self::File(s) => s.caught_up(partition),
        }
    }

    fn assigned(&self) -> Option<Vec<u32>> {
        match self {
            #[cfg(feature = "kafka")]
            Self::Kafka(s) => s.assigned(),
            #[cfg(feature = "fluvio")]
            Self::Fluvio(s) => s.assigned(),
            Self::File(s) => s.assigned(),
        }
    }
}

impl SourceConfig {
    /// The connector's `type`.
    pub fn name(&self) -> &'static str {
        match self {
            #[cfg(feature = "kafka")]
            Self::Kafka(_) => "kafka",
            #[cfg(feature = "fluvio")]
            Self::Fluvio(_) => "fluvio",
            Self::File(_) => "file",
        }
    }

    /// Connects the source.
    pub async fn build(&self) -> Result<AnySource, BuildError> {
        let fail = failed(self.name(), "source");
        match self {
            // The registry's sources feed the chat message decoder, which reads no header:
            // librdkafka need not parse them.
            #[cfg(feature = "kafka")]
            Self::Kafka(c) => {
                crate::kafka::KafkaSource::connect(&crate::kafka::KafkaSourceConfig {
                    headers: false,
                    ..c.clone()
                })
                .await
                .map(AnySource::Kafka)
                .map_err(|e| fail(e.message))
            }
            #[cfg(feature = "fluvio")]
            Self::Fluvio(c) => crate::fluvio::FluvioSource::connect(c)
                .await
                .map(AnySource::Fluvio)
                .map_err(|e| fail(e.message)),
            Self::File(c) => JsonLinesSource::open(c)
                .await
                .map(AnySource::File)
                .map_err(|e| fail(e.message)),
        }
    }
}

impl SinkConfig {
    /// The connector's `type`.
    pub fn name(&self) -> &'static str {
        match self {
            #[cfg(feature = "kafka")]
            Self::Kafka(_) => "kafka",
            #[cfg(feature = "firestore")]
            Self::Firestore(_) => "firestore",
            #[cfg(feature = "cassandra")]
            Self::Cassandra(_) => "cassandra",
            Self::File(_) => "file",
            Self::Stdout(_) => "stdout",
        }
    }

    /// Connects the sink, for groups keyed by chat id.
    pub async fn build(&self) -> Result<Arc<dyn Sink<Text, ChatMessage>>, BuildError> {
        let fail = failed(self.name(), "sink");
        Ok(match self {
            #[cfg(feature = "kafka")]
            Self::Kafka(c) => Arc::new(
                crate::kafka::KafkaGroupSink::connect(c)
                    .await
                    .map_err(|e| fail(e.message))?,
            ),
            #[cfg(feature = "firestore")]
            Self::Firestore(c) => Arc::new(
                crate::firestore::FirestoreSink::connect(c)
                    .await
                    .map_err(|e| fail(e.message))?,
            ),
            #[cfg(feature = "cassandra")]
            Self::Cassandra(c) => Arc::new(
                crate::cassandra::CassandraSink::connect(c)
                    .await
                    .map_err(|e| fail(e.to_string()))?,
            ),
            Self::File(c) => Arc::new(
                JsonLinesFileSink::open(c)
                    .await
                    .map_err(|e| fail(e.message))?,
            ),
            Self::Stdout(c) => Arc::new(StdoutSink::new(c)),
        })
    }
}

impl DeadLetterConfig {
    /// The connector's `type`.
    pub fn name(&self) -> &'static str {
        match self {
            #[cfg(feature = "kafka")]
            Self::Kafka(_) => "kafka",
            #[cfg(feature = "fluvio")]
            Self::Fluvio(_) => "fluvio",
            Self::File(_) => "file",
        }
    }

    /// Connects the dead-letter sink.
    pub async fn build(&self) -> Result<Arc<dyn DeadLetterSink>, BuildError> {
        let fail = failed(self.name(), "dead-letter sink");
        Ok(match self {
            #[cfg(feature = "kafka")]
            Self::Kafka(c) => Arc::new(
                crate::kafka::KafkaDeadLetters::connect(c)
                    .await
                    .map_err(|e| fail(e.message))?,
            ),
            #[cfg(feature = "fluvio")]
            Self::Fluvio(c) => Arc::new(
                crate::fluvio::FluvioDeadLetters::connect(c)
                    .await
                    .map_err(|e| fail(e.message))?,
            ),
            Self::File(c) => Arc::new(
                JsonLinesDeadLetters::open(c)
                    .await
                    .map_err(|e| fail(e.message))?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_names_its_connector_by_type_and_refuses_unknown_fields() {
        let sink: SinkConfig =
            serde_json::from_str(r#"{"type":"file","path":"/tmp/g.jsonl"}"#).expect("file sink");
        assert_eq!(sink.name(), "file");
        assert!(
            serde_json::from_str::<SinkConfig>(r#"{"type":"file","pth":"x"}"#).is_err(),
            "unknown fields are refused"
        );
        let err =
            serde_json::from_str::<SinkConfig>(r#"{"type":"nosuch"}"#).expect_err("unknown type");
        assert!(err.to_string().contains("unknown variant"), "{err}");
        let source: SourceConfig =
            serde_json::from_str(r#"{"type":"file","path":"-"}"#).expect("file source");
        assert_eq!(source.name(), "file");
        let letters: DeadLetterConfig =
            serde_json::from_str(r#"{"type":"file"}"#).expect("defaults");
        assert_eq!(letters.name(), "file");
    }

    #[cfg(feature = "fluvio")]
    #[test]
    fn the_fluvio_source_is_registered() {
        let source: SourceConfig =
            serde_json::from_str(r#"{"type":"fluvio","topic":"t","consumer":"c"}"#)
                .expect("fluvio source");
        assert_eq!(source.name(), "fluvio");
        let letters: DeadLetterConfig =
            serde_json::from_str(r#"{"type":"fluvio","topic":"dlq"}"#).expect("fluvio letters");
        assert_eq!(letters.name(), "fluvio");
        assert!(
            serde_json::from_str::<SourceConfig>(r#"{"type":"fluvio","group_id":"g"}"#).is_err(),
            "unknown fields are refused"
        );
    }

    #[cfg(all(feature = "kafka", feature = "firestore", feature = "cassandra"))]
    #[test]
    fn every_server_connector_is_registered() {
        for (json, name) in [
            (r#"{"type":"kafka","topic":"t"}"#, "kafka"),
            (r#"{"type":"firestore","collection":"c"}"#, "firestore"),
            (r#"{"type":"cassandra","keyspace":"k"}"#, "cassandra"),
        ] {
            let sink: SinkConfig = serde_json::from_str(json).expect(name);
            assert_eq!(sink.name(), name);
        }
        let source: SourceConfig =
            serde_json::from_str(r#"{"type":"kafka","group_id":"g"}"#).expect("kafka source");
        assert_eq!(source.name(), "kafka");
    }
}
