//! The async side of the runtime: completed groups are batched, written to every sink with
//! retries, and, once every sink acknowledged a batch, their source positions become committable.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::{JoinError, JoinSet};
use tracing::{error, warn};

use super::tracker::CommitTracker;
use super::workers::{Completed, Completions};
use super::{Counts, PipelineError, RuntimeConfig};
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
    /// This run's counts for its report (and, through them, the shared metrics).
    pub(crate) counts: Arc<Counts>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) unacked_bytes: Arc<AtomicU64>,
    /// Set when the runtime gives up waiting (shutdown timeout): retries stop.
    pub(crate) abandon: watch::Receiver<bool>,
    /// Set by the dispatcher when a sink cannot go on: the reading stops and retries end.
    pub(crate) stop: Arc<watch::Sender<bool>>,
    /// Where written groups go to be dropped: the reader, whose thread allocated their records.
    /// Closed once the reading ends; groups are then dropped here.
    pub(crate) spent: mpsc::UnboundedSender<Spent<K, R>>,
}

/// Groups written and acknowledged, on their way back to the reader to be dropped there.
///
/// The reader decodes each record into its own allocation, and a sink task used to free it on
/// another thread: mimalloc takes such a free on a list of the allocating thread's that that
/// thread collects later, and meanwhile the thread's pages look full, so it faults in fresh ones
/// (cross-thread frees and page faults were about a fifth of the aggregator's CPU). Freed on the
/// thread that allocated them, records' blocks are reused as they are freed.
pub(crate) type Spent<K, R> = Vec<Group<K, R>>;

/// The error that stops a run when `sink` failed fatally.
fn fatal(sink: &str, e: SinkError) -> PipelineError {
    PipelineError::Sink {
        sink: sink.to_string(),
        source: e,
    }
}

