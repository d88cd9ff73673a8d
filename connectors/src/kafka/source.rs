//! The Kafka source: one topic, read by a consumer group, committed only by the pipeline.
//!
//! A dedicated thread polls librdkafka (so the group protocol is served even while the pipeline
//! is busy) and queues records and rebalance events in order. [`Source::poll`] hands them out.
//!
//! Guarantees and their limits:
//! - **Commit-after-ack only.** `enable.auto.commit` and `enable.auto.offset.store` are off; the
//!   only commits are the pipeline's [`Source::commit`] calls, synchronous, for partitions this
//!   consumer still owns (a late commit for a partition now owned by another consumer could move
//!   that consumer's position back, so it is skipped).
//! - **Revocation before giving up.** On a revocation the polling thread queues
//!   [`Polled::Revoked`] behind the records already read and *waits* (up to `revoke_timeout_ms`)
//!   until the pipeline has taken it, and with it committed what it acknowledged on those
//!   partitions, before the partitions are released. The next owner then starts exactly at the
//!   clean cut the pipeline committed, which never lies inside an open or acknowledged group, so
//!   it rebuilds the same groups with the same ids. If the pipeline does not poll in time (it is
//!   paused by backpressure), the revoked partitions' unread records are dropped from the queue
//!   and the next owner reads them from the last commit: replayed, not lost.
//! - **Idle means caught up.** [`Polled::Idle`] is returned only when every assigned partition has
//!   been read to its end (librdkafka's partition-EOF events), so the pipeline lets the wall clock
//!   close groups only when the log really is quiet, never merely because a fetch was slow.
//! - **Backpressure without leaving the group or refetching.** Past `max_buffered_records` queued
//!   records the thread stops taking records from librdkafka, whose own prefetch queue is bounded
//!   (`queued.min.messages`, `queued.max.messages.kbytes`: by `max_buffered_records`, at most
//!   16 MiB, unless set in `properties`) and stops fetching when full. It still polls once per
//!   [`FULL_POLL_INTERVAL`] so that rebalances are served (each such poll may add a record past
//!   the limit). Partitions are never paused: a pause makes librdkafka drop what it prefetched
//!   and fetch it again on resume, which stalled replays by a fetch round trip each time
//!   (measured with connectors/examples/kafka_throughput.rs). librdkafka refills a drained
//!   prefetch queue after `fetch.queue.backoff.ms`, set to 10 ms here (its 1 s default stalled
//!   replays for most of a second each time the queue had been full).
//! - **Transient commit failures do not stop the pipeline.** A commit refused for a retryable
//!   reason (a rebalance in progress, the coordinator moving) is returned as retryable, and the
//!   runtime, the one layer that retries, tries again: at its next commit for a periodic one,
//!   a few times with backoff for the commit before a revocation or at shutdown.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use confab_pipeline::{Polled, Position, Source, SourceError, SourceRecord};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{debug, error, info, warn};

use super::config::{KafkaSourceConfig, StartPosition};
use super::{client_config, is_retryable, log_client_error, log_librdkafka, unreachable_message};

/// How long one librdkafka poll blocks; bounds how fast the thread notices a stop.
const POLL_SLICE: Duration = Duration::from_millis(100);
/// librdkafka's bounds on what it prefetches ahead of the polling thread: messages per
/// partition, and KiB. Unless set in `properties`, they follow `max_buffered_records` (half a KiB
/// per record, at most 16 MiB, about 45,000 chat messages).
const PREFETCH_MESSAGES: &str = "queued.min.messages";
const PREFETCH_KBYTES: &str = "queued.max.messages.kbytes";
const MAX_PREFETCH_KBYTES: usize = 16 * 1024;
/// How long librdkafka waits before fetching again for a partition whose prefetch queue was full.
/// Its default, 1 s, stalled a backlog replay for most of a second each time the pipeline drained
/// a full queue (measured with connectors/examples/kafka_throughput.rs); 10 ms keeps the queue fed
/// for a few idle fetch decisions more.
const FETCH_QUEUE_BACKOFF: &str = "fetch.queue.backoff.ms";
const FETCH_QUEUE_BACKOFF_MS: &str = "10";
/// How long the broker holds a fetch that found nothing new. A partition's end (and so
/// [`Polled::Idle`], which lets the clock close idle groups) is only known when such a fetch
/// returns: librdkafka's default, 500 ms, delayed every idle group by up to half a second and
/// the end of a replay by as much. 50 ms costs an idle consumer 20 small requests a second.
const FETCH_WAIT: &str = "fetch.wait.max.ms";
const FETCH_WAIT_MS: &str = "50";
/// While the queue is full, how often the thread still polls librdkafka (for rebalances).
const FULL_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Most records the polling thread queues at once (under one lock, with one wake-up).
const POLL_BATCH: usize = 512;

