//! The runtime: source -> decode -> operator -> sinks, with commit-after-ack.
//!
//! Guarantees:
//! - **At-least-once.** A source position is committed only when every record before it was
//!   acknowledged by every sink (or written to the dead-letter sink). After a crash, the source
//!   resumes from the committed positions; the operator, being a function of the log, rebuilds the
//!   same groups with the same ids, and idempotent sinks make the rewrite harmless.
//! - **Bounded memory.** The operator caps open groups and bytes per worker; the source pauses
//!   while more than `max_unacked_bytes` of records read are neither in an open group nor
//!   acknowledged by every sink (backpressure: a slow or failing sink stops the reading).
//! - **Bad input never stops the pipeline.** Oversized and undecodable records go to the
//!   dead-letter sink with the reason, and are counted.
//! - **Graceful shutdown.** Stop reading, flush every open group, wait for the sinks, commit.
//!
//! Time: records enter the operator at the current input time, which follows the minimum over
//! active partitions of their latest event time, less `lateness_ms`; when the source is idle,
//! it follows the clock (less `lateness_ms`), so groups complete without new records.
//!
//! With a leading edge (`leading_edge_idle_ms`), a position is committed only where no
//! conversation straddles it and no conversation before it may still continue (see the
//! `sessions` module), so that a replay writes the same records alone.

mod dispatch;
mod intake;
mod sessions;
mod tracker;
mod workers;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::clock::{Clock, SystemClock};
use crate::group::Group;
use crate::metrics::Metrics;
use crate::operator::{AggregateOptions, GroupKey, OperatorLimits};
use crate::policy::{PolicyError, WindowPolicy};
use crate::record::{Aggregatable, Position};
use crate::retry::Backoff;
use crate::sink::{DeadLetterSink, ErrorKind, Sink};
use crate::sink::{FnSink, LoggedDeadLetters, SinkError};
use crate::source::{
    Decoding, Polled, RecordError, RecordSource, Source, SourceError, SourceRecord,
};
use dispatch::{write_dead_letters, Dispatcher, Spent};
use intake::Intake;
use sessions::Sessions;
use tracker::CommitTracker;
use workers::{run_workers, Feed, FeedSender, Generations, WorkerShared, WorkerThreads};

/// Batches of records (and time advances) the reader may send ahead of the workers.
const FEED_BATCHES: usize = 4;

/// How the runtime reads, batches, retries and commits. Durations are in milliseconds.
///
/// Defaults: 1 worker, `poll_max_records` 4096, `poll_wait_ms` 50, `lateness_ms` 500,
/// `max_record_bytes` 64 KiB, `max_unacked_bytes` 64 MiB, `commit_interval_ms` 1000,
/// `commit_epoch_ms` 60000, `sink_batch_max_groups` 200, `sink_concurrency` 4,
/// `retry_initial_ms` 100, `retry_max_ms` 10000, `shutdown_timeout_ms` 30000.
/// [`Pipeline::run`] refuses settings that cannot work ([`RuntimeConfig::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Timely worker threads aggregating in parallel (keys are spread across them).
    pub workers: usize,
    /// Most records read from the source per poll.
    pub poll_max_records: usize,
    /// Longest wait for a record in one poll before the source counts as idle.
    pub poll_wait_ms: u64,
    /// How far the input time stays behind event times and the clock, so that slightly late or
    /// out-of-order records still join their group. Adds to the delay of idle groups.
    pub lateness_ms: u64,
    /// Records larger than this go to the dead-letter sink.
    pub max_record_bytes: usize,
    /// The source pauses while more than this many bytes of records read are neither held in an
    /// open group nor acknowledged by every sink (in flight to the operator or to the sinks).
    pub max_unacked_bytes: u64,
    /// How often acknowledged positions are committed.
    pub commit_interval_ms: u64,
    /// No group spans a multiple of this many milliseconds of event time (0: no such limit;
    /// default 60 s). This changes which records share a group: a key whose records run across
    /// a multiple is split there (reason `epoch`), whatever the window policy says.
    /// An offset is committed only where no acknowledged group straddles it, so that a replay
    /// rebuilds the same groups; in a busy log the groups of interleaved chats always overlap,
    /// and without this limit the committed offsets could stay behind for as long as the
    /// traffic lasts. With it they move at least once per epoch, for at most one extra group
    /// per chat per epoch.
    pub commit_epoch_ms: u64,
    /// Most groups in one sink write.
    pub sink_batch_max_groups: usize,
    /// Most sink batches in flight at once.
    pub sink_concurrency: usize,
    /// First retry delay after a retryable sink or source error; doubles up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    /// Longest retry delay.
    pub retry_max_ms: u64,
    /// On shutdown, how long to wait for sinks before giving up (what was not acknowledged is
    /// not committed, and is replayed on the next start).
    pub shutdown_timeout_ms: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            poll_max_records: 4096,
            poll_wait_ms: 50,
            lateness_ms: 500,
            max_record_bytes: 64 * 1024,
            max_unacked_bytes: 64 * 1024 * 1024,
            commit_interval_ms: 1000,
            commit_epoch_ms: 60_000,
            sink_batch_max_groups: 200,
            sink_concurrency: 4,
            retry_initial_ms: 100,
            retry_max_ms: 10_000,
            shutdown_timeout_ms: 30_000,
        }
    }
}

