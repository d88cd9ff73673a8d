//! One task per partition: reads the partition in order and tells the source when it has reached
//! the end.
//!
//! Fluvio's consumer stream yields records only, never the partition's end offset, so the reader
//! alternates two kinds of stream:
//! - a *drain*: a non-continuous stream from the next offset, which Fluvio ends at the partition's
//!   end as of its opening. When it ends, the partition is caught up ([`Event::CaughtUp`]).
//! - a *wait*: a continuous stream from the next offset, held open until its first record, which
//!   is forwarded and starts the next drain. An idle partition costs one open stream, not a poll.
//!
//! The reader keeps the next offset itself and reopens from it after any error, so a broken
//! connection neither skips nor repeats a record. No await on the cluster is unbounded: opening a
//! stream and each record of a drain get the source's request timeout, and a wait is reopened as
//! a drain after `idle_recheck_ms` without a record, so a stream the client holds open on a
//! connection that no longer answers (as after a cluster restart) costs a pause, never the
//! partition. Sending into the bounded channel waits while the pipeline is behind, which stops
//! the fetching (backpressure).
//!
//! A stream can also skip records by itself: when a fetch's byte limit (about 1 MiB in the 0.50
//! client) cuts a record batch, the records of that batch after the cut never arrive and the
//! stream goes on with the next batch (seen against fluvio-run 0.18.1: offsets 5112-5120 of a
//! partition missing when read from 0, present when read from 4000). A partition's offsets
//! have no holes in Fluvio (retention deletes only from the start, and says so with
//! `OffsetEvicted`), so a record past the next offset means such a skip: the reader reopens at
//! the first skipped offset at once, and a stream reopened there starts with it.

use std::sync::Arc;
use std::time::Duration;

use confab_pipeline::retry::Backoff;
use confab_pipeline::{Position, SourceRecord};
use fluvio::consumer::{ConsumerConfigExt, ConsumerStream, Record, RetryMode};
use fluvio::dataplane::link::ErrorCode;
use fluvio::{Fluvio, Offset};
use futures::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Shortest and longest wait before reopening a stream that failed.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What a reader hands to the source, in the partition's log order.
#[derive(Debug)]
pub(super) enum Event {
    Record(SourceRecord),
    /// Every record of the partition up to its end (as of the last drain) was sent before this.
    CaughtUp(u32),
}

/// Where a reader starts or goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// The first record still in the partition (no number known yet).
    Beginning,
    /// This absolute offset.
    At(u64),
}

impl Next {
    fn offset(self) -> Offset {
        match self {
            Self::Beginning => Offset::beginning(),
            Self::At(offset) => {
                Offset::absolute(offset as i64).unwrap_or_else(|_| Offset::beginning())
            }
        }
    }
}

/// How a stream ended.
enum Ended {
    /// At the partition's end (a drain) or at its first record (a wait).
    Done,
    /// The pipeline is gone: the reader stops.
    Closed,
    /// An error; reopen from `next` after a pause.
    Failed,
    /// The stream skipped records before `next`; reopen from `next` at once.
    Skipped,
    /// A wait saw no record for the recheck period; drain from `next` to make sure.
    Recheck,
}

/// Opens a stream of `partition` from `start`. `consumer`, when given, is the offset consumer
/// whose position a manual commit stores.
pub(super) async fn open(
    fluvio: &Fluvio,
    topic: &str,
    partition: u32,
    start: Offset,
    continuous: bool,
    consumer: Option<&str>,
) -> Result<impl ConsumerStream + Send + use<>, String> {
    let mut builder = ConsumerConfigExt::builder();
    builder
        .topic(topic)
        .partition(partition)
        .offset_start(start)
        .disable_continuous(!continuous)
        // Errors come back to us; we reopen from our own next offset.
        .retry_mode(RetryMode::Disabled);
    if let Some(consumer) = consumer {
        builder
            .offset_consumer(consumer.to_string())
            .offset_strategy(fluvio::consumer::OffsetManagementStrategy::Manual);
    }
    let config = builder.build().map_err(|e| format!("{e:#}"))?;
    fluvio
        .consumer_with_config(config)
        .await
        .map_err(|e| format!("cannot open a stream of {topic}/{partition}: {e:#}"))
}

pub(super) fn to_record(record: &Record) -> SourceRecord {
    SourceRecord {
        position: Position {
            partition: record.partition(),
            offset: record.offset() as u64,
        },
        key: record.get_key().map(|k| k.as_ref().to_vec()),
        payload: record.get_value().as_ref().to_vec(),
        headers: Vec::new(),
    }
}

