//! The Fluvio source: one topic, some or all of its partitions, committed only by the pipeline.
//!
//! A task per partition ([`super::reader`]) reads in log order into one bounded queue;
//! [`Source::poll`] hands the records out.
//!
//! Guarantees and their limits:
//! - **Commit-after-ack only.** Nothing is stored while reading; the only writes of the consumer
//!   offset are the pipeline's [`Source::commit`] calls, made once every sink acknowledged the
//!   records before the committed position. Fluvio stores the offset of the *last processed*
//!   record and resumes after it, so committing "next = N" stores `N - 1`. Its client can only
//!   store the offset of the last record a stream yielded, so a commit opens a short stream at
//!   `N - 1` under the consumer name, reads that one record, and flushes it (one small request
//!   per partition whose position moved, once per `commit_interval_ms`).
//! - **Restart.** A partition with a stored offset resumes right after it; one without starts at
//!   `start` (`earliest` or `latest`); `reset_committed` ignores stored offsets. On a cluster
//!   that has just started, reading the stored offsets waits (up to [`OFFSETS_TOPIC_WAIT`]) for
//!   the cluster to create its `consumer-offset` topic.
//! - **Idle means caught up.** [`Polled::Idle`] only when every partition was read to its end,
//!   so the wall clock closes groups only when the log really is quiet.
//! - **No consumer groups.** Fluvio has none: partitions are not shared or rebalanced, so this
//!   source never reports [`Polled::Revoked`]. Processes sharing a topic are given disjoint
//!   `partitions`.
//! - **Records deleted by retention before they were read** are skipped with a warning (there is
//!   nothing left to read), and cannot be committed past by offset.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use confab_pipeline::{Polled, Position, Source, SourceError};
use fluvio::consumer::ConsumerStream;
use fluvio::dataplane::link::ErrorCode;
use fluvio::metadata::topic::TopicSpec;
use fluvio::{Fluvio, FluvioClusterConfig, Offset};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use super::config::FluvioSourceConfig;
use super::offsets::{consumer_offsets, OFFSETS_TOPIC_WAIT};
use super::reader::{open, Event, Next, Reader};
use crate::StartPosition;

/// A reader of one Fluvio topic. See the module docs for its guarantees.
pub struct FluvioSource {
    fluvio: Arc<Fluvio>,
    config: FluvioSourceConfig,
    events: mpsc::Receiver<Event>,
    readers: Vec<JoinHandle<()>>,
    partitions: BTreeSet<u32>,
    /// Partitions read to their end, with none of their records handed out since.
    at_end: BTreeSet<u32>,
    /// The last position stored per partition (the next offset to read).
    committed: BTreeMap<u32, u64>,
}

/// The message for a cluster that cannot be reached, naming the address and the fix.
pub(super) fn unreachable_message(endpoint: &str, error: &dyn std::fmt::Display) -> String {
    format!(
        "cannot reach Fluvio at {endpoint} ({error}): start a local cluster (see the README's \
         Fluvio section) or set `endpoint` / CONFAB_FLUVIO_ENDPOINT"
    )
}