impl<K: GroupKey + Sync, R: Aggregatable + Sync> Dispatcher<K, R> {
    /// Writes every group received until the workers are done. Returns the number of groups that
    /// could not be acknowledged (non-zero only when abandoned), or why the sinks cannot go on: a
    /// sink failed fatally, or a sink task panicked. Either stops the reading (through the
    /// `stop` signal) and leaves the failed groups unacknowledged, so nothing after them is
    /// committed.
    pub(crate) async fn run(
        self,
        mut groups: mpsc::UnboundedReceiver<Completions<K, R>>,
    ) -> Result<usize, PipelineError> {
        let this = Arc::new(self);
        let permits = Arc::new(Semaphore::new(this.config.sink_concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let mut unacknowledged = 0;
        let mut failure: Option<PipelineError> = None;
        let max = this.config.sink_batch_max_groups.max(1);
        // Groups received and not yet in a sink batch, in the order the workers completed them.
        let mut pending: Vec<Completed<K, R>> = Vec::new();
        loop {
            if pending.is_empty() {
                match groups.recv().await {
                    Some(completed) => pending = completed,
                    None => break,
                }
            }
            while pending.len() < max {
                match groups.try_recv() {
                    Ok(mut completed) => pending.append(&mut completed),
                    Err(_) => break,
                }
            }
            if failure.is_some() {
                // The run is stopping: what the workers flush now is not written, and its
                // records stay uncommitted.
                unacknowledged += pending.len();
                let bytes: u64 = pending.iter().map(|g| g.bytes as u64).sum();
                this.unacked_bytes.fetch_sub(bytes, SeqCst);
                pending.clear();
                continue;
            }
            // A batch the size of what arrived goes as it is (no copy); a larger one is cut.
            let batch = if pending.len() <= max {
                std::mem::take(&mut pending)
            } else {
                pending.drain(..max).collect()
            };
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                break;
            };
            let that = Arc::clone(&this);
            tasks.spawn(async move {
                let acked = that.deliver(batch).await;
                drop(permit);
                acked
            });
            while let Some(done) = tasks.try_join_next() {
                this.settle(done, &mut unacknowledged, &mut failure);
            }
        }
        while let Some(done) = tasks.join_next().await {
            this.settle(done, &mut unacknowledged, &mut failure);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(unacknowledged),
        }
    }

    /// Takes in the outcome of one delivery task. The first failure is kept and stops the run;
    /// a panicking task is a failure with its message, never "nothing left unacknowledged".
    fn settle(
        &self,
        done: Result<Result<usize, PipelineError>, JoinError>,
        unacknowledged: &mut usize,
        failure: &mut Option<PipelineError>,
    ) {
        let e = match done {
            Ok(Ok(left)) => {
                *unacknowledged += left;
                return;
            }
            Ok(Err(e)) => e,
            Err(e) if e.is_panic() => PipelineError::Panicked {
                what: "a sink task".into(),
                message: super::panic_message(e.into_panic().as_ref()),
            },
            Err(e) => PipelineError::Panicked {
                what: "a sink task".into(),
                message: e.to_string(),
            },
        };
        error!(error = %e, "stopping the pipeline: nothing after the failed groups is committed");
        let _ = self.stop.send(true);
        failure.get_or_insert(e);
    }

    /// Writes one batch to every sink, then acknowledges its positions. Returns the number of
    /// groups left unacknowledged (when abandoned), or the failure that stops the run.
    async fn deliver(&self, batch: Vec<Completed<K, R>>) -> Result<usize, PipelineError> {
        let mut positions: Vec<Position> = Vec::new();
        // The bytes kept for dead letters, by index in `positions`: only records that do not
        // hold their bytes themselves have any (none of a chat message read from JSON).
        let mut payloads: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut spans = Vec::with_capacity(batch.len());
        let mut bytes = 0u64;
        let mut last_times = Vec::with_capacity(batch.len());
        let groups: Vec<Group<K, R>> = batch
            .into_iter()
            .map(|mut g| {
                let start = positions.len();
                positions.extend(g.positions());
                for (i, e) in g.records.iter_mut().enumerate() {
                    if !e.payload.is_empty() {
                        payloads.push((start + i, std::mem::take(&mut e.payload)));
                    }
                }
                spans.push(start..positions.len());
                bytes += g.bytes as u64;
                last_times.push(g.last_time_ms);
                g.into_records()
            })
            .collect();
        let writes = self
            .sinks
            .iter()
            .map(|sink| self.write_with_retry(sink.as_ref(), &groups));
        let results = futures::future::join_all(writes).await;
        let mut rejected: Vec<Option<String>> = vec![None; groups.len()];
        for (sink, result) in self.sinks.iter().zip(results) {
            let e = match result {
                Ok(()) => continue,
                Err(e) => e,
            };
            match e.kind {
                ErrorKind::Rejected => match self.find_rejected(sink.as_ref(), &groups, e).await {
                    Ok(refused) => {
                        for (i, e) in refused {
                            rejected[i].get_or_insert_with(|| {
                                format!("sink {} rejected group {}: {e}", sink.name(), groups[i].id)
                            });
                        }
                    }
                    Err(e) if e.kind == ErrorKind::Fatal => return Err(fatal(sink.name(), e)),
                    Err(_) => return Ok(groups.len()),
                },
                ErrorKind::Fatal => return Err(fatal(sink.name(), e)),
                _ => return Ok(groups.len()),
            }
        }
        let refused = rejected.iter().filter(|r| r.is_some()).count();
        if refused > 0 {
            let letters = self.group_letters(&groups, &spans, &positions, payloads, &rejected);
            error!(groups = refused, records = letters.len(), "a sink rejected groups for good; sending their records, unchanged, to the dead-letter sink");
            match self.dead_letter_with_retry(&letters).await {
                Ok(()) => {}
                // Abandoned while retrying: the groups stay unacknowledged, to be read again.
                Err(e) if e.kind == ErrorKind::Retryable => return Ok(groups.len()),
                Err(e) => return Err(PipelineError::DeadLetters(e)),
            }
        }
        {
            let mut tracker = super::lock(&self.tracker)?;
            for span in &spans {
                tracker.acked_group(&positions[span.clone()]);
            }
        }
        let now = self.clock.now_ms();
        let mut messages = 0u64;
        for ((last, group), refusal) in last_times.iter().zip(&groups).zip(&rejected) {
            if refusal.is_none() {
                self.metrics.observe_delay_ms(now.saturating_sub(*last));
                messages += group.len() as u64;
            }
        }
        self.unacked_bytes.fetch_sub(bytes, SeqCst);
        self.counts
            .groups_out((groups.len() - refused) as u64, refused as u64);
        self.metrics.messages_out.fetch_add(messages, SeqCst);
        // Without a reader to take them (the reading ended), they are dropped here.
        let _ = self.spent.send(groups);
        Ok(0)
    }

    /// Which groups of a batch `sink` rejected (with `e`) refuses for good: each is written
    /// alone, and those it rejects alone are the refused ones. A batch of one is refused whole.
    async fn find_rejected(
        &self,
        sink: &dyn Sink<K, R>,
        groups: &[Group<K, R>],
        e: SinkError,
    ) -> Result<Vec<(usize, SinkError)>, SinkError> {
        if groups.len() == 1 {
            return Ok(vec![(0, e)]);
        }
        let mut refused = Vec::new();
        for (i, group) in groups.iter().enumerate() {
            match self
                .write_with_retry(sink, std::slice::from_ref(group))
                .await
            {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::Rejected => refused.push((i, e)),
                Err(e) => return Err(e),
            }
        }
        Ok(refused)
    }

    /// Writes to one sink, retrying as [`retrying`] does.
    async fn write_with_retry(
        &self,
        sink: &dyn Sink<K, R>,
        groups: &[Group<K, R>],
    ) -> Result<(), SinkError> {
        retrying(
            sink.name(),
            &self.config,
            &self.metrics,
            &self.abandon,
            || sink.write(groups),
        )
        .await
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
            &self.counts,
            &self.abandon,
        )
        .await
    }