/// A partition reader. It runs until the source drops the channel's receiver.
pub(super) struct Reader {
    pub(super) fluvio: Arc<Fluvio>,
    pub(super) topic: String,
    pub(super) partition: u32,
    pub(super) next: Next,
    pub(super) events: mpsc::Sender<Event>,
    /// How long opening a stream, or a drain's next record, may take.
    pub(super) timeout: Duration,
    /// How long a wait is held without a record before the partition is drained again.
    pub(super) recheck: Duration,
    /// Whether the source knows the partition is at its end: set by a `CaughtUp`, cleared by
    /// every record sent after it, whichever stream read it. (A drain after a failed or timed
    /// out wait reads what arrived meanwhile; were that not cleared here, the partition would
    /// stay "behind" in the source and hold event time, and the last open groups, forever.)
    pub(super) reported_end: bool,
}

impl Reader {
    pub(super) async fn run(mut self) {
        // The runtime never sees these failures (they happen behind the source's channel), so
        // the reader retries them itself, on the workspace's one backoff schedule.
        let mut retry = Backoff::new(RETRY_MIN, RETRY_MAX);
        loop {
            match self.stream(false).await {
                Ended::Done => {
                    retry.reset();
                    if !self.reported_end {
                        if self
                            .events
                            .send(Event::CaughtUp(self.partition))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        self.reported_end = true;
                    }
                }
                Ended::Closed => return,
                Ended::Skipped | Ended::Recheck => continue,
                Ended::Failed => {
                    tokio::time::sleep(retry.next_delay()).await;
                    continue;
                }
            }
            match self.stream(true).await {
                Ended::Done | Ended::Skipped | Ended::Recheck => {}
                Ended::Closed => return,
                Ended::Failed => tokio::time::sleep(retry.next_delay()).await,
            }
        }
    }

    /// A drain (`continuous = false`) to the end, or a wait for one record.
    async fn stream(&mut self, continuous: bool) -> Ended {
        let (topic, partition) = (self.topic.as_str(), self.partition);
        let opened = tokio::time::timeout(
            self.timeout,
            open(
                &self.fluvio,
                topic,
                partition,
                self.next.offset(),
                continuous,
                None,
            ),
        )
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "cannot open a stream of {topic}/{partition}: no answer within {} ms",
                self.timeout.as_millis()
            ))
        });
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(error) => {
                warn!(topic, partition, %error, "cannot open a Fluvio stream; retrying");
                return Ended::Failed;
            }
        };
        // Whether this stream has yielded a record yet: a stream opened at `next` that starts past
        // it would have nothing to reopen at (records that are gone), and goes on.
        let mut first = true;
        // A drain's records come in fetches, each well within the timeout; a wait may idle.
        let patience = if continuous {
            self.recheck
        } else {
            self.timeout
        };
        loop {
            let Ok(item) = tokio::time::timeout(patience, stream.next()).await else {
                if continuous {
                    debug!(
                        topic,
                        partition, "no record for a while; checking the partition"
                    );
                    return Ended::Recheck;
                }
                warn!(
                    topic,
                    partition,
                    timeout_ms = patience.as_millis() as u64,
                    "the Fluvio stream stalled (no record and no end); reopening from the next offset"
                );
                return Ended::Failed;
            };
            match item {
                None if continuous => {
                    debug!(topic, partition, "the Fluvio stream closed; reopening");
                    return Ended::Failed;
                }
                None => return Ended::Done,
                Some(Ok(record)) => {
                    let offset = record.offset() as u64;
                    if let Next::At(expected) = self.next {
                        if offset > expected && !first {
                            warn!(
                                topic,
                                partition,
                                expected,
                                got = offset,
                                "the Fluvio stream skipped records (a fetch cut a record batch); \
                                 reopening at the first one skipped"
                            );
                            return Ended::Skipped;
                        }
                        if offset > expected {
                            warn!(
                                topic,
                                partition,
                                expected,
                                got = offset,
                                "Fluvio has no records between these offsets; going on"
                            );
                        }
                    }
                    first = false;
                    self.next = Next::At(offset + 1);
                    if self
                        .events
                        .send(Event::Record(to_record(&record)))
                        .await
                        .is_err()
                    {
                        return Ended::Closed;
                    }
                    self.reported_end = false;
                    if continuous {
                        return Ended::Done;
                    }
                }
                Some(Err(ErrorCode::OffsetEvicted {
                    offset,
                    next_available,
                })) => {
                    warn!(topic, partition, offset, next_available, "Fluvio records were deleted (retention) before they were read; going on from the oldest left");
                    self.next = Next::At(next_available.max(0) as u64);
                    return Ended::Failed;
                }
                Some(Err(error)) => {
                    warn!(topic, partition, %error, "Fluvio stream failed; reopening from the next offset");
                    return Ended::Failed;
                }
            }
        }
    }
}
