//! The Kafka group feed: reads the `chat_messages_grouped` topic (one JSON `Group` per record,
//! written by the aggregator's Kafka sink) and broadcasts each group to this instance's events
//! streams.
//!
//! Every instance must see every group, so there is no consumer group: the feed assigns itself
//! every partition of the topic at its end and commits nothing (nothing to resume: a realtime
//! view only needs what happens while it is connected). A topic that does not exist yet is waited
//! for. Partitions added to the topic after the feed started are not read until a restart.
//! Exact repeats of a group (the sink is at least once) are dropped when they are among the last
//! few thousand groups seen; a longer copy of a group is passed on.

use super::{ChatGroup, GroupFeed};
use crate::config::KafkaEventsConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Groups remembered for deduplication.
const RECENT_GROUPS: usize = 4096;
/// How long one metadata request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between looks for a topic that does not exist yet, and after a consumer error.
const RETRY_DELAY: Duration = Duration::from_secs(2);

/// Routes librdkafka's log lines to `tracing`.
struct FeedContext;

impl ClientContext for FeedContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::warn!(facility, message, "librdkafka reported"),
            _ => tracing::debug!(facility, message, "librdkafka reported"),
        }
    }
}

impl ConsumerContext for FeedContext {}

type FeedConsumer = StreamConsumer<FeedContext>;

#[derive(Default)]
struct Status {
    assigned: AtomicBool,
    problem: Mutex<Option<String>>,
}

impl Status {
    fn set_problem(&self, problem: Option<String>) {
        *self.problem.lock().unwrap_or_else(|p| p.into_inner()) = problem;
    }
}

/// A [`GroupFeed`] reading completed groups from a Kafka topic.
pub struct KafkaGroupFeed {
    sender: broadcast::Sender<Arc<ChatGroup>>,
    status: Arc<Status>,
    task: JoinHandle<()>,
    topic: String,
}

impl std::fmt::Debug for KafkaGroupFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaGroupFeed")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Drop for KafkaGroupFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KafkaGroupFeed {
    /// Starts reading `config.topic` from its end, in a background task that lives as long as
    /// the feed. Fails only on invalid settings; an unreachable broker or a missing topic is
    /// retried, and reported by [`GroupFeed::check`].
    pub fn start(config: &KafkaEventsConfig) -> Result<Self, String> {
        let mut client = ClientConfig::new();
        for (key, value) in &config.properties {
            client.set(key, value);
        }
        client
            .set("bootstrap.servers", &config.brokers)
            // Required by librdkafka, never joined: partitions are assigned, not subscribed.
            .set(
                "group.id",
                format!("confab-chat-events-{}", Uuid::new_v4().simple()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "latest");
        let consumer: FeedConsumer = client
            .create_with_context(FeedContext)
            .map_err(|err| format!("invalid Kafka consumer settings: {err}"))?;
        let (sender, _) = broadcast::channel(config.capacity.max(1));
        let status = Arc::new(Status::default());
        status.set_problem(Some(format!(
            "not yet reading Kafka topic {}",
            config.topic
        )));
        let task = tokio::spawn(run(
            Arc::new(consumer),
            config.topic.clone(),
            config.brokers.clone(),
            sender.clone(),
            Arc::clone(&status),
        ));
        Ok(Self {
            sender,
            status,
            task,
            topic: config.topic.clone(),
        })
    }

    /// Whether the feed has assigned itself the topic's partitions.
    pub fn is_assigned(&self) -> bool {
        self.status.assigned.load(Ordering::SeqCst)
    }
}

impl GroupFeed for KafkaGroupFeed {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn subscribe(&self) -> Option<broadcast::Receiver<Arc<ChatGroup>>> {
        Some(self.sender.subscribe())
    }

    fn check(&self) -> Result<(), String> {
        match self
            .status
            .problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            None => Ok(()),
            Some(problem) => Err(problem),
        }
    }
}

