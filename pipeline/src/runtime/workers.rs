//! The timely side of the runtime: worker threads that feed records into the operator and hand
//! completed groups to the async sink dispatcher.
//!
//! Worker 0 receives records and time advances from the source task and feeds them into its input;
//! the operator exchanges records by key, so every worker aggregates its share. The other workers
//! only follow worker 0's input time, read from a shared atomic, so the frontier can advance.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline as Local;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Input;
use timely::dataflow::InputHandle;
use tokio::sync::mpsc;

use super::{panic_message, PipelineError};
use crate::group::Group;
use crate::operator::{AggregateByKey, AggregateOptions, GroupKey};
use crate::policy::WindowPolicy;
use crate::record::{Aggregatable, Envelope};

/// The longest an idle worker parks before looking again on its own.
const IDLE_PARK: Duration = Duration::from_millis(100);

/// What the source task tells worker 0.
pub(crate) enum Feed<R> {
    /// Records to send at the current input time.
    Records(Vec<Envelope<R>>),
    /// Advance the input time to this event time (ms).
    Advance(u64),
}

/// The worker threads, so that whoever hands them work wakes them from their park: an idle worker
/// parks until woken rather than looking for work every millisecond (a thousand wake-ups a
/// second per worker, most of the pipeline's CPU in `confab up` at a few hundred messages a
/// second).
#[derive(Default)]
pub(crate) struct WorkerThreads(Mutex<Vec<(usize, std::thread::Thread)>>);

impl WorkerThreads {
    /// Registers the calling thread as worker `index`.
    fn register(&self, index: usize) {
        if let Ok(mut threads) = self.0.lock() {
            threads.push((index, std::thread::current()));
        }
    }

    /// Wakes worker `index`, or every worker for `None`. A worker not parked yet returns from its
    /// next park at once.
    fn wake(&self, index: Option<usize>) {
        if let Ok(threads) = self.0.lock() {
            for (i, thread) in threads.iter() {
                if index.is_none_or(|index| index == *i) {
                    thread.unpark();
                }
            }
        }
    }
}

/// The source task's end of the feed: sends to worker 0 and wakes it.
pub(crate) struct FeedSender<R> {
    tx: mpsc::Sender<Feed<R>>,
    threads: Arc<WorkerThreads>,
}

impl<R> FeedSender<R> {
    pub(crate) fn new(tx: mpsc::Sender<Feed<R>>, threads: Arc<WorkerThreads>) -> Self {
        Self { tx, threads }
    }

    /// Sends `feed` to worker 0 (waiting while it is `FEED_BATCHES` behind) and wakes it; an
    /// error means the workers stopped.
    pub(crate) async fn send(&self, feed: Feed<R>) -> Result<(), ()> {
        self.tx.send(feed).await.map_err(|_| ())?;
        self.threads.wake(Some(0));
        Ok(())
    }
}

impl<R> Drop for FeedSender<R> {
    /// The feed's end is news too: worker 0 sees it closed and ends the input.
    fn drop(&mut self) {
        self.threads.wake(None);
    }
}

/// A completed group on its way to the sinks.
pub(crate) type Completed<K, R> = Group<K, Envelope<R>>;

/// The groups one worker completed in one step, handed to the sink dispatcher as one message.
pub(crate) type Completions<K, R> = Vec<Completed<K, R>>;

/// Everything the worker threads share.
pub(crate) struct WorkerShared<K, R> {
    pub(crate) feed: Mutex<Option<mpsc::Receiver<Feed<R>>>>,
    pub(crate) epoch: AtomicU64,
    pub(crate) closed: AtomicBool,
    pub(crate) out: mpsc::UnboundedSender<Completions<K, R>>,
    /// Bytes of records read and not yet acknowledged by every sink.
    pub(crate) unacked_bytes: Arc<AtomicU64>,
    /// The current assignment generation of each partition.
    pub(crate) generations: Arc<Generations>,
    /// The worker threads, to wake.
    pub(crate) threads: Arc<WorkerThreads>,
}

/// Per partition, how many times it was revoked: records carry the value current when read.
#[derive(Debug, Default)]
pub(crate) struct Generations(std::sync::RwLock<std::collections::HashMap<u32, u32>>);