impl RuntimeConfig {
    /// Checks that every setting can work, naming the setting and the fix. [`Pipeline::run`]
    /// calls it before reading anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |message: String| Err(ConfigError(message));
        if self.workers == 0 || self.workers > 256 {
            return fail(format!("workers = {}: use 1 to 256", self.workers));
        }
        if self.poll_max_records == 0 {
            return fail(
                "`poll_max_records` = 0 would read nothing: use at least 1 (default 4096)".into(),
            );
        }
        if self.max_record_bytes == 0 {
            return fail("`max_record_bytes` = 0 would refuse every record: use at least 1".into());
        }
        if self.max_unacked_bytes == 0 {
            return fail(
                "`max_unacked_bytes` = 0 would pause the source forever: use at least 1".into(),
            );
        }
        if self.sink_batch_max_groups == 0 || self.sink_concurrency == 0 {
            return fail(
                "`sink_batch_max_groups` and `sink_concurrency` must be at least 1".into(),
            );
        }
        if self.retry_initial_ms > self.retry_max_ms {
            return fail(format!(
                "`retry_initial_ms` ({}) must not exceed `retry_max_ms` ({})",
                self.retry_initial_ms, self.retry_max_ms
            ));
        }
        Ok(())
    }

    /// The delays between retries of a failed sink write, dead-letter write, poll or commit:
    /// from `retry_initial_ms`, doubling up to `retry_max_ms`, with jitter ([`Backoff`]).
    pub fn backoff(&self) -> Backoff {
        Backoff::from_millis(self.retry_initial_ms, self.retry_max_ms)
    }
}

/// How many times the runtime tries a commit that must not wait for the next interval: before
/// giving partitions up in a rebalance, and the last one at shutdown. A failure after these
/// costs a replay from the previous commit, never a loss.
const LAST_CHANCE_COMMIT_ATTEMPTS: u32 = 5;

/// A run's own counts for its [`RunReport`], kept apart from the [`Metrics`] it reports into:
/// those may be shared by several pipelines (one `/metrics` endpoint for all of them), and a
/// report read from them would count the other pipelines' records too. Each update goes to both.
#[derive(Debug)]
pub(crate) struct Counts {
    pub(crate) shared: Arc<Metrics>,
    messages_in: AtomicU64,
    groups_out: AtomicU64,
    groups_rejected: AtomicU64,
    dead_letters: AtomicU64,
}

impl Counts {
    fn new(shared: Arc<Metrics>) -> Self {
        Self {
            shared,
            messages_in: AtomicU64::new(0),
            groups_out: AtomicU64::new(0),
            groups_rejected: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
        }
    }

    /// `n` records were read from the source.
    pub(crate) fn read(&self, n: u64) {
        self.messages_in.fetch_add(n, SeqCst);
        self.shared.messages_in.fetch_add(n, SeqCst);
    }

    /// `out` groups were acknowledged by every sink, and `rejected` refused for good.
    pub(crate) fn groups_out(&self, out: u64, rejected: u64) {
        self.groups_out.fetch_add(out, SeqCst);
        self.groups_rejected.fetch_add(rejected, SeqCst);
        self.shared.groups_out.fetch_add(out, SeqCst);
        self.shared.groups_rejected.fetch_add(rejected, SeqCst);
    }

    /// `n` records were written to the dead-letter sink.
    pub(crate) fn dead_lettered(&self, n: u64) {
        self.dead_letters.fetch_add(n, SeqCst);
        self.shared.dead_letters.fetch_add(n, SeqCst);
    }
}

/// The commit bookkeeping, locked. Only the runtime's own bookkeeping runs under this lock (no
/// user code: the key function runs before it is taken), so a poisoned lock means a bug left it
/// half-updated; committing from it could commit past unacknowledged records, so the run stops,
/// wherever the lock is taken.
pub(crate) fn lock(
    tracker: &Mutex<CommitTracker>,
) -> Result<std::sync::MutexGuard<'_, CommitTracker>, PipelineError> {
    tracker.lock().map_err(|_| PipelineError::Panicked {
        what: "the runtime's commit bookkeeping".into(),
        message: "a panic while it was being updated left it unusable; nothing more is \
                  committed"
            .into(),
    })
}