/// A Kafka consumer-group member reading one topic. See the module docs for its guarantees.
pub struct KafkaSource {
    consumer: Option<Arc<BaseConsumer<SourceContext>>>,
    shared: Arc<Shared>,
    topic: String,
    group_id: String,
    exit_at_end: bool,
    poller: Option<JoinHandle<()>>,
    /// The ticket of the revocation the last poll returned, acknowledged by the next call.
    revocation_to_ack: Option<u64>,
}

/// What the polling thread hands to the source, in log order.
enum Event {
    /// The records of one polling round, as one allocation.
    Records(Vec<SourceRecord>),
    Revoked {
        partitions: Vec<u32>,
        ticket: u64,
    },
}

/// State shared by the source, the polling thread and the rebalance callbacks.
struct Shared {
    state: Mutex<State>,
    /// Wakes the source when an event arrives.
    arrived: tokio::sync::Notify,
    /// Wakes a waiting revocation when the source has taken it.
    taken: Condvar,
    /// Wakes the polling thread when the source has taken records (room in the queue).
    room: Condvar,
    stop: AtomicBool,
}

thread_local! {
    /// What the polling thread has read but not queued yet (see [`poll_loop`]): records, and the
    /// partitions whose end it saw. Only that thread touches it, in its loop and in the rebalance
    /// callbacks, which librdkafka runs inside its polls; so a callback can queue the batch
    /// before its own event without a lock taken per record.
    static STAGED: std::cell::RefCell<Staged> = std::cell::RefCell::new(Staged::default());
}

/// Records read in one polling round and partition ends seen, in order (see [`STAGED`]).
#[derive(Default)]
struct Staged {
    records: Vec<SourceRecord>,
    /// Each end seen, with the number of records staged before it (so that a record read after
    /// a partition's end marks it as not at its end again).
    ends: Vec<(usize, u32)>,
}

#[derive(Default)]
struct State {
    events: VecDeque<Event>,
    /// Records in `events`.
    buffered: usize,
    /// Records in `events`, per partition.
    queued: BTreeMap<u32, usize>,
    assigned: BTreeSet<u32>,
    /// Assigned partitions read to their end (EOF seen, no record since).
    at_end: BTreeSet<u32>,
    /// Revocations queued so far; each carries its number as a ticket.
    revocations: u64,
    /// The highest ticket the source has taken.
    taken: u64,
    /// A consumer error that retrying cannot fix, reported by the next poll.
    fatal: Option<String>,
}