impl Generations {
    /// The generation records of `partition` are read under now.
    pub(crate) fn current(&self, partition: u32) -> u32 {
        self.0
            .read()
            .map(|g| g.get(&partition).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Starts a new generation for each of `partitions`.
    pub(crate) fn revoke(&self, partitions: &[u32]) {
        if let Ok(mut g) = self.0.write() {
            for p in partitions {
                *g.entry(*p).or_default() += 1;
            }
        }
    }

    /// Whether `group` was read under its partition's current assignment.
    fn is_current<K, R>(&self, group: &Completed<K, R>) -> bool {
        group
            .records
            .first()
            .is_none_or(|e| self.current(e.position.partition) == e.generation)
    }
}

/// Runs `workers` timely workers until the feed ends, returning when all groups were emitted.
pub(crate) fn run_workers<K, R, F>(
    workers: usize,
    shared: Arc<WorkerShared<K, R>>,
    key_fn: F,
    policy: WindowPolicy,
    options: AggregateOptions,
) -> Result<(), PipelineError>
where
    K: GroupKey,
    R: Aggregatable,
    F: Fn(&R) -> K + Clone + Send + Sync + 'static,
{
    // timely reports a worker's panic as its payload's Debug form ("Any { .. }"): the message
    // is kept here on its way out, so that the run's error says what panicked and why.
    let panicked: Arc<Mutex<Option<String>>> = Arc::default();
    let first_panic = Arc::clone(&panicked);
    let guards = timely::execute(timely::Config::process(workers.max(1)), move |worker| {
        let body =
            std::panic::AssertUnwindSafe(|| work(worker, &shared, &key_fn, policy, &options));
        if let Err(payload) = std::panic::catch_unwind(body) {
            if let Ok(mut slot) = first_panic.lock() {
                slot.get_or_insert_with(|| panic_message(payload.as_ref()));
            }
            std::panic::resume_unwind(payload);
        }
    })
    .map_err(PipelineError::Workers)?;
    let mut failed = None;
    for result in guards.join() {
        if let Err(e) = result {
            failed.get_or_insert(e);
        }
    }
    match (failed, panicked.lock().ok().and_then(|mut p| p.take())) {
        (None, _) => Ok(()),
        (Some(_), Some(message)) => Err(PipelineError::Panicked {
            what: "a dataflow worker (the key function, or a record's methods)".into(),
            message,
        }),
        (Some(e), None) => Err(PipelineError::Workers(e)),
    }
}

/// One worker's life: builds the dataflow, feeds it until the input ends, drains it.
fn work<K, R, F>(
    worker: &mut timely::worker::Worker,
    shared: &Arc<WorkerShared<K, R>>,
    key_fn: &F,
    policy: WindowPolicy,
    options: &AggregateOptions,
) where
    K: GroupKey,
    R: Aggregatable,
    F: Fn(&R) -> K + Clone + Send + Sync + 'static,
{
    {
        let index = worker.index();
        let out = shared.out.clone();
        let unacked = Arc::clone(&shared.unacked_bytes);
        let generations = Arc::clone(&shared.generations);
        let key_fn = key_fn.clone();
        let options = options.clone();
        let mut input: InputHandle<u64, CapacityContainerBuilder<Vec<Envelope<R>>>> =
            InputHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            scope
                .input_from(&mut input)
                .aggregate_by_key_with(move |e: &Envelope<R>| key_fn(&e.record), policy, options)
                .sink(Local, "ToSinks", move |(groups, _frontier)| {
                    groups.for_each(|_cap, batch| {
                        batch.retain(|group| {
                            let current = generations.is_current(group);
                            if !current {
                                // Its partition was revoked: the next owner writes it whole.
                                unacked.fetch_sub(group.bytes as u64, Ordering::SeqCst);
                            }
                            current
                        });
                        // The batch goes as it is, one message for all its groups. The receiver
                        // goes away only when the pipeline is being torn down.
                        if !batch.is_empty() {
                            let _ = out.send(std::mem::take(batch));
                        }
                    });
                });
        });

        shared.threads.register(index);
        let mut feed = if index == 0 {
            shared.feed.lock().ok().and_then(|mut f| f.take())
        } else {
            None
        };
        let mut open = true;
        while open {
            let mut busy = false;
            if let Some(rx) = feed.as_mut() {
                loop {
                    match rx.try_recv() {
                        Ok(Feed::Records(mut records)) => {
                            busy = true;
                            // The batch goes in as one message, without copying each record
                            // into the input's own buffer.
                            input.send_batch(&mut records);
                        }
                        Ok(Feed::Advance(time)) => {
                            if time > *input.time() {
                                input.advance_to(time);
                                shared.epoch.store(time, Ordering::SeqCst);
                                // The other workers follow the epoch: they look when woken.
                                shared.threads.wake(None);
                            }
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            shared.closed.store(true, Ordering::SeqCst);
                            shared.threads.wake(None);
                            open = false;
                            break;
                        }
                    }
                }
            } else {
                let time = shared.epoch.load(Ordering::SeqCst);
                if time > *input.time() {
                    input.advance_to(time);
                }
                open = !shared.closed.load(Ordering::SeqCst);
            }
            if busy {
                worker.step();
            } else {
                // Woken by the feed, by another worker's records (timely wakes it), or by worker
                // 0 moving the epoch; the timeout is a safety net, not the way work arrives.
                worker.step_or_park(Some(IDLE_PARK));
            }
        }
        drop(input);
        while worker.has_dataflows() {
            worker.step_or_park(Some(Duration::from_millis(1)));
        }
    }
}