async fn partitions(consumer: &Arc<FeedConsumer>, topic: &str) -> Result<Vec<i32>, String> {
    let consumer = Arc::clone(consumer);
    let name = topic.to_owned();
    let metadata =
        tokio::task::spawn_blocking(move || consumer.fetch_metadata(Some(&name), METADATA_TIMEOUT))
            .await
            .map_err(|err| err.to_string())?
            .map_err(|err| err.to_string())?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or("no metadata for the topic")?;
    if let Some(err) = topic.error() {
        return Err(format!("{err:?}"));
    }
    Ok(topic.partitions().iter().map(|p| p.id()).collect())
}

async fn run(
    consumer: Arc<FeedConsumer>,
    topic: String,
    brokers: String,
    sender: broadcast::Sender<Arc<ChatGroup>>,
    status: Arc<Status>,
) {
    loop {
        match partitions(&consumer, &topic).await {
            Ok(found) if !found.is_empty() => {
                let mut assignment = TopicPartitionList::new();
                for partition in &found {
                    if let Err(err) =
                        assignment.add_partition_offset(&topic, *partition, Offset::End)
                    {
                        status.set_problem(Some(format!("cannot assign {topic}: {err}")));
                    }
                }
                match consumer.assign(&assignment) {
                    Ok(()) => {
                        tracing::info!(%topic, partitions = found.len(), "Reading groups for the events streams.");
                        break;
                    }
                    Err(err) => status.set_problem(Some(format!("cannot assign {topic}: {err}"))),
                }
            }
            Ok(_) => status.set_problem(Some(format!(
                "Kafka topic {topic} has no partitions yet; waiting for it"
            ))),
            Err(err) => status.set_problem(Some(format!(
                "cannot read Kafka topic {topic} at {brokers} ({err}); retrying: start Kafka with \
                 `scripts/infra up kafka` or create the topic"
            ))),
        }
        tokio::time::sleep(RETRY_DELAY).await;
    }
    status.assigned.store(true, Ordering::SeqCst);
    status.set_problem(None);
    let mut recent = Recent::default();
    loop {
        match consumer.recv().await {
            Ok(message) => {
                status.set_problem(None);
                let Some(payload) = message.payload() else {
                    continue;
                };
                let group: ChatGroup = match serde_json::from_slice(payload) {
                    Ok(group) => group,
                    Err(err) => {
                        tracing::warn!(%topic, partition = message.partition(), offset = message.offset(), error = %err, "Skipped a record that is not a group.");
                        continue;
                    }
                };
                let header_id = message.headers().and_then(|headers| {
                    headers
                        .iter()
                        .find(|h| h.key == "confab-group-id")
                        .and_then(|h| h.value)
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .and_then(|v| Uuid::parse_str(v).ok())
                });
                if recent.seen(header_id.unwrap_or(group.id), group.records.len()) {
                    continue;
                }
                // No subscriber is not an error: nobody is watching right now.
                let _ = sender.send(Arc::new(group));
            }
            Err(err) => {
                tracing::warn!(%topic, error = %err, "Reading the group topic failed; retrying.");
                status.set_problem(Some(format!("reading Kafka topic {topic} failed: {err}")));
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
    }
}

/// The last groups passed on, with their sizes.
#[derive(Default)]
struct Recent {
    order: VecDeque<Uuid>,
    sizes: HashMap<Uuid, usize>,
}

impl Recent {
    /// Whether a group with this id and at least this many records was passed on recently;
    /// records it otherwise.
    fn seen(&mut self, id: Uuid, len: usize) -> bool {
        match self.sizes.get_mut(&id) {
            Some(size) if *size >= len => true,
            Some(size) => {
                *size = len;
                false
            }
            None => {
                self.sizes.insert(id, len);
                self.order.push_back(id);
                if self.order.len() > RECENT_GROUPS {
                    if let Some(old) = self.order.pop_front() {
                        self.sizes.remove(&old);
                    }
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_dropped_and_longer_copies_pass() {
        let mut recent = Recent::default();
        let id = Uuid::new_v4();
        assert!(!recent.seen(id, 2));
        assert!(recent.seen(id, 2));
        assert!(recent.seen(id, 1));
        assert!(!recent.seen(id, 3), "a longer copy");
        for _ in 0..RECENT_GROUPS {
            recent.seen(Uuid::new_v4(), 1);
        }
        assert!(!recent.seen(id, 3), "forgotten after enough others");
        assert!(recent.order.len() <= RECENT_GROUPS);
    }
}