impl State {
    /// Queues the records of one round as one event; `ends` are the partition ends seen among
    /// them, each after the number of records read before it.
    fn queue(&mut self, records: Vec<SourceRecord>, ends: &[(usize, u32)]) {
        // Per partition in this batch (a few): the count, and the index of its last record.
        let mut counts: Vec<(u32, usize, usize)> = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let partition = record.position.partition;
            match counts.iter_mut().find(|(p, _, _)| *p == partition) {
                Some((_, n, last)) => {
                    *n += 1;
                    *last = i;
                }
                None => counts.push((partition, 1, i)),
            }
        }
        for &(partition, n, last) in &counts {
            *self.queued.entry(partition).or_default() += n;
            // A record after the end seen last (if any) means the partition is not at its end.
            let ended_after = ends
                .iter()
                .rev()
                .find(|(_, p)| *p == partition)
                .is_some_and(|(before, _)| *before > last);
            if !ended_after {
                self.at_end.remove(&partition);
            }
        }
        for &(before, partition) in ends {
            let later = counts
                .iter()
                .any(|&(p, _, last)| p == partition && last >= before);
            if !later && self.assigned.contains(&partition) {
                self.at_end.insert(partition);
            }
        }
        self.buffered += records.len();
        if !records.is_empty() {
            self.events.push_back(Event::Records(records));
        }
    }

    /// Counts `n` records of `partition` as gone from `events`.
    fn unqueue(&mut self, partition: u32, n: usize) {
        self.buffered -= n;
        if let Some(count) = self.queued.get_mut(&partition) {
            *count -= n;
            if *count == 0 {
                self.queued.remove(&partition);
            }
        }
    }

    fn caught_up(&self) -> bool {
        !self.assigned.is_empty() && self.assigned.iter().all(|p| self.at_end.contains(p))
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues what this thread staged, in order, as one event under one lock, and wakes the
    /// source once.
    fn queue_staged(&self) {
        let (records, ends) = STAGED.with(|staged| {
            let mut staged = staged.borrow_mut();
            let records = std::mem::take(&mut staged.records);
            let ends = std::mem::take(&mut staged.ends);
            (records, ends)
        });
        if records.is_empty() && ends.is_empty() {
            return;
        }
        self.lock().queue(records, &ends);
        self.arrived.notify_one();
    }
}

