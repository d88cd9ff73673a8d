//! The async side of the runtime: completed groups are batched, written to every sink with
//! retries, and, once every sink acknowledged a batch, their source positions become committable.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{error, warn};

use super::tracker::CommitTracker;
use super::workers::Completed;
use super::RuntimeConfig;
use crate::clock::Clock;
use crate::group::Group;
use crate::metrics::Metrics;
use crate::operator::GroupKey;
use crate::record::{Aggregatable, Position};
use crate::sink::{DeadLetter, DeadLetterSink, ErrorKind, Sink, SinkError};

/// What the dispatcher needs.
pub(crate) struct Dispatcher<K, R> {
    pub(crate) config: RuntimeConfig,
    pub(crate) sinks: Vec<Arc<dyn Sink<K, R>>>,
    pub(crate) dead_letters: Arc<dyn DeadLetterSink>,
    pub(crate) tracker: Arc<Mutex<CommitTracker>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) unacked_bytes: Arc<AtomicU64>,
    /// Set when the runtime gives up waiting (shutdown timeout): retries stop.
    pub(crate) abandon: watch::Receiver<bool>,
}

impl<K: GroupKey + Sync, R: Aggregatable + Sync> Dispatcher<K, R> {
    /// Writes every group received until the workers are done. Returns the number of groups that
    /// could not be acknowledged (non-zero only when abandoned).
    pub(crate) async fn run(self, mut groups: mpsc::UnboundedReceiver<Completed<K, R>>) -> usize {
        let this = Arc::new(self);
        let permits = Arc::new(Semaphore::new(this.config.sink_concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let mut unacknowledged = 0;
        let max = this.config.sink_batch_max_groups.max(1);
        while let Some(first) = groups.recv().await {
            let mut batch = vec![first];
            while batch.len() < max {
                match groups.try_recv() {
                    Ok(group) => batch.push(group),
                    Err(_) => break,
                }
            }
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                break;
            };
            let this = Arc::clone(&this);
            tasks.spawn(async move {
                let acked = this.deliver(batch).await;
                drop(permit);
                acked
            });
            while let Some(done) = tasks.try_join_next() {
                unacknowledged += done.unwrap_or(0);
            }
        }
        while let Some(done) = tasks.join_next().await {
            unacknowledged += done.unwrap_or(0);
        }
        unacknowledged
    }

    /// Writes one batch to every sink, then acknowledges its positions. Returns the number of
    /// groups left unacknowledged (when abandoned).
    async fn deliver(&self, batch: Vec<Completed<K, R>>) -> usize {
        let mut positions: Vec<Position> = Vec::new();
        let mut spans = Vec::with_capacity(batch.len());
        let mut bytes = 0u64;
        let mut messages = 0u64;
        let mut last_times = Vec::with_capacity(batch.len());
        let groups: Vec<Group<K, R>> = batch
            .into_iter()
            .map(|g| {
                let start = positions.len();
                positions.extend(g.positions());
                spans.push(start..positions.len());
                bytes += g.bytes as u64;
                messages += g.len() as u64;
                last_times.push(g.last_time_ms);
                g.into_records()
            })
            .collect();
        let writes = self
            .sinks
            .iter()
            .map(|sink| self.write_with_retry(sink.as_ref(), &groups));
        let results = futures::future::join_all(writes).await;
        for (sink, result) in self.sinks.iter().zip(results) {
            match result {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::Fatal => {
                    // The sink refuses these groups for good: keep them in the dead-letter sink
                    // rather than block the log forever or drop them silently.
                    error!(sink = sink.name(), error = %e, groups = groups.len(), "sink rejected groups; sending their records to the dead-letter sink");
                    let letters = self.group_letters(&groups, &positions, sink.name(), &e);
                    if self.dead_letter_with_retry(&letters).await.is_err() {
                        return groups.len();
                    }
                }
                Err(_) => return groups.len(),
            }
        }
        if let Ok(mut tracker) = self.tracker.lock() {
            for span in spans {
                tracker.acked_group(&positions[span]);
            }
        }
        let now = self.clock.now_ms();
        for last in last_times {
            self.metrics.observe_delay_ms(now.saturating_sub(last));
        }
        self.unacked_bytes.fetch_sub(bytes, SeqCst);
        self.metrics
            .groups_out
            .fetch_add(groups.len() as u64, SeqCst);
        self.metrics.messages_out.fetch_add(messages, SeqCst);
        0
    }

    /// Writes to one sink, retrying retryable errors with exponential backoff until it succeeds,
    /// fails for good, or the runtime abandons the wait.
    async fn write_with_retry(
        &self,
        sink: &dyn Sink<K, R>,
        groups: &[Group<K, R>],
    ) -> Result<(), SinkError> {
        let mut backoff = Duration::from_millis(self.config.retry_initial_ms.max(1));
        loop {
            match sink.write(groups).await {
                Ok(()) => return Ok(()),
                Err(e) if e.kind == ErrorKind::Retryable => {
                    self.metrics.sink_retries.fetch_add(1, SeqCst);
                    warn!(sink = sink.name(), error = %e, retry_in_ms = backoff.as_millis() as u64, "sink write failed; retrying");
                    if self.wait_or_abandon(backoff).await {
                        return Err(e);
                    }
                    backoff =
                        (backoff * 2).min(Duration::from_millis(self.config.retry_max_ms.max(1)));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes dead letters, retrying like a sink.
    pub(crate) async fn dead_letter_with_retry(
        &self,
        letters: &[DeadLetter],
    ) -> Result<(), SinkError> {
        write_dead_letters(
            self.dead_letters.as_ref(),
            letters,
            &self.config,
            &self.metrics,
            &self.abandon,
        )
        .await
    }

    fn group_letters(
        &self,
        groups: &[Group<K, R>],
        positions: &[Position],
        sink: &str,
        e: &SinkError,
    ) -> Vec<DeadLetter> {
        let mut positions = positions.iter();
        let mut letters = Vec::new();
        for group in groups {
            for record in &group.records {
                let position = positions.next().copied().unwrap_or(Position {
                    partition: 0,
                    offset: 0,
                });
                letters.push(DeadLetter {
                    position,
                    key: Some(group.key.to_string().into_bytes()),
                    payload: serde_json::to_vec(record).unwrap_or_default(),
                    reason: format!("sink {sink} rejected group {}: {e}", group.id),
                });
            }
        }
        letters
    }

    /// Sleeps for `delay`; returns true if the runtime abandoned the wait meanwhile.
    async fn wait_or_abandon(&self, delay: Duration) -> bool {
        wait_or_abandon(&self.abandon, delay).await
    }
}

/// Writes dead letters with retries; counts them once written.
pub(crate) async fn write_dead_letters(
    sink: &dyn DeadLetterSink,
    letters: &[DeadLetter],
    config: &RuntimeConfig,
    metrics: &Metrics,
    abandon: &watch::Receiver<bool>,
) -> Result<(), SinkError> {
    let mut backoff = Duration::from_millis(config.retry_initial_ms.max(1));
    loop {
        match sink.write(letters).await {
            Ok(()) => {
                metrics.dead_letters.fetch_add(letters.len() as u64, SeqCst);
                return Ok(());
            }
            Err(e) => {
                metrics.sink_retries.fetch_add(1, SeqCst);
                warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "dead-letter write failed; retrying");
                if wait_or_abandon(abandon, backoff).await {
                    return Err(e);
                }
                backoff = (backoff * 2).min(Duration::from_millis(config.retry_max_ms.max(1)));
            }
        }
    }
}

async fn wait_or_abandon(abandon: &watch::Receiver<bool>, delay: Duration) -> bool {
    let mut abandon = abandon.clone();
    if *abandon.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = abandon.wait_for(|gone| *gone) => return true,
    }
    let gone = *abandon.borrow();
    gone
}
