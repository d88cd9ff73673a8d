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

/// What the source task tells worker 0.
pub(crate) enum Feed<R> {
    /// Records to send at the current input time.
    Records(Vec<Envelope<R>>),
    /// Advance the input time to this event time (ms).
    Advance(u64),
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
                            }
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            shared.closed.store(true, Ordering::SeqCst);
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
                worker.step_or_park(Some(Duration::from_millis(1)));
            }
        }
        drop(input);
        while worker.has_dataflows() {
            worker.step_or_park(Some(Duration::from_millis(1)));
        }
    }
}