/// A runtime setting or operator limit that cannot work, with what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Why a pipeline could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The window policy is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The runtime configuration is invalid.
    #[error("runtime configuration: {0}")]
    Config(String),
    /// The source failed in a way retrying cannot fix, or the last commit kept failing. Nothing
    /// after the last committed position is lost: a restart reads it again.
    #[error("the source failed")]
    Source(#[source] SourceError),
    /// The dead-letter sink failed for good (or until the shutdown timeout), so bad records could
    /// not be set aside. The run stopped; they and everything after them stay uncommitted.
    #[error("the dead-letter sink failed (the run stopped; nothing from the records it could not take on was committed)")]
    DeadLetters(#[source] SinkError),
    /// The timely workers failed.
    #[error("dataflow workers failed: {0}")]
    Workers(String),
    /// A sink failed in a way that every later write would repeat (credentials, configuration).
    /// The run stopped; nothing after the last position every sink acknowledged was committed.
    #[error(
        "sink `{sink}` cannot go on (the run stopped; nothing after its last acknowledged group \
         was committed)"
    )]
    Sink {
        /// The sink's [`Sink::name`].
        sink: String,
        /// What the sink said.
        #[source]
        source: SinkError,
    },
    /// Code run by the pipeline panicked: the key function, a worker, a sink. The run stopped;
    /// nothing after the last acknowledged position was committed.
    #[error("{what} panicked: {message}")]
    Panicked {
        /// What panicked.
        what: String,
        /// The panic's message.
        message: String,
    },
}

/// The text of a panic's payload (what `panic!` was given), or a note that it had none.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic whose payload is not text".to_string()
    }
}

/// What a finished run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Records read.
    pub messages_in: u64,
    /// Groups acknowledged by every sink.
    pub groups_out: u64,
    /// Records sent to the dead-letter sink (undecodable ones, and those of rejected groups).
    pub dead_letters: u64,
    /// Groups a sink refused for good ([`SinkError::rejected`](crate::SinkError::rejected)),
    /// whose records went to the dead-letter sink; not counted in `groups_out`.
    pub groups_rejected: u64,
    /// The positions committed last, per partition.
    pub committed: Vec<Position>,
    /// Groups not acknowledged when the shutdown timeout expired (their records were not
    /// committed and will be read again).
    pub unacknowledged_groups: usize,
}

pub use crate::source::Decoder;

/// A configured pipeline: key, policy, sinks and limits. Run it on typed records with
/// [`Pipeline::run_records`] (see the crate's example), or on a byte [`Source`] with
/// [`Pipeline::run`]:
///
/// ```
/// use std::sync::Arc;
/// use confab_pipeline::memory::{MemoryDeadLetters, MemoryLog, MemorySink};
/// use confab_pipeline::{Aggregatable, Pipeline, SourceRecord};
///
/// #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
/// struct Reading {
///     device: u32,
///     ts_ms: u64,
/// }
/// impl Aggregatable for Reading {
///     fn event_time_ms(&self) -> u64 {
///         self.ts_ms
///     }
/// }
///
/// # tokio::runtime::Runtime::new().expect("runtime").block_on(async {
/// // A log of JSON payloads (a Kafka topic, in a service), one of them not a reading.
/// let log = MemoryLog::new(1);
/// for (device, ts_ms) in [(1, 0), (2, 10), (1, 20)] {
///     log.append(b"k", serde_json::to_vec(&Reading { device, ts_ms }).expect("encodes"));
/// }
/// log.append(b"k", b"not json".to_vec());
/// log.close();
/// let decode = |r: &SourceRecord| {
///     serde_json::from_slice::<Reading>(&r.payload).map_err(|e| e.to_string())
/// };
/// let (groups, dead) = (MemorySink::default(), MemoryDeadLetters::default());
/// let report = Pipeline::new(|r: &Reading| r.device, decode, Arc::new(dead.clone()))
///     .sink(Arc::new(groups.clone()))
///     .event_time_only()
///     .run(log.source("doc"), std::future::pending())
///     .await
///     .expect("runs");
/// assert_eq!(groups.groups().len(), 2, "one group per device");
/// assert_eq!(dead.letters()[0].payload, b"not json", "the bad record as read");
/// assert_eq!((report.messages_in, report.dead_letters), (4, 1));
/// assert_eq!(log.committed("doc"), log.end_offsets(), "committed to the end");
/// # });
/// ```
pub struct Pipeline<K, R> {
    key_fn: Arc<dyn Fn(&R) -> K + Send + Sync>,
    decode: Option<Decoder<R>>,
    sinks: Vec<Arc<dyn Sink<K, R>>>,
    dead_letters: Arc<dyn DeadLetterSink>,
    policy: WindowPolicy,
    limits: OperatorLimits,
    config: RuntimeConfig,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    /// Whether the clock moves time while the source is idle (see [`Pipeline::event_time_only`]).
    idle_by_clock: bool,
}