    /// The dead letters of the refused groups: each record with its original bytes (as JSON for
    /// a typed source's records, which have none) and why its group was refused.
    fn group_letters(
        &self,
        groups: &[Group<K, R>],
        spans: &[std::ops::Range<usize>],
        positions: &[Position],
        kept: Vec<(usize, Vec<u8>)>,
        rejected: &[Option<String>],
    ) -> Vec<DeadLetter> {
        let mut payloads = vec![Vec::new(); positions.len()];
        for (at, payload) in kept {
            payloads[at] = payload;
        }
        let mut letters = Vec::new();
        for ((group, span), reason) in groups.iter().zip(spans).zip(rejected) {
            let Some(reason) = reason else { continue };
            for (record, at) in group.records.iter().zip(span.clone()) {
                let mut payload = std::mem::take(&mut payloads[at]);
                let mut reason = reason.clone();
                if payload.is_empty() {
                    payload = match record.source_bytes() {
                        Some(bytes) if encodes(bytes, record) => bytes.to_vec(),
                        _ => match serde_json::to_vec(record) {
                            Ok(json) => json,
                            // The record's own Serialize refused: the letter still goes out, with
                            // its position and key to find the record in the source, and says why
                            // it carries no bytes.
                            Err(e) => {
                                reason.push_str(&format!(
                                    " (the record has no bytes here: it could not be encoded as \
                                     JSON: {e}; read it at its position)"
                                ));
                                Vec::new()
                            }
                        },
                    };
                }
                letters.push(DeadLetter {
                    position: positions[at],
                    key: Some(group.key.to_string().into_bytes()),
                    payload,
                    reason,
                });
            }
        }
        letters
    }
}

/// Whether `bytes` are a JSON encoding of `record` (any layout): the check that the bytes a
/// record says it was decoded from are its bytes, made only for dead letters, which are rare.
fn encodes<R: serde::Serialize>(bytes: &[u8], record: &R) -> bool {
    match (
        serde_json::from_slice::<serde_json::Value>(bytes),
        serde_json::to_value(record),
    ) {
        (Ok(read), Ok(written)) => read == written,
        _ => false,
    }
}

/// Writes dead letters, retrying as [`retrying`] does; counts them once written.
pub(crate) async fn write_dead_letters(
    sink: &dyn DeadLetterSink,
    letters: &[DeadLetter],
    config: &RuntimeConfig,
    counts: &Counts,
    abandon: &watch::Receiver<bool>,
) -> Result<(), SinkError> {
    retrying("dead letters", config, &counts.shared, abandon, || {
        sink.write(letters)
    })
    .await?;
    counts.dead_lettered(letters.len() as u64);
    Ok(())
}

/// Calls `attempt` until it succeeds or fails with an error that is not retryable, waiting
/// between attempts as [`RuntimeConfig::backoff`] says. The runtime is the one layer that
/// retries a sink's writes: connectors try once and say whether a retry can help.
///
/// Ends early, with the last (retryable) error, when the runtime abandons the wait (shutdown
/// timeout, or another sink stopped the run): a caller tells that from a failure for good by the
/// error's kind.
async fn retrying<F, Fut>(
    what: &str,
    config: &RuntimeConfig,
    metrics: &Metrics,
    abandon: &watch::Receiver<bool>,
    mut attempt: F,
) -> Result<(), SinkError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), SinkError>>,
{
    let mut backoff = config.backoff();
    loop {
        let e = match attempt().await {
            Ok(()) => return Ok(()),
            Err(e) if e.kind == ErrorKind::Retryable => e,
            Err(e) => return Err(e),
        };
        metrics.sink_retries.fetch_add(1, SeqCst);
        let delay = backoff.next_delay();
        warn!(sink = what, error = %e, attempt = backoff.attempts(), retry_in_ms = delay.as_millis() as u64, "write failed; retrying");
        if wait_or_abandon(abandon, delay).await {
            return Err(e);
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