impl KafkaSource {
    /// Joins the consumer group of `config` and subscribes to its topic. Fails, naming the fix,
    /// when the brokers cannot be reached or a setting is refused.
    pub async fn connect(config: &KafkaSourceConfig) -> Result<Self, SourceError> {
        let session_timeout = config.session_timeout_ms.to_string();
        let owned = [
            ("group.id", config.group_id.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
            ("auto.offset.reset", config.start.as_reset()),
            ("session.timeout.ms", session_timeout.as_str()),
            (
                "partition.assignment.strategy",
                config.assignment_strategy.as_str(),
            ),
        ];
        let mut client = client_config(&config.brokers, &owned, &config.properties)
            .map_err(SourceError::fatal)?;
        // The source does not pause partitions, so librdkafka's prefetch is part of the
        // read-ahead: bound it by the same limit (librdkafka's defaults, 100,000 messages and
        // 64 MiB, would dwarf a small max_buffered_records).
        let max_buffered = config.max_buffered_records.max(1);
        if !config.properties.contains_key(PREFETCH_MESSAGES) {
            client.set(PREFETCH_MESSAGES, max_buffered.min(100_000).to_string());
        }
        if !config.properties.contains_key(PREFETCH_KBYTES) {
            let kbytes = (max_buffered / 2).clamp(512, MAX_PREFETCH_KBYTES);
            client.set(PREFETCH_KBYTES, kbytes.to_string());
        }
        for (name, value) in [
            (FETCH_QUEUE_BACKOFF, FETCH_QUEUE_BACKOFF_MS),
            (FETCH_WAIT, FETCH_WAIT_MS),
        ] {
            if !config.properties.contains_key(name) {
                client.set(name, value);
            }
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            arrived: tokio::sync::Notify::new(),
            taken: Condvar::new(),
            room: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let context = SourceContext {
            shared: Arc::clone(&shared),
            topic: config.topic.clone(),
            start: config.start,
            reset_committed: config.reset_committed,
            started: Mutex::new(HashSet::new()),
            revoke_timeout: Duration::from_millis(config.revoke_timeout_ms),
        };
        let consumer: BaseConsumer<SourceContext> = client
            .create_with_context(context)
            .map_err(|e| SourceError::fatal(format!("invalid Kafka consumer settings: {e}")))?;
        let consumer = Arc::new(consumer);

        let probe = Arc::clone(&consumer);
        let topic = config.topic.clone();
        let metadata = tokio::task::spawn_blocking(move || {
            probe.fetch_metadata(Some(&topic), Duration::from_secs(10))
        })
        .await
        .map_err(|e| SourceError::fatal(format!("Kafka metadata probe panicked: {e}")))?
        .map_err(|e| SourceError::fatal(unreachable_message(&config.brokers, &e)))?;
        if let Some(err) = metadata.topics().first().and_then(|t| t.error()) {
            warn!(topic = %config.topic, error = ?err, "Kafka topic is not available yet; the consumer waits for it");
        }

        consumer.subscribe(&[&config.topic]).map_err(|e| {
            SourceError::fatal(format!("cannot subscribe to {}: {e}", config.topic))
        })?;
        let poller = {
            let consumer = Arc::clone(&consumer);
            let shared = Arc::clone(&shared);
            let max_buffered = config.max_buffered_records.max(1);
            let headers = config.headers;
            std::thread::Builder::new()
                .name("kafka-source".into())
                .spawn(move || poll_loop(consumer, shared, max_buffered, headers))
                .map_err(|e| {
                    SourceError::fatal(format!("cannot start the Kafka polling thread: {e}"))
                })?
        };
        info!(topic = %config.topic, group = %config.group_id, brokers = %config.brokers, "Kafka source subscribed");
        Ok(Self {
            consumer: Some(consumer),
            shared,
            topic: config.topic.clone(),
            group_id: config.group_id.clone(),
            exit_at_end: config.exit_at_end,
            poller: Some(poller),
            revocation_to_ack: None,
        })
    }

    /// The partitions this consumer owns now.
    pub fn assignment(&self) -> Vec<u32> {
        self.shared.lock().assigned.iter().copied().collect()
    }

    /// Leaves the consumer group and waits until the consumer is closed, so that the remaining
    /// members are rebalanced at once rather than after the session timeout. Dropping the source
    /// also leaves the group, without waiting.
    pub async fn close(mut self) {
        self.stop();
        if let Some(poller) = self.poller.take() {
            let _ = tokio::task::spawn_blocking(move || poller.join()).await;
        }
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Taking the lock orders the notification after any waiter's check of `stop`.
        drop(self.shared.lock());
        self.shared.taken.notify_all();
        self.shared.room.notify_all();
        // The polling thread holds the other handle and closes the consumer as it exits.
        self.consumer = None;
    }

    /// Tells a waiting revocation that the pipeline has taken it (and committed what it may).
    fn acknowledge_revocation(&mut self) {
        if let Some(ticket) = self.revocation_to_ack.take() {
            let mut state = self.shared.lock();
            state.taken = state.taken.max(ticket);
            drop(state);
            self.shared.taken.notify_all();
        }
    }

    /// The next events, if any: a revocation alone, or up to `max` records.
    fn take(&mut self, max: usize) -> Result<Option<Polled>, SourceError> {
        let mut state = self.shared.lock();
        if let Some(message) = &state.fatal {
            return Err(SourceError::fatal(message.clone()));
        }
        if let Some(Event::Revoked { .. }) = state.events.front() {
            if let Some(Event::Revoked { partitions, ticket }) = state.events.pop_front() {
                self.revocation_to_ack = Some(ticket);
                return Ok(Some(Polled::Revoked(partitions)));
            }
        }
        // Whole batches, moved rather than copied record by record; the last one split if it
        // would pass `max`.
        let mut records: Vec<SourceRecord> = Vec::new();
        while records.len() < max {
            let Some(Event::Records(batch)) = state.events.front_mut() else {
                break;
            };
            let room = max - records.len();
            let taken = if batch.len() <= room {
                match state.events.pop_front() {
                    Some(Event::Records(batch)) => batch,
                    _ => break,
                }
            } else {
                let rest = batch.split_off(room);
                std::mem::replace(batch, rest)
            };
            let mut counts: Vec<(u32, usize)> = Vec::new();
            for record in &taken {
                let partition = record.position.partition;
                match counts.iter_mut().find(|(p, _)| *p == partition) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((partition, 1)),
                }
            }
            for (partition, n) in counts {
                state.unqueue(partition, n);
            }
            if records.is_empty() {
                records = taken;
            } else {
                records.extend(taken);
            }
        }
        if !records.is_empty() {
            drop(state);
            self.shared.room.notify_one();
            return Ok(Some(Polled::Records(records)));
        }
        if self.exit_at_end && state.caught_up() {
            return Ok(Some(Polled::End));
        }
        Ok(None)
    }

    /// Commits `offsets` (partition -> next offset) once, synchronously. A retryable failure is
    /// returned as such: the runtime owns retrying.
    async fn commit_offsets(&mut self, offsets: BTreeMap<u32, u64>) -> Result<(), SourceError> {
        let Some(consumer) = self.consumer.as_ref().map(Arc::clone) else {
            return Ok(());
        };
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (&partition, &offset) in &offsets {
            tpl.add_partition_offset(&self.topic, partition as i32, Offset::Offset(offset as i64))
                .map_err(|e| SourceError::fatal(format!("invalid offset {offset}: {e}")))?;
        }
        let result = tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| SourceError::fatal(format!("Kafka commit panicked: {e}")))?;
        match result {
            Ok(()) => {
                debug!(topic = %self.topic, ?offsets, "Kafka offsets committed");
                Ok(())
            }
            Err(e) if is_retryable(&e) => Err(SourceError::retryable(format!(
                "cannot commit offsets {offsets:?} of {} for group {} now: {e}",
                self.topic, self.group_id
            ))),
            Err(e) => Err(SourceError::fatal(format!(
                "cannot commit offsets of {} for group {}: {e}{}",
                self.topic,
                self.group_id,
                fatal_hint(&e)
            ))),
        }
    }
}