impl<K: GroupKey + Sync, R: Aggregatable + Sync> Pipeline<K, R> {
    /// A pipeline of typed records grouped by `key_fn`, for [`Pipeline::run_records`]: default
    /// policy, limits and runtime settings, no sink yet, and dead letters (the records of groups
    /// a sink rejects) logged as errors and counted, until [`Pipeline::dead_letters`] sends
    /// them elsewhere.
    pub fn typed(key_fn: impl Fn(&R) -> K + Send + Sync + 'static) -> Self {
        Self {
            key_fn: Arc::new(key_fn),
            decode: None,
            sinks: Vec::new(),
            dead_letters: Arc::new(LoggedDeadLetters),
            policy: WindowPolicy::default(),
            limits: OperatorLimits::default(),
            config: RuntimeConfig::default(),
            metrics: Arc::new(Metrics::default()),
            clock: Arc::new(SystemClock),
            idle_by_clock: true,
        }
    }

    /// A pipeline grouping by `key_fn`, decoding with `decode`, writing dead letters to
    /// `dead_letters`, with default policy, limits and runtime settings and no sink yet.
    ///
    /// `decode`'s error is the dead letter's reason, word for word: any error type (such as
    /// [`DecodeError`](crate::DecodeError) or `serde_json::Error`), or a `String`.
    pub fn new<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
        key_fn: impl Fn(&R) -> K + Send + Sync + 'static,
        decode: impl Fn(&SourceRecord) -> Result<R, E> + Send + Sync + 'static,
        dead_letters: Arc<dyn DeadLetterSink>,
    ) -> Self {
        let decode: Decoder<R> =
            Arc::new(move |record| decode(record).map_err(RecordError::decode));
        Self {
            decode: Some(decode),
            dead_letters,
            ..Self::typed(key_fn)
        }
    }

    /// Adds a sink; every group goes to every sink.
    pub fn sink(mut self, sink: Arc<dyn Sink<K, R>>) -> Self {
        self.sinks.push(sink);
        self
    }
    /// Adds a sink that calls `write` with each group, in turn (see [`FnSink`]).
    pub fn sink_fn(
        self,
        name: &str,
        write: impl Fn(&Group<K, R>) -> Result<(), SinkError> + Send + Sync + 'static,
    ) -> Self
    where
        K: Send + Sync,
    {
        self.sink(Arc::new(FnSink::new(name, write)))
    }
    /// Sends dead letters to `dead_letters`.
    pub fn dead_letters(mut self, dead_letters: Arc<dyn DeadLetterSink>) -> Self {
        self.dead_letters = dead_letters;
        self
    }
    /// Lets only event time move time: no clock completes a group while the source is idle, and
    /// record times need not be the clock's (device-relative times, a replay of last year's log).
    /// Groups then complete when a later record of their key, or of their partition, shows their
    /// deadline has passed in event time, or at the end of the input. Meant for finite inputs and
    /// replays; on a live log, a key whose partition goes quiet keeps its group open until traffic
    /// resumes (the wall clock, the default, completes it).
    pub fn event_time_only(mut self) -> Self {
        self.idle_by_clock = false;
        self
    }
    /// Sets the window policy.
    pub fn policy(mut self, policy: WindowPolicy) -> Self {
        self.policy = policy;
        self
    }
    /// Sets the operator's caps on open groups and bytes.
    pub fn limits(mut self, limits: OperatorLimits) -> Self {
        self.limits = limits;
        self
    }
    /// Sets the runtime settings.
    pub fn config(mut self, config: RuntimeConfig) -> Self {
        self.config = config;
        self
    }
    /// Uses `clock` for the idle advance and delay metrics (a [`crate::ManualClock`] in tests).
    ///
    /// Record times are read as this clock's milliseconds (the wall clock's: Unix milliseconds,
    /// by default): while the source is idle, time follows the clock less `lateness_ms`, and
    /// completes the groups whose deadline it passes. Time never runs ahead of the clock, so a
    /// record stamped in the future neither completes other keys' groups early nor is dropped:
    /// its group completes when the clock reaches its deadline, or at shutdown. For times that
    /// are not the clock's, see [`Pipeline::event_time_only`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// Reports into `metrics` (to share them with a `/metrics` endpoint).
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }
    /// The metrics this pipeline reports into.
    pub fn metrics_handle(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Runs on a byte source, decoding each record with the decoder given to [`Pipeline::new`]
    /// (see [`Decoding`]); otherwise as [`Pipeline::run_records`].
    pub async fn run<S: Source>(
        self,
        source: S,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<RunReport, PipelineError> {
        let Some(decode) = self.decode.clone() else {
            return Err(PipelineError::Config(
                "a byte source needs a decoder: build the pipeline with Pipeline::new, or read \
                 typed records with run_records"
                    .into(),
            ));
        };
        let max_bytes = self.config.max_record_bytes;
        self.run_records(Decoding::new(source, decode, max_bytes), shutdown)
            .await
    }

    /// Runs until the source ends or `shutdown` completes, then flushes every open group, waits
    /// for the sinks (up to `shutdown_timeout_ms`) and commits. Fails, having committed nothing
    /// after the last acknowledged position, when the configuration cannot work, the source or a
    /// sink fails for good, or code it runs panics.
    pub async fn run_records<S: RecordSource<R>>(
        self,
        mut source: S,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<RunReport, PipelineError> {
        self.policy.validate()?;
        self.config
            .validate()
            .map_err(|e| PipelineError::Config(e.0))?;
        self.limits
            .validate()
            .map_err(|e| PipelineError::Config(e.0))?;
        if self.sinks.is_empty() {
            return Err(PipelineError::Config(
                "at least one sink is required".into(),
            ));
        }
        let config = self.config.clone();
        let tracker = Arc::new(Mutex::new(CommitTracker::default()));
        let unacked_bytes = Arc::new(AtomicU64::new(0));
        // Few batches ahead of the workers: each is up to `poll_max_records` decoded records
        // (about 2 MB of chat messages), and records read far ahead of the operator are memory
        // held and caches missed, not throughput (16 held about 30 MB in the Kafka example).
        let (feed_tx, feed_rx) = mpsc::channel::<Feed<R>>(FEED_BATCHES);
        let threads = Arc::new(WorkerThreads::default());
        let feed_tx = FeedSender::new(feed_tx, Arc::clone(&threads));
        let (group_tx, group_rx) = mpsc::unbounded_channel();
        let (abandon_tx, abandon_rx) = watch::channel(false);
        let abandon_tx = Arc::new(abandon_tx);
        let (spent_tx, spent_rx) = mpsc::unbounded_channel();

        let generations = Arc::new(Generations::default());
        let shared = Arc::new(WorkerShared {
            generations: Arc::clone(&generations),
            feed: Mutex::new(Some(feed_rx)),
            epoch: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            out: group_tx,
            unacked_bytes: Arc::clone(&unacked_bytes),
            threads,
        });
        let key_fn = Arc::clone(&self.key_fn);
        let options = AggregateOptions {
            limits: self.limits,
            metrics: Some(Arc::clone(&self.metrics)),
            epoch_ms: config.commit_epoch_ms,
        };
        let policy = self.policy;
        let workers = config.workers;
        let workers_task = tokio::task::spawn_blocking(move || {
            run_workers(workers, shared, move |r: &R| key_fn(r), policy, options)
        });

        let counts = Arc::new(Counts::new(Arc::clone(&self.metrics)));
        let dispatcher = Dispatcher {
            counts: Arc::clone(&counts),
            config: config.clone(),
            sinks: self.sinks.clone(),
            dead_letters: Arc::clone(&self.dead_letters),
            tracker: Arc::clone(&tracker),
            metrics: Arc::clone(&self.metrics),
            clock: Arc::clone(&self.clock),
            unacked_bytes: Arc::clone(&unacked_bytes),
            abandon: abandon_rx.clone(),
            stop: Arc::clone(&abandon_tx),
            spent: spent_tx,
        };
        let dispatch_task = tokio::spawn(dispatcher.run(group_rx));

        let sessions = match self.policy.leading_edge_idle_ms {
            0 => None,
            idle => Some(Sessions::new(idle, config.commit_epoch_ms)),
        };
        let mut reader = Reader {
            key_fn: self.key_fn.as_ref(),
            sessions,
            config: &config,
            idle_by_clock: self.idle_by_clock,
            dead_letters: self.dead_letters.as_ref(),
            tracker: &tracker,
            metrics: &self.metrics,
            counts: &counts,
            clock: self.clock.as_ref(),
            unacked_bytes: &unacked_bytes,
            abandon: &abandon_rx,
            feed: feed_tx,
            spent: spent_rx,
            generations: &generations,
            epoch: 0,
            partitions: HashMap::new(),
            last_commit_ms: self.clock.now_ms(),
            last_batch: 0,
        };
        // A sink that cannot go on stops the reading as a shutdown would.
        let mut stopped = abandon_rx.clone();
        let shutdown = async move {
            tokio::select! {
                _ = shutdown => {}
                _ = stopped.wait_for(|stop| *stop) => {}
            }
        };
        let mut read_result = reader.read_until_done(&mut source, shutdown).await;
        // Closing the feed ends the input: the operator flushes every open group, and ends every
        // conversation with it. The flushed groups are dropped where they are written: nothing
        // takes spent groups any more.
        drop(reader.feed);
        drop(reader.spent);
        if let Some(sessions) = reader.sessions.as_mut() {
            match lock(&tracker) {
                Ok(mut tracker) => sessions.end(&mut tracker),
                Err(e) => read_result = read_result.and(Err(e)),
            }
        }

        let timeout = Duration::from_millis(config.shutdown_timeout_ms);
        let workers_done = async {
            let workers = workers_task
                .await
                .map_err(|e| PipelineError::Workers(e.to_string()))
                .and_then(|r| r);
            let unacknowledged = match dispatch_task.await {
                Ok(done) => done,
                Err(e) => Err(PipelineError::Panicked {
                    what: "the sink dispatcher".into(),
                    message: if e.is_panic() {
                        panic_message(e.into_panic().as_ref())
                    } else {
                        e.to_string()
                    },
                }),
            };
            (workers, unacknowledged)
        };
        tokio::pin!(workers_done);
        let (workers, unacknowledged) = tokio::select! {
            done = &mut workers_done => done,
            _ = tokio::time::sleep(timeout) => {
                warn!(timeout_ms = config.shutdown_timeout_ms, "sinks did not acknowledge every group before the shutdown timeout; unacknowledged records will be read again on the next start");
                let _ = abandon_tx.send(true);
                workers_done.await
            }
        };
        workers?;

        // The last commit gets a few tries: a broker that blinks now would cost a replay.
        let committed =
            commit_retrying::<R, _>(&mut source, &tracker, &self.metrics, &config).await;
        // The sinks' failure first: a stopped reading or a dead-letter write cut short is its
        // consequence.
        let unacknowledged = unacknowledged?;
        read_result?;
        let report = RunReport {
            messages_in: counts.messages_in.load(SeqCst),
            groups_out: counts.groups_out.load(SeqCst),
            dead_letters: counts.dead_letters.load(SeqCst),
            groups_rejected: counts.groups_rejected.load(SeqCst),
            committed: committed?,
            unacknowledged_groups: unacknowledged,
        };
        info!(
            messages_in = report.messages_in,
            groups_out = report.groups_out,
            dead_letters = report.dead_letters,
            "pipeline stopped"
        );
        Ok(report)
    }
}

/// The source side of a run: polls, decodes, advances time, commits.
struct Reader<'a, K, R> {
    key_fn: &'a (dyn Fn(&R) -> K + Send + Sync),
    /// The leading edge's conversations (none without a leading edge).
    sessions: Option<Sessions<K>>,
    config: &'a RuntimeConfig,
    idle_by_clock: bool,
    dead_letters: &'a dyn DeadLetterSink,
    tracker: &'a Arc<Mutex<CommitTracker>>,
    metrics: &'a Arc<Metrics>,
    counts: &'a Counts,
    clock: &'a dyn Clock,
    unacked_bytes: &'a AtomicU64,
    abandon: &'a watch::Receiver<bool>,
    feed: FeedSender<R>,
    /// Groups the sinks are done with, dropped on this task's thread (see [`Spent`]).
    spent: mpsc::UnboundedReceiver<Spent<K, R>>,
    generations: &'a Generations,
    /// The input time last sent to the workers.
    epoch: u64,
    /// Per partition: latest event time seen, and when (clock ms) it last delivered a record.
    partitions: HashMap<u32, (u64, u64)>,
    last_commit_ms: u64,
    /// Records the last poll with records handed over.
    last_batch: usize,
}

impl<K: GroupKey, R: Aggregatable> Reader<'_, K, R> {
    async fn read_until_done<S: RecordSource<R>>(
        &mut self,
        source: &mut S,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), PipelineError> {
        tokio::pin!(shutdown);
        let wait = Duration::from_millis(self.config.poll_wait_ms);
        let mut backoff = self.config.backoff();
        loop {
            // Between polls, so they wait no longer than one poll.
            while let Ok(spent) = self.spent.try_recv() {
                drop(spent);
            }
            let unacked = self.unacked_bytes.load(SeqCst);
            self.metrics.in_flight_bytes.store(unacked, SeqCst);
            let open = self.metrics.open_bytes.load(SeqCst);
            if unacked.saturating_sub(open) > self.config.max_unacked_bytes {
                self.metrics.backpressure_pauses.fetch_add(1, SeqCst);
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
                self.maybe_commit(source).await?;
                continue;
            }
            let mut batch = Intake::new(
                self.generations,
                self.config.poll_max_records,
                self.last_batch,
            );
            let mut take = |read| batch.take(read);
            let polled = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                polled = source.poll_each(self.config.poll_max_records, wait, &mut take) => polled,
            };
            match polled {
                Ok(Polled::Records(_)) => {
                    backoff.reset();
                    self.last_batch = batch.good.len() + batch.bad.len();
                    self.accept(batch).await?;
                    self.advance_to_watermark(source).await?;
                }
                Ok(Polled::Idle) if self.idle_by_clock => {
                    let now = self.clock.now_ms();
                    self.advance(now.saturating_sub(self.config.lateness_ms))
                        .await?;
                }
                Ok(Polled::Idle) => {}
                Ok(Polled::Revoked(partitions)) => {
                    // The last commit on these partitions before the next owner starts from it:
                    // worth a few tries, as at shutdown; after them, the next owner replays.
                    if let Err(e) =
                        commit_retrying::<R, _>(source, self.tracker, self.metrics, self.config)
                            .await
                    {
                        match e {
                            PipelineError::Source(ref s) if s.kind == ErrorKind::Retryable => {
                                warn!(error = %s, ?partitions, "commit before giving partitions up failed; their next owner replays from the previous commit");
                            }
                            e => return Err(e),
                        }
                    }
                    lock(self.tracker)?.forget(&partitions);
                    self.generations.revoke(&partitions);
                    if let Some(sessions) = self.sessions.as_mut() {
                        sessions.forget(&partitions);
                    }
                    for p in &partitions {
                        self.partitions.remove(p);
                    }
                }
                Ok(Polled::End) => return Ok(()),
                Err(e) if e.kind == ErrorKind::Retryable => {
                    let delay = backoff.next_delay();
                    warn!(error = %e, attempt = backoff.attempts(), retry_in_ms = delay.as_millis() as u64, "source poll failed; retrying");
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                Err(e) => return Err(PipelineError::Source(e)),
            }
            self.maybe_commit(source).await?;
        }
    }

    /// Takes in what one poll read: dead-letters the bad records, feeds the good ones.
    async fn accept(&mut self, batch: Intake<'_, R>) -> Result<(), PipelineError> {
        let Intake {
            good, bad, seen, ..
        } = batch;
        if good.is_empty() && bad.is_empty() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        self.counts.read((good.len() + bad.len()) as u64);
        {
            let mut tracker = lock(self.tracker)?;
            for position in good
                .iter()
                .map(|e| e.position)
                .chain(bad.iter().map(|l| l.position))
            {
                tracker.read(position);
            }
            self.metrics
                .commit_lag
                .store(tracker.outstanding() as u64, SeqCst);
        }
        for (partition, time) in seen {
            let latest = self.partitions.entry(partition).or_insert((time, now));
            *latest = (latest.0.max(time), now);
        }
        if !bad.is_empty() {
            write_dead_letters(
                self.dead_letters,
                &bad,
                self.config,
                self.counts,
                self.abandon,
            )
            .await
            .map_err(PipelineError::DeadLetters)?;
            let mut tracker = lock(self.tracker)?;
            for letter in &bad {
                tracker.acked(letter.position);
            }
        }
        if let Some(sessions) = self.sessions.as_mut() {
            let mut tracker = lock(self.tracker)?;
            for e in &good {
                // Here the key function runs on the caller's task, not a worker: a panic is
                // caught so that it ends the run with its message, as it does on a worker.
                let key = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    (self.key_fn)(&e.record)
                }))
                .map_err(|payload| PipelineError::Panicked {
                    what: "the key function".into(),
                    message: panic_message(payload.as_ref()),
                })?;
                let at = e.record.event_time_ms();
                sessions.read(key, e.position, at, self.epoch, &mut tracker);
            }
        }
        let fed: u64 = good.iter().map(|e| u64::from(e.bytes)).sum();
        self.unacked_bytes.fetch_add(fed, SeqCst);
        if !good.is_empty() && self.feed.send(Feed::Records(good)).await.is_err() {
            return Err(PipelineError::Workers(
                "the dataflow workers stopped".into(),
            ));
        }
        Ok(())
    }

    /// Moves the input time to the least latest event time of the partitions that may still
    /// deliver earlier records, less the lateness margin. A partition the source reports caught
    /// up does not hold time back; one it reports behind always does; when the source cannot
    /// tell, a partition silent for longer than the margin counts as caught up.
    ///
    /// An assigned partition that is behind and has delivered nothing yet holds time still (see
    /// [`Source::assigned`]).
    async fn advance_to_watermark<S: RecordSource<R>>(
        &mut self,
        source: &S,
    ) -> Result<(), PipelineError> {
        let now = self.clock.now_ms();
        let lateness = self.config.lateness_ms;
        let unread_behind = source.assigned().is_some_and(|assigned| {
            assigned
                .iter()
                .any(|p| !self.partitions.contains_key(p) && source.caught_up(*p) == Some(false))
        });
        if unread_behind {
            return Ok(());
        }
        let active_min = self
            .partitions
            .iter()
            .filter(|(p, (_, seen_at))| match source.caught_up(**p) {
                Some(caught_up) => !caught_up,
                None => now.saturating_sub(*seen_at) <= lateness,
            })
            .map(|(_, (time, _))| *time)
            .min();
        if let Some(min) = active_min {
            let mut time = min.saturating_sub(lateness);
            if self.idle_by_clock {
                // Records stamped ahead of the clock do not take time with them: one device with
                // a fast clock would complete every other key's group early.
                time = time.min(now);
            }
            self.advance(time).await?;
        }
        Ok(())
    }

    /// Moves the input time forward to `time` (never back).
    async fn advance(&mut self, time: u64) -> Result<(), PipelineError> {
        if time > self.epoch {
            self.epoch = time;
            if self.feed.send(Feed::Advance(time)).await.is_err() {
                return Err(PipelineError::Workers(
                    "the dataflow workers stopped".into(),
                ));
            }
            if let Some(sessions) = self.sessions.as_mut() {
                sessions.advance(time, &mut *lock(self.tracker)?);
            }
        }
        Ok(())
    }

    async fn maybe_commit<S: RecordSource<R>>(
        &mut self,
        source: &mut S,
    ) -> Result<(), PipelineError> {
        let now = self.clock.now_ms();
        if now.saturating_sub(self.last_commit_ms) >= self.config.commit_interval_ms {
            self.last_commit_ms = now;
            self.commit_now(source).await?;
        }
        Ok(())
    }

    /// Commits what may be committed. A retryable failure is logged and left to the next commit
    /// (the tracker offers the same positions again); only a fatal one stops the run.
    async fn commit_now<S: RecordSource<R>>(
        &mut self,
        source: &mut S,
    ) -> Result<(), PipelineError> {
        match commit::<R, _>(source, self.tracker, self.metrics, false).await {
            Ok(_) => Ok(()),
            Err(CommitError::Source(e)) if e.kind == ErrorKind::Retryable => {
                warn!(error = %e, "commit failed; retrying at the next commit");
                Ok(())
            }
            Err(CommitError::Runtime(e)) => Err(e),
            Err(CommitError::Source(e)) => Err(PipelineError::Source(e)),
        }
    }
}