impl FluvioSource {
    /// Connects to the cluster, finds the topic's partitions and where each resumes, and starts
    /// reading. Fails, naming the fix, when the cluster cannot be reached or the topic or a
    /// configured partition does not exist.
    pub async fn connect(config: &FluvioSourceConfig) -> Result<Self, SourceError> {
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let endpoint = config.endpoint.as_str();
        let cluster = FluvioClusterConfig::new(endpoint);
        let fluvio = tokio::time::timeout(timeout, Fluvio::connect_with_config(&cluster))
            .await
            .map_err(|_| SourceError::fatal(unreachable_message(endpoint, &"timed out")))?
            .map_err(|e| SourceError::fatal(unreachable_message(endpoint, &format!("{e:#}"))))?;
        let fluvio = Arc::new(fluvio);

        let count = topic_partitions(&fluvio, &config.topic, endpoint).await?;
        let partitions: BTreeSet<u32> = if config.partitions.is_empty() {
            (0..count).collect()
        } else {
            config.partitions.iter().copied().collect()
        };
        if let Some(p) = partitions.iter().find(|&&p| p >= count) {
            return Err(SourceError::fatal(format!(
                "Fluvio topic `{}` has {count} partitions; partition {p} does not exist: fix \
                 `partitions`",
                config.topic
            )));
        }

        let stored = if config.reset_committed {
            BTreeMap::new()
        } else {
            stored_offsets(&fluvio, config).await?
        };
        let (sender, events) = mpsc::channel(config.max_buffered_records.max(1));
        let mut readers = Vec::new();
        let mut committed = BTreeMap::new();
        for &partition in &partitions {
            let next = match (stored.get(&partition), config.start) {
                (Some(&last), _) => {
                    committed.insert(partition, last + 1);
                    Next::At(last + 1)
                }
                (None, StartPosition::Earliest) => Next::Beginning,
                (None, StartPosition::Latest) => {
                    Next::At(end_offset(&fluvio, &config.topic, partition, timeout).await?)
                }
            };
            debug!(topic = %config.topic, partition, ?next, "Fluvio partition starts");
            let reader = Reader {
                fluvio: Arc::clone(&fluvio),
                topic: config.topic.clone(),
                partition,
                next,
                events: sender.clone(),
                timeout: Duration::from_millis(config.request_timeout_ms),
                recheck: Duration::from_millis(config.idle_recheck_ms.max(1)),
                reported_end: false,
            };
            readers.push(tokio::spawn(reader.run()));
        }
        info!(topic = %config.topic, consumer = %config.consumer, endpoint, partitions = ?partitions, "Fluvio source reading");
        Ok(Self {
            fluvio,
            config: config.clone(),
            events,
            readers,
            partitions,
            at_end: BTreeSet::new(),
            committed,
        })
    }

    /// The partitions this source reads.
    pub fn partitions(&self) -> Vec<u32> {
        self.partitions.iter().copied().collect()
    }

    fn caught_up_everywhere(&self) -> bool {
        self.at_end.len() == self.partitions.len()
    }

    /// Applies one event; returns its record, if it is one.
    fn apply(&mut self, event: Event) -> Option<confab_pipeline::SourceRecord> {
        match event {
            Event::Record(record) => {
                self.at_end.remove(&record.position.partition);
                Some(record)
            }
            Event::CaughtUp(partition) => {
                self.at_end.insert(partition);
                None
            }
        }
    }

    /// Stores `next - 1` as the consumer's offset of `partition`.
    async fn commit_one(&self, partition: u32, next: u64) -> Result<(), SourceError> {
        let topic = self.config.topic.as_str();
        let last = next - 1;
        let retryable = |what: String| {
            SourceError::retryable(format!(
                "cannot commit offset {next} of Fluvio {topic}/{partition} for consumer {}: {what}",
                self.config.consumer
            ))
        };
        let start = Offset::absolute(last as i64).map_err(|e| retryable(e.to_string()))?;
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let commit = async {
            let mut stream = open(
                &self.fluvio,
                topic,
                partition,
                start,
                false,
                Some(&self.config.consumer),
            )
            .await
            .map_err(retryable)?;
            match stream.next().await {
                Some(Ok(record)) if record.offset() as u64 == last => {}
                Some(Ok(record)) => {
                    return Err(SourceError::fatal(format!(
                        "Fluvio returned offset {} of {topic}/{partition} when asked for {last}",
                        record.offset()
                    )))
                }
                Some(Err(e @ ErrorCode::OffsetEvicted { .. })) => {
                    return Err(SourceError::fatal(format!(
                        "cannot commit offset {next} of Fluvio {topic}/{partition}: the record \
                         before it was deleted by retention ({e})"
                    )))
                }
                Some(Err(e)) => return Err(retryable(e.to_string())),
                None => return Err(retryable("the record before it is not readable".into())),
            }
            stream
                .offset_commit()
                .await
                .map_err(|e| fatal_or_retryable(e, &retryable))?;
            stream
                .offset_flush()
                .await
                .map_err(|e| fatal_or_retryable(e, &retryable))
        };
        tokio::time::timeout(timeout, commit)
            .await
            .map_err(|_| retryable("timed out".into()))?
    }
}

/// Offset management switched off on the SPU is a setting to fix; everything else may pass.
fn fatal_or_retryable(error: ErrorCode, retryable: &dyn Fn(String) -> SourceError) -> SourceError {
    match error {
        ErrorCode::OffsetManagementDisabled => SourceError::fatal(format!(
            "the Fluvio cluster does not keep consumer offsets ({error})"
        )),
        other => retryable(other.to_string()),
    }
}