#[async_trait]
impl Source for KafkaSource {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Polled, SourceError> {
        self.acknowledge_revocation();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let shared = Arc::clone(&self.shared);
            let arrived = shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(polled) = self.take(max.max(1))? {
                return Ok(polled);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                // Lagging partitions yield an empty batch, so the runtime keeps event time.
                return Ok(if self.shared.lock().caught_up() {
                    Polled::Idle
                } else {
                    Polled::Records(Vec::new())
                });
            }
        }
    }

    /// Caught up when the partition's end was seen and none of its records wait in the queue;
    /// `None` for a partition not assigned here.
    fn caught_up(&self, partition: u32) -> Option<bool> {
        let state = self.shared.lock();
        if !state.assigned.contains(&partition) {
            return None;
        }
        let queued = state.queued.contains_key(&partition);
        Some(state.at_end.contains(&partition) && !queued)
    }

    fn assigned(&self) -> Option<Vec<u32>> {
        Some(self.shared.lock().assigned.iter().copied().collect())
    }

    async fn commit(&mut self, next: &[Position]) -> Result<(), SourceError> {
        let mut offsets = BTreeMap::new();
        {
            let state = self.shared.lock();
            for position in next {
                if state.assigned.contains(&position.partition) {
                    offsets.insert(position.partition, position.offset);
                } else {
                    debug!(topic = %self.topic, %position, "skipping the commit of a partition this consumer no longer owns");
                }
            }
        }
        self.commit_offsets(offsets).await
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The polling thread: reads records and events until told to stop, then closes the consumer
/// (leaving the group) by dropping the last handle.
///
/// Each round blocks in one librdkafka poll, then takes whatever librdkafka already holds (up to
/// [`POLL_BATCH`], and no more than the queue has room for) without waiting, and queues it all
/// under one lock with one wake-up, as one event the source takes whole: per record, the lock
/// the source also takes and a notification cost more than the record's copy. What is read is
/// staged in [`STAGED`] until then, so that a rebalance callback running inside a later poll of
/// the round queues it before its own event: a revoked partition's records always come before
/// its revocation.
fn poll_loop(
    consumer: Arc<BaseConsumer<SourceContext>>,
    shared: Arc<Shared>,
    max_buffered: usize,
    headers: bool,
) {
    while !shared.stop.load(Ordering::SeqCst) {
        let room = {
            // Full: leave records in librdkafka's bounded prefetch until the source takes some,
            // but come back to poll now and then for rebalances.
            let mut state = shared.lock();
            if state.buffered >= max_buffered {
                state = shared
                    .room
                    .wait_timeout_while(state, FULL_POLL_INTERVAL, |s| {
                        s.buffered >= max_buffered && !shared.stop.load(Ordering::SeqCst)
                    })
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            max_buffered
                .saturating_sub(state.buffered)
                .clamp(1, POLL_BATCH)
        };
        let mut wait = POLL_SLICE;
        let mut failure = None;
        for _ in 0..room {
            // A rebalance callback may run inside this poll; it queues what is staged first.
            match consumer.poll(wait) {
                None => break,
                Some(Ok(message)) => {
                    let record = to_record(&message, headers);
                    STAGED.with(|staged| {
                        let mut staged = staged.borrow_mut();
                        if staged.records.capacity() == 0 {
                            staged.records.reserve(room);
                        }
                        staged.records.push(record);
                    });
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => STAGED.with(|staged| {
                    let mut staged = staged.borrow_mut();
                    let before = staged.records.len();
                    staged.ends.push((before, partition as u32));
                }),
                Some(Err(e)) => {
                    failure = Some(e);
                    break;
                }
            }
            wait = Duration::ZERO;
        }
        shared.queue_staged();
        match failure {
            None => {}
            Some(e) if is_fatal_consumer_error(&e) => {
                error!(error = %e, "Kafka consumer failed");
                shared.lock().fatal = Some(format!("Kafka consumer failed: {e}{}", fatal_hint(&e)));
                shared.arrived.notify_one();
            }
            Some(e) if is_retryable(&e) => {
                debug!(error = %e, "Kafka consumer error; librdkafka retries")
            }
            Some(e) => warn!(error = %e, "Kafka consumer error"),
        }
    }
    debug!("Kafka polling thread stopping; closing the consumer");
}

/// `message` as a record, with its headers if `headers` is set.
fn to_record(message: &BorrowedMessage<'_>, headers: bool) -> SourceRecord {
    let headers = match headers.then(|| message.headers()).flatten() {
        Some(headers) => headers
            .iter()
            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
            .collect(),
        None => Vec::new(),
    };
    SourceRecord {
        position: Position {
            partition: message.partition() as u32,
            offset: message.offset() as u64,
        },
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().unwrap_or_default().to_vec(),
        headers,
    }
}

/// What to do about a fatal consumer error, where there is something to say.
fn fatal_hint(error: &KafkaError) -> &'static str {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::FencedInstanceId) => {
            " (static membership: another consumer joined with this group.instance.id, or this \
             one's session expired while the broker was away and librdkafka cannot rejoin with it; \
             restart the aggregator, which resumes from the last commit, and check that every \
             process has its own group.instance.id)"
        }
        _ => "",
    }
}