/// Commits what may be committed, retrying a retryable failure [`LAST_CHANCE_COMMIT_ATTEMPTS`]
/// times as [`RuntimeConfig::backoff`] says, for the commits that cannot wait for the next
/// interval. Returns every partition's last committed position (for the report).
async fn commit_retrying<R, S: RecordSource<R>>(
    source: &mut S,
    tracker: &Mutex<CommitTracker>,
    metrics: &Metrics,
    config: &RuntimeConfig,
) -> Result<Vec<Position>, PipelineError> {
    let mut backoff = config.backoff();
    loop {
        match commit::<R, _>(source, tracker, metrics, true).await {
            Err(CommitError::Source(e))
                if e.kind == ErrorKind::Retryable
                    && backoff.attempts() + 1 < LAST_CHANCE_COMMIT_ATTEMPTS =>
            {
                let delay = backoff.next_delay();
                warn!(error = %e, attempt = backoff.attempts(), retry_in_ms = delay.as_millis() as u64, "commit failed; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(CommitError::Source(e)) => return Err(PipelineError::Source(e)),
            Err(CommitError::Runtime(e)) => return Err(e),
            Ok(committed) => return Ok(committed),
        }
    }
}

/// Why a commit failed: the source refused it, or the runtime's bookkeeping is unusable.
enum CommitError {
    Source(SourceError),
    Runtime(PipelineError),
}

/// Commits every partition's low watermark that moved; returns the positions committed (all of
/// them when `all` is set, for the final report).
async fn commit<R, S: RecordSource<R>>(
    source: &mut S,
    tracker: &Mutex<CommitTracker>,
    metrics: &Metrics,
    all: bool,
) -> Result<Vec<Position>, CommitError> {
    let (positions, lag) = {
        let t = lock(tracker).map_err(CommitError::Runtime)?;
        (t.committable(), t.outstanding())
    };
    metrics.commit_lag.store(lag as u64, SeqCst);
    if positions.is_empty() {
        return Ok(if all {
            lock(tracker)
                .map_err(CommitError::Runtime)?
                .last_committed()
        } else {
            Vec::new()
        });
    }
    source
        .commit(&positions)
        .await
        .map_err(CommitError::Source)?;
    metrics.commits.fetch_add(1, SeqCst);
    let mut t = lock(tracker).map_err(CommitError::Runtime)?;
    t.committed(&positions);
    Ok(if all { t.last_committed() } else { positions })
}