/// The number of partitions of `topic`, or why it cannot be read.
async fn topic_partitions(
    fluvio: &Fluvio,
    topic: &str,
    endpoint: &str,
) -> Result<u32, SourceError> {
    let admin = fluvio.admin().await;
    let topics = admin
        .list::<TopicSpec, String>(vec![topic.to_string()])
        .await
        .map_err(|e| SourceError::fatal(unreachable_message(endpoint, &format!("{e:#}"))))?;
    let spec = topics
        .into_iter()
        .find(|t| t.name == topic)
        .ok_or_else(|| {
            SourceError::fatal(format!(
                "Fluvio topic `{topic}` does not exist at {endpoint}: create it with \
                 `fluvio topic create {topic}`"
            ))
        })?
        .spec;
    Ok(spec.partitions())
}

/// The consumer's stored offsets (the last processed record) of the configured topic.
async fn stored_offsets(
    fluvio: &Fluvio,
    config: &FluvioSourceConfig,
) -> Result<BTreeMap<u32, u64>, SourceError> {
    let offsets = consumer_offsets(fluvio, OFFSETS_TOPIC_WAIT)
        .await
        .map_err(|e| {
            SourceError::fatal(format!(
                "cannot read the Fluvio consumer offsets of {}: {e}",
                config.consumer
            ))
        })?;
    Ok(offsets
        .into_iter()
        .filter(|o| o.consumer_id == config.consumer && o.topic == config.topic && o.offset >= 0)
        .map(|o| (o.partition, o.offset as u64))
        .collect())
}

/// The offset the next record of `partition` will get: one past the last record, read with a
/// one-record stream (the client does not expose the partition's end offset).
async fn end_offset(
    fluvio: &Fluvio,
    topic: &str,
    partition: u32,
    timeout: Duration,
) -> Result<u64, SourceError> {
    let read_last = async {
        let mut stream = open(fluvio, topic, partition, Offset::from_end(1), false, None).await?;
        match stream.next().await {
            Some(Ok(record)) => Ok(record.offset() as u64 + 1),
            None => Ok(0),
            Some(Err(e)) => Err(e.to_string()),
        }
    };
    tokio::time::timeout(timeout, read_last)
        .await
        .map_err(|_| "timed out".to_string())
        .and_then(|r| r)
        .map_err(|e| {
            SourceError::fatal(format!(
                "cannot find the end of Fluvio {topic}/{partition}: {e}"
            ))
        })
}

#[async_trait]
impl Source for FluvioSource {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Polled, SourceError> {
        let max = max.max(1);
        let deadline = tokio::time::Instant::now() + wait;
        let mut records = Vec::new();
        loop {
            while records.len() < max {
                match self.events.try_recv() {
                    Ok(event) => records.extend(self.apply(event)),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        return Err(SourceError::fatal("every Fluvio partition reader stopped"))
                    }
                }
            }
            if !records.is_empty() {
                return Ok(Polled::Records(records));
            }
            if self.config.exit_at_end && self.caught_up_everywhere() {
                return Ok(Polled::End);
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => records.extend(self.apply(event)),
                Ok(None) => {
                    return Err(SourceError::fatal("every Fluvio partition reader stopped"))
                }
                // Lagging partitions yield an empty batch, so the runtime keeps event time.
                Err(_) if self.caught_up_everywhere() => return Ok(Polled::Idle),
                Err(_) => return Ok(Polled::Records(Vec::new())),
            }
        }
    }

    /// Caught up when the partition's end was seen and none of its records arrived since;
    /// `None` for a partition this source does not read.
    fn caught_up(&self, partition: u32) -> Option<bool> {
        self.partitions
            .contains(&partition)
            .then(|| self.at_end.contains(&partition))
    }

    fn assigned(&self) -> Option<Vec<u32>> {
        let mut assigned: Vec<u32> = self.partitions.iter().copied().collect();
        assigned.sort_unstable();
        Some(assigned)
    }

    async fn commit(&mut self, next: &[Position]) -> Result<(), SourceError> {
        for position in next {
            let (partition, offset) = (position.partition, position.offset);
            if offset == 0 || self.committed.get(&partition) == Some(&offset) {
                continue;
            }
            // One attempt: a retryable failure goes back to the runtime, which owns retrying
            // (the partitions committed before it stay committed, and are skipped next time).
            self.commit_one(partition, offset).await?;
            self.committed.insert(partition, offset);
            debug!(topic = %self.config.topic, partition, offset, "Fluvio offset committed");
        }
        Ok(())
    }
}

impl Drop for FluvioSource {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}