/// Consumer errors that will not go away by waiting: a fatal client state or a denied access.
fn is_fatal_consumer_error(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(error, KafkaError::MessageConsumptionFatal(_))
        || matches!(
            error.rdkafka_error_code(),
            Some(
                C::TopicAuthorizationFailed
                    | C::GroupAuthorizationFailed
                    | C::ClusterAuthorizationFailed
                    | C::SaslAuthenticationFailed
                    | C::Authentication
                    | C::Fatal
            )
        )
}

/// The consumer's callbacks: logs to `tracing`, and the rebalance handshake with the source.
struct SourceContext {
    shared: Arc<Shared>,
    topic: String,
    start: StartPosition,
    reset_committed: bool,
    /// Partitions already started once (for `reset_committed`).
    started: Mutex<HashSet<i32>>,
    revoke_timeout: Duration,
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_librdkafka(level, facility, message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&error, reason);
    }
}

impl ConsumerContext for SourceContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        // Records read before this rebalance go ahead of it (see `poll_loop`).
        self.shared.queue_staged();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, tpl),
            other => {
                // librdkafka asks for everything to be given up after a rebalance error.
                error!(error = ?other, "Kafka rebalance failed; giving up every partition");
                let all: Vec<u32> = self.shared.lock().assigned.iter().copied().collect();
                self.release(&all, false);
                if let Err(e) = consumer.unassign() {
                    warn!(error = %e, "cannot unassign Kafka partitions");
                }
            }
        }
    }
}

