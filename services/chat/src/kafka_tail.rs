//! Reading a Kafka topic from its end, in every instance: the group lane's feed (the grouped
//! topic) and the live lane's tail (the message log) both need exactly this.
//!
//! Every instance must see every record, so there is no consumer group: the tail assigns itself
//! every partition of the topic at its end and commits nothing (a realtime view only needs what
//! happens while it runs; what came before is in history). A topic that does not exist yet is
//! created when the caller asks (the group feed: nothing else would create it before the
//! aggregator's first group), or else waited for, with the reason in [`TopicTail::check`].
//! Partitions added to the topic after the tail started are not read until a restart.

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How long one metadata request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between looks for a topic that does not exist yet, and after a consumer error.
const RETRY_DELAY: Duration = Duration::from_secs(2);

/// Routes librdkafka's log lines to `tracing`.
struct TailContext;

impl ClientContext for TailContext {
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

impl ConsumerContext for TailContext {}

type TailConsumer = StreamConsumer<TailContext>;

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

/// A background task reading a topic from its end and handing each record to a handler.
pub(crate) struct TopicTail {
    status: Arc<Status>,
    task: JoinHandle<()>,
}

impl Drop for TopicTail {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TopicTail {
    /// Starts reading `topic` at `brokers` from its end; `properties` are extra librdkafka
    /// consumer settings. `what` names the reader in logs. With `create`, a missing topic is
    /// created with that many partitions. Fails only on invalid settings; an unreachable broker
    /// or a missing topic is retried, and reported by [`TopicTail::check`].
    pub(crate) fn start(
        brokers: &str,
        topic: &str,
        properties: &BTreeMap<String, String>,
        what: &'static str,
        create: Option<i32>,
        handle: impl FnMut(&BorrowedMessage<'_>) + Send + 'static,
    ) -> Result<Self, String> {
        // The same connection settings (security included), without the consumer's own.
        let admin = match create {
            Some(partitions) => Some((
                confab_connectors::kafka::admin_client(brokers, properties)?,
                partitions,
            )),
            None => None,
        };
        // group.id is required by librdkafka but never joined: partitions are assigned, not
        // subscribed. Offsets are never committed: a tail starts at the end every time.
        let group = format!("confab-chat-tail-{}", Uuid::new_v4().simple());
        let client = confab_connectors::kafka::client_config(
            brokers,
            &[
                ("group.id", &group),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", "latest"),
            ],
            properties,
        )?;
        let consumer: TailConsumer = client
            .create_with_context(TailContext)
            .map_err(|err| format!("invalid Kafka consumer settings: {err}"))?;
        let status = Arc::new(Status::default());
        status.set_problem(Some(format!("not yet reading Kafka topic {topic}")));
        let task = tokio::spawn(run(
            Arc::new(consumer),
            topic.to_owned(),
            brokers.to_owned(),
            what,
            admin,
            handle,
            Arc::clone(&status),
        ));
        Ok(Self { status, task })
    }

    /// Whether the tail has assigned itself the topic's partitions.
    pub(crate) fn is_assigned(&self) -> bool {
        self.status.assigned.load(Ordering::SeqCst)
    }

    /// Whether the tail is reading; the reason when it is not.
    pub(crate) fn check(&self) -> Result<(), String> {
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

/// Why a topic's partitions are not known.
enum Missing {
    /// The broker says the topic does not exist.
    Topic,
    /// Anything else (unreachable broker, timeout, ...).
    Other(String),
}

async fn partitions(consumer: &Arc<TailConsumer>, topic: &str) -> Result<Vec<i32>, Missing> {
    let consumer = Arc::clone(consumer);
    let name = topic.to_owned();
    let metadata =
        tokio::task::spawn_blocking(move || consumer.fetch_metadata(Some(&name), METADATA_TIMEOUT))
            .await
            .map_err(|err| Missing::Other(err.to_string()))?
            .map_err(|err| Missing::Other(err.to_string()))?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| Missing::Other("no metadata for the topic".into()))?;
    match topic.error() {
        None => Ok(topic.partitions().iter().map(|p| p.id()).collect()),
        Some(err) if RDKafkaErrorCode::from(err) == RDKafkaErrorCode::UnknownTopicOrPartition => {
            Err(Missing::Topic)
        }
        Some(err) => Err(Missing::Other(format!("{err:?}"))),
    }
}

async fn run(
    consumer: Arc<TailConsumer>,
    topic: String,
    brokers: String,
    what: &'static str,
    admin: Option<(AdminClient<DefaultClientContext>, i32)>,
    mut handle: impl FnMut(&BorrowedMessage<'_>) + Send + 'static,
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
                        tracing::info!(%topic, partitions = found.len(), reader = what, "Reading a Kafka topic from its end.");
                        break;
                    }
                    Err(err) => status.set_problem(Some(format!("cannot assign {topic}: {err}"))),
                }
            }
            Ok(_) => status.set_problem(Some(format!(
                "Kafka topic {topic} has no partitions yet; waiting for it"
            ))),
            Err(Missing::Topic) => match &admin {
                Some((admin, partitions)) => match confab_connectors::kafka::create_topic(
                    admin,
                    &topic,
                    *partitions,
                    METADATA_TIMEOUT,
                )
                .await
                {
                    Ok(()) => {
                        tracing::info!(%topic, partitions, reader = what, "Created the Kafka topic, which did not exist.");
                        status.set_problem(Some(format!(
                            "created Kafka topic {topic}; assigning its partitions"
                        )));
                        // Its partitions are there now: no pause before looking again.
                        continue;
                    }
                    Err(err) => status.set_problem(Some(format!(
                        "Kafka topic {topic} does not exist and creating it at {brokers} failed \
                         ({err}); retrying: create it, or check the client's ACLs"
                    ))),
                },
                None => status.set_problem(Some(format!(
                    "Kafka topic {topic} does not exist yet; waiting for it (the aggregator's \
                     grouped sink creates it with its first group, or set create_partitions)"
                ))),
            },
            Err(Missing::Other(err)) => status.set_problem(Some(format!(
                "cannot read Kafka topic {topic} at {brokers} ({err}); retrying: start Kafka with \
                 `scripts/infra up kafka` or create the topic"
            ))),
        }
        tokio::time::sleep(RETRY_DELAY).await;
    }
    status.assigned.store(true, Ordering::SeqCst);
    status.set_problem(None);
    loop {
        match consumer.recv().await {
            Ok(message) => {
                status.set_problem(None);
                handle(&message);
            }
            Err(err) => {
                tracing::warn!(%topic, reader = what, error = %err, "Reading a Kafka topic failed; retrying.");
                status.set_problem(Some(format!("reading Kafka topic {topic} failed: {err}")));
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
    }
}