impl SourceContext {
    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect()
    }

    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let partitions = self.partitions(tpl);
        if self.reset_committed {
            let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
            let offset = match self.start {
                StartPosition::Earliest => Offset::Beginning,
                StartPosition::Latest => Offset::End,
            };
            for &p in &partitions {
                if started.insert(p) {
                    if let Err(e) = tpl.set_partition_offset(&self.topic, p, offset) {
                        warn!(partition = p, error = %e, "cannot reset the start offset");
                    }
                }
            }
        }
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
            _ => consumer.assign(tpl),
        };
        if let Err(e) = result {
            error!(topic = %self.topic, error = %e, "cannot take the Kafka partitions assigned");
            return;
        }
        let mut state = self.shared.lock();
        for &p in &partitions {
            state.assigned.insert(p as u32);
            state.at_end.remove(&(p as u32));
        }
        drop(state);
        info!(topic = %self.topic, partitions = ?partitions, "Kafka partitions assigned");
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let partitions: Vec<u32> = self.partitions(tpl).into_iter().map(|p| p as u32).collect();
        // A lost assignment is already someone else's: a commit would be refused, so don't wait.
        let wait = !consumer.assignment_lost() && !self.shared.stop.load(Ordering::SeqCst);
        self.release(&partitions, wait);
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(e) = result {
            warn!(topic = %self.topic, error = %e, "cannot release revoked Kafka partitions");
        }
        info!(topic = %self.topic, partitions = ?partitions, "Kafka partitions revoked");
    }

    /// Queues the revocation of `partitions` and, if `wait`, blocks until the source has taken
    /// it (or the timeout passes); then forgets them.
    fn release(&self, partitions: &[u32], wait: bool) {
        let mut state = self.shared.lock();
        state.revocations += 1;
        let ticket = state.revocations;
        state.events.push_back(Event::Revoked {
            partitions: partitions.to_vec(),
            ticket,
        });
        self.shared.arrived.notify_one();
        if wait {
            let deadline = Instant::now() + self.revoke_timeout;
            while state.taken < ticket && !self.shared.stop.load(Ordering::SeqCst) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                state = self
                    .shared
                    .taken
                    .wait_timeout(state, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        if state.taken < ticket {
            // Not taken in time: the next owner reads these records from the last commit.
            let mut dropped = 0;
            for event in state.events.iter_mut() {
                if let Event::Records(records) = event {
                    let before = records.len();
                    records.retain(|r| !partitions.contains(&r.position.partition));
                    dropped += before - records.len();
                }
            }
            state
                .events
                .retain(|event| !matches!(event, Event::Records(records) if records.is_empty()));
            for p in partitions {
                if let Some(n) = state.queued.get(p).copied() {
                    state.unqueue(*p, n);
                }
            }
            if wait {
                warn!(topic = %self.topic, ?partitions, dropped, timeout_ms = self.revoke_timeout.as_millis() as u64, "the pipeline did not take a revocation in time; the next owner replays from the last commit");
            }
        }
        for p in partitions {
            state.assigned.remove(p);
            state.at_end.remove(p);
        }
    }
}
