//! The buffer-and-aggregate-by-key operator as a timely dataflow stage.
//!
//! Records are exchanged across workers by a hash of their key, so each key lives on one worker,
//! and are processed in arrival order, which for one key is its log order. Membership of a group
//! is a function of the key's records and their event times only:
//!
//! - a record joins its key's open group if its event time is before the group's deadline,
//!   `min(last time + inactivity_timeout_ms, first time + max_age_ms)`, and the group would not
//!   exceed `max_bytes`; otherwise the open group completes and the record starts a new one;
//! - a group completes at once when it reaches `max_messages` (or exactly `max_bytes`);
//! - a group whose deadline the input frontier has reached completes then: no record that could
//!   still join it can arrive. Timestamps are event-time milliseconds, so a frontier advanced by a
//!   clock while the input is idle completes groups with no further record;
//! - with a leading edge (`leading_edge_idle_ms`, T), a record whose key's latest record is at
//!   least T earlier in event time (or in an earlier commit epoch, or from an earlier assignment
//!   of its partition), or that has no remembered record at all, completes at once as a group of
//!   one. The key's latest event time is remembered after its group completes until the frontier
//!   passes it by T, so for every record that arrives ahead of the frontier the decision is a
//!   function of the key's earlier records in the log; the runtime never commits a position
//!   that a replay would start from with a different memory (see the runtime's sessions).
//!
//! The operator holds one capability, at the earliest deadline of its open groups, and none when
//! it has no open group, so downstream frontiers advance as soon as nothing is pending.
//!
//! A record that arrives after the frontier passed its group's deadline (a late record) starts a
//! new group; the runtime keeps that rare by holding the idle clock back by a lateness margin.
//! A group that takes in a record behind the frontier (a backlog read after a restart or a
//! rebalance) completes no earlier than once the frontier has moved *past* the time the record
//! arrived at: the runtime holds time still while a partition catches up, so the rest of that
//! backlog arrives at the same time and still joins by event time, whatever the batching.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rustc_hash::FxHashMap;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use crate::group::{group_id, CompletionReason, Group};
use crate::metrics::Metrics;
use crate::policy::WindowPolicy;
use crate::record::Aggregatable;

/// What a grouping key must be: hashable to pick a worker and find its group, and printable,
/// because the group id is derived from its [`Display`](fmt::Display) text (so that text must
/// not change between versions of a program, or replays write new ids). Numbers and strings
/// are keys as they are; a tuple needs a newtype with a `Display`.
pub trait GroupKey: Clone + Eq + Hash + fmt::Display + Send + 'static {}
impl<T> GroupKey for T where T: Clone + Eq + Hash + fmt::Display + Send + 'static {}

/// Caps on what one worker's operator holds open. Reaching one completes the open group with the
/// earliest deadline early (reason [`CompletionReason::Capacity`]), so memory stays bounded even
/// when the input never pauses.
///
/// Defaults: 2,000,000 open groups and 1 GiB of open records per worker. Under a
/// [`crate::Pipeline`], bytes are the records' sizes as read (the source payload's length), not
/// [`crate::Aggregatable::size_bytes`]; a typed source's records count their `size_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperatorLimits {
    /// Most open groups one worker holds.
    pub max_open_groups: usize,
    /// Most bytes of records one worker holds in open groups.
    pub max_open_bytes: usize,
}

impl Default for OperatorLimits {
    fn default() -> Self {
        Self {
            max_open_groups: 2_000_000,
            max_open_bytes: 1 << 30,
        }
    }
}

impl OperatorLimits {
    /// Checks that both caps can hold a group. [`crate::Pipeline::run`] calls it.
    pub fn validate(&self) -> Result<(), crate::runtime::ConfigError> {
        if self.max_open_groups == 0 || self.max_open_bytes == 0 {
            return Err(crate::runtime::ConfigError(
                "`max_open_groups` and `max_open_bytes` must be greater than 0".into(),
            ));
        }
        Ok(())
    }
}

/// Options of [`AggregateByKey::aggregate_by_key_with`] beyond the key and the policy.
#[derive(Debug, Clone, Default)]
pub struct AggregateOptions {
    /// Caps on open groups and bytes per worker.
    pub limits: OperatorLimits,
    /// Where to report open groups, open bytes and completions; none by default.
    pub metrics: Option<Arc<Metrics>>,
    /// When not 0, no group spans a multiple of this many milliseconds of event time: a record
    /// of a later epoch than the record that began its key's open group closes that group
    /// ([`CompletionReason::Epoch`]; a late record of an earlier epoch still joins). Groups of
    /// keys interleaved in a log overlap one another, so without epochs a busy log may never
    /// reach a point that no group straddles, and commit-after-ack commits only at such points
    /// (see the runtime's commit tracker). The runtime sets
    /// [`crate::RuntimeConfig::commit_epoch_ms`]; 0 (off) by default here.
    pub epoch_ms: u64,
}

/// The extension trait that adds the operator to timely streams of records timestamped with
/// event-time milliseconds.
///
/// Here in a dataflow of your own: clicks grouped per user until a second without a click.
///
/// ```
/// use std::sync::{Arc, Mutex};
///
/// use confab_pipeline::timely::dataflow::operators::{Input, Inspect};
/// use confab_pipeline::timely::dataflow::InputHandle;
/// use confab_pipeline::{AggregateByKey, Aggregatable, CompletionReason, Group, WindowPolicy};
///
/// #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
/// struct Click {
///     user: u32,
///     at_ms: u64,
/// }
/// impl Aggregatable for Click {
///     fn event_time_ms(&self) -> u64 {
///         self.at_ms
///     }
/// }
///
/// let policy = WindowPolicy::after_inactivity(std::time::Duration::from_secs(1));
/// let groups = Arc::new(Mutex::new(Vec::new()));
/// let seen = Arc::clone(&groups);
/// confab_pipeline::timely::execute_directly(move |worker| {
///     let mut input = InputHandle::new();
///     worker.dataflow::<u64, _, _>(|scope| {
///         scope
///             .input_from(&mut input)
///             .aggregate_by_key(|c: &Click| c.user, policy)
///             .inspect(move |g: &Group<u32, Click>| {
///                 let times: Vec<u64> = g.records.iter().map(|c| c.at_ms).collect();
///                 seen.lock().expect("not poisoned").push((g.key, times, g.reason));
///             });
///     });
///     // Timestamps are event-time milliseconds: the input time follows the clicks, and a
///     // group completes once the time passes its deadline.
///     for (user, at_ms) in [(1, 0), (2, 100), (1, 400), (1, 3_000)] {
///         input.advance_to(at_ms);
///         input.send(Click { user, at_ms });
///         worker.step();
///     }
/// }); // The input ends here: the groups still open complete with it.
///
/// let mut groups = groups.lock().expect("not poisoned").clone();
/// groups.sort();
/// assert_eq!(
///     groups,
///     vec![
///         (1, vec![0, 400], CompletionReason::Inactivity),
///         (1, vec![3_000], CompletionReason::EndOfInput),
///         (2, vec![100], CompletionReason::Inactivity),
///     ]
/// );
/// ```
pub trait AggregateByKey<'scope, D> {
    /// Groups records by `key_fn` under `policy`, with default limits and no metrics.
    fn aggregate_by_key<K, F>(
        self,
        key_fn: F,
        policy: WindowPolicy,
    ) -> Stream<'scope, u64, Vec<Group<K, D>>>
    where
        K: GroupKey,
        F: Fn(&D) -> K + Clone + 'static;

    /// Groups records by `key_fn` under `policy`, with explicit limits and metrics.
    fn aggregate_by_key_with<K, F>(
        self,
        key_fn: F,
        policy: WindowPolicy,
        options: AggregateOptions,
    ) -> Stream<'scope, u64, Vec<Group<K, D>>>
    where
        K: GroupKey,
        F: Fn(&D) -> K + Clone + 'static;
}

impl<'scope, D: Aggregatable> AggregateByKey<'scope, D> for Stream<'scope, u64, Vec<D>> {
    fn aggregate_by_key<K, F>(
        self,
        key_fn: F,
        policy: WindowPolicy,
    ) -> Stream<'scope, u64, Vec<Group<K, D>>>
    where
        K: GroupKey,
        F: Fn(&D) -> K + Clone + 'static,
    {
        self.aggregate_by_key_with(key_fn, policy, AggregateOptions::default())
    }

    fn aggregate_by_key_with<K, F>(
        self,
        key_fn: F,
        policy: WindowPolicy,
        options: AggregateOptions,
    ) -> Stream<'scope, u64, Vec<Group<K, D>>>
    where
        K: GroupKey,
        F: Fn(&D) -> K + Clone + 'static,
    {
        let route_key = key_fn.clone();
        let exchange = Exchange::new(move |record: &D| key_hash(&route_key(record)));
        let scope = self.scope();
        self.unary_frontier(exchange, "AggregateByKey", move |_initial, info| {
            let activator = scope.activator_for(info.address);
            let mut state = State::new(policy, options);
            move |(input, frontier), output| {
                let mut ready = Vec::new();
                let mut overdue = Vec::new();
                input.for_each(|cap, records| {
                    let Some(time) = cap.least().copied() else {
                        return;
                    };
                    for record in records.drain(..) {
                        let key = key_fn(&record);
                        state.push(key, record, time, &mut ready, &mut overdue);
                        state.hold(time, |d| cap.delayed(&d, 0));
                    }
                    if !ready.is_empty() {
                        let emit_cap = cap.delayed(&time, 0);
                        output.session(&emit_cap).give_iterator(ready.drain(..));
                    }
                    // A group closed because a record arrived after its deadline completed at the
                    // deadline, not when the operator got to the record: emit it at its deadline.
                    if let Some(held) = state.held.as_ref() {
                        for (deadline, group) in overdue.drain(..) {
                            let emit_cap = held.delayed(&deadline.max(*held.time()));
                            output.session(&emit_cap).give(group);
                        }
                    }
                });
                let frontier = frontier.frontier();
                let end_of_input = frontier.is_empty();
                let reached = |deadline: u64| !frontier.less_than(&deadline);
                // Emit at most FLUSH_BATCH due groups per activation, so that a mass flush (end of
                // input, a long stall) streams to the sinks instead of queueing at once.
                let mut emitted = 0;
                while let Some((deadline, group)) = state.pop_due(&reached, end_of_input) {
                    if let Some(held) = state.held.as_ref() {
                        let at = if end_of_input { *held.time() } else { deadline };
                        let emit_cap = held.delayed(&at.max(*held.time()));
                        output.session(&emit_cap).give(group);
                    }
                    emitted += 1;
                    if emitted == FLUSH_BATCH {
                        activator.activate();
                        break;
                    }
                }
                state.forget_idle(&reached, end_of_input);
                state.release_capability();
                state.publish();
            }
        })
    }
}

/// Most groups completed by time in one activation of the operator.
const FLUSH_BATCH: usize = 4096;

/// A stable hash of a key, choosing its worker.
fn key_hash<K: Hash>(key: &K) -> u64 {
    // SipHash with fixed zero keys: the same on every worker and every run.
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

/// A group still collecting records.
struct OpenGroup<D> {
    records: Vec<D>,
    first: u64,
    last: u64,
    bytes: usize,
    /// When it completes if nothing else completes it first (event-time ms, never before the
    /// timely time of its records).
    deadline: u64,
    /// Distinguishes this group from earlier groups of the same key in the deadline queue.
    seq: u64,
    /// The end of the commit epoch its first record fell in (`u64::MAX` without epochs): a
    /// record at or after it closes the group. Kept so that joining costs no division.
    epoch_end: u64,
    /// The latest event time of the key's records since its last leading edge (this group's and
    /// those of the groups before it that the leading edge remembered): what a leading edge is
    /// measured from.
    latest: u64,
}

/// What the operator remembers of a key with no open group, for the leading edge: its latest
/// record's event time while that is recent enough to keep the key's next record in the same
/// conversation.
struct Recent<D> {
    latest: u64,
    /// The key's last record, to ask whether a newer record comes from the same assignment of
    /// its partition ([`Aggregatable::may_join`]).
    record: D,
    /// Distinguishes this entry from earlier ones of the same key in the expiry queue.
    seq: u64,
}

/// One worker's operator state.
struct State<K, D> {
    policy: WindowPolicy,
    epoch_ms: u64,
    limits: OperatorLimits,
    metrics: Option<Arc<Metrics>>,
    open: FxHashMap<K, OpenGroup<D>>,
    /// Deadlines of open groups, earliest first. Entries go stale when a group grows (its deadline
    /// moves later) or completes early; stale entries are fixed up or dropped when they surface.
    deadlines: BinaryHeap<Reverse<(u64, u64, Unordered<K>)>>,
    open_bytes: usize,
    /// Bytes records added to open groups since the metrics last heard: published per
    /// activation and before a completion subtracts a group's bytes, rather than with an atomic
    /// add per record on a cache line the reader reads.
    unpublished_bytes: usize,
    next_seq: u64,
    /// A capability at or before every open group's deadline.
    held: Option<Capability<u64>>,
    /// Keys without an open group that had a record less than `leading_edge_idle_ms` ago (empty
    /// without a leading edge).
    recent: FxHashMap<K, Recent<D>>,
    /// When each `recent` entry may be forgotten, earliest first; stale entries (the key opened a
    /// group or was remembered again since) are dropped when they surface.
    forget_at: BinaryHeap<Reverse<(u64, u64, Unordered<K>)>>,
}

impl<K: GroupKey, D: Aggregatable> State<K, D> {
    fn new(policy: WindowPolicy, options: AggregateOptions) -> Self {
        Self {
            policy,
            epoch_ms: options.epoch_ms,
            limits: options.limits,
            metrics: options.metrics,
            open: FxHashMap::default(),
            deadlines: BinaryHeap::new(),
            open_bytes: 0,
            unpublished_bytes: 0,
            next_seq: 0,
            held: None,
            recent: FxHashMap::default(),
            forget_at: BinaryHeap::new(),
        }
    }

    /// Adds `record`, arriving at timely time `time`, to its key's group. Groups it fills go to
    /// `ready` (to be emitted at `time`); a group it finds past its deadline goes to `overdue`
    /// with that deadline.
    fn push(
        &mut self,
        key: K,
        record: D,
        time: u64,
        ready: &mut Vec<Group<K, D>>,
        overdue: &mut Vec<(u64, Group<K, D>)>,
    ) {
        let at = record.event_time_ms();
        let size = record.size_bytes();
        let policy = self.policy;
        let edge = LeadingEdge {
            idle_ms: policy.leading_edge_idle_ms,
            epoch_ms: self.epoch_ms,
        };

        // The usual case, a record joining its key's open group, takes one lookup. A record that
        // joins is never a leading edge: it comes within the inactivity timeout, which is no
        // longer than the leading edge's pause, and in the group's epoch and assignment.
        let step = match self.open.get_mut(&key) {
            None => {
                let leads = edge.on()
                    && self.recent.get(&key).is_none_or(|recent| {
                        edge.leads(recent.latest, Some(&recent.record), &record, at)
                    });
                Step::Start(leads, record)
            }
            Some(open) => match closing_reason(open, &record, at, size, &policy) {
                Some(close) => {
                    let leads =
                        edge.on() && edge.leads(open.latest, open.records.first(), &record, at);
                    Step::Close(close, leads, record)
                }
                None => {
                    if open.records.len() == open.records.capacity() {
                        // Grown fourfold up to the size that completes the group: fewer copies
                        // of a growing group than doubling, and no room past `max_messages`.
                        let len = open.records.len();
                        let room = (len * 4).clamp(len + 1, policy.max_messages.max(len + 1));
                        open.records.reserve_exact(room - len);
                    }
                    open.records.push(record);
                    open.first = open.first.min(at);
                    open.last = open.last.max(at);
                    open.latest = open.latest.max(at);
                    open.bytes += size;
                    open.deadline = deadline(&policy, open.first, open.last).max(time + 1);
                    self.open_bytes += size;
                    self.unpublished_bytes += size;
                    Step::Joined(open.records.len(), open.bytes)
                }
            },
        };
        let filled = match step {
            Step::Joined(count, bytes) => Some((count, bytes)),
            Step::Close((reason, deadline), leads, record) => {
                // The open group completes, and the record starts the next one.
                let group = self.complete(&key, reason);
                match deadline {
                    Some(deadline) => overdue.push((deadline, group)),
                    None => ready.push(group),
                }
                self.begin(&key, record, at, size, time, leads, ready)
            }
            Step::Start(leads, record) => self.begin(&key, record, at, size, time, leads, ready),
        };
        if let Some((count, bytes)) = filled {
            if count >= policy.max_messages {
                ready.push(self.complete(&key, CompletionReason::MaxMessages));
            } else if bytes >= policy.max_bytes {
                ready.push(self.complete(&key, CompletionReason::MaxBytes));
            }
        }
        while self.open.len() > self.limits.max_open_groups
            || self.open_bytes > self.limits.max_open_bytes
        {
            let Some(Reverse((_, _, Unordered(victim)))) = self.deadlines.pop() else {
                break;
            };
            if self.open.contains_key(&victim) {
                ready.push(self.complete(&victim, CompletionReason::Capacity));
            }
        }
    }

    /// Starts `key`'s next group with `record`: a group of one completed at once (to `ready`) if
    /// the record `leads`, otherwise an open group. Returns the open group's record count and
    /// bytes, or `None` when it completed.
    #[allow(clippy::too_many_arguments)]
    fn begin(
        &mut self,
        key: &K,
        record: D,
        at: u64,
        size: usize,
        time: u64,
        leads: bool,
        ready: &mut Vec<Group<K, D>>,
    ) -> Option<(usize, usize)> {
        // The remembered time of the key's records goes into its open group, or is replaced.
        let remembered = match self.policy.leading_edge_idle_ms {
            0 => None,
            _ => self.recent.remove(key),
        };
        if leads {
            self.start(key.clone(), record, at, size, time, at);
            ready.push(self.complete(key, CompletionReason::LeadingEdge));
            return None;
        }
        let latest = remembered.map_or(at, |r| r.latest.max(at));
        self.start(key.clone(), record, at, size, time, latest);
        Some((1, size))
    }

    /// Opens a group for `key` with `record`, its first; `latest` is the latest event time of the
    /// key's records that the leading edge measures from.
    fn start(&mut self, key: K, record: D, at: u64, size: usize, time: u64, latest: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let group_deadline = deadline(&self.policy, at, at).max(time + 1);
        self.deadlines
            .push(Reverse((group_deadline, seq, Unordered(key.clone()))));
        self.open.insert(
            key,
            OpenGroup {
                // Sized for one: most open groups of a million chats hold one record.
                records: vec![record],
                first: at,
                last: at,
                bytes: size,
                deadline: group_deadline,
                seq,
                epoch_end: epoch_end(self.epoch_ms, at),
                latest,
            },
        );
        self.open_bytes += size;
        if let Some(m) = &self.metrics {
            m.add_open_group(size);
        }
    }

    /// Adds the bytes records added to open groups since the last call to the metrics.
    fn publish(&mut self) {
        let bytes = std::mem::take(&mut self.unpublished_bytes);
        if let (Some(m), true) = (&self.metrics, bytes > 0) {
            m.add_open_bytes(bytes);
        }
    }

    /// Makes sure a capability at or before `deadline` of every open group is held, taking one
    /// from `make` (the current input's capability) when needed.
    fn hold(&mut self, time: u64, make: impl FnOnce(u64) -> Capability<u64>) {
        let needed = self
            .deadlines
            .peek()
            .map(|Reverse((d, _, _))| *d)
            .unwrap_or(time)
            .max(time);
        if self.held.as_ref().is_none_or(|c| *c.time() > needed) {
            self.held = Some(make(needed));
        }
    }

    /// The next group whose deadline `reached` says the frontier has passed, or every open group
    /// once the input has ended. Returns the group's deadline with it.
    fn pop_due(
        &mut self,
        reached: &impl Fn(u64) -> bool,
        end_of_input: bool,
    ) -> Option<(u64, Group<K, D>)> {
        loop {
            let Reverse((due, seq, _)) = self.deadlines.peek()?;
            if !end_of_input && !reached(*due) {
                return None;
            }
            let (due, seq) = (*due, *seq);
            let Reverse((_, _, Unordered(key))) = self.deadlines.pop()?;
            let Some(open) = self.open.get(&key) else {
                continue;
            };
            if open.seq != seq {
                continue;
            }
            if open.deadline > due && !end_of_input {
                self.deadlines
                    .push(Reverse((open.deadline, seq, Unordered(key))));
                continue;
            }
            let reason = if end_of_input {
                CompletionReason::EndOfInput
            } else if open.first.saturating_add(self.policy.max_age_ms) <= open.deadline {
                CompletionReason::MaxAge
            } else {
                CompletionReason::Inactivity
            };
            let at = open.deadline;
            return Some((at, self.complete(&key, reason)));
        }
    }

    /// Removes `key`'s open group and makes it a completed group. With a leading edge, the key's
    /// latest event time is remembered until the frontier passes it by the leading edge's pause.
    fn complete(&mut self, key: &K, reason: CompletionReason) -> Group<K, D> {
        let Some((key, open)) = self.open.remove_entry(key) else {
            unreachable_group(key)
        };
        self.open_bytes -= open.bytes;
        let idle = self.policy.leading_edge_idle_ms;
        if idle != 0 && reason != CompletionReason::EndOfInput {
            if let Some(last) = open.records.last() {
                // No earlier than the group's deadline: that is after the timely time of its
                // records, so a backlog read behind the frontier keeps its memory while it is
                // read, as it keeps its open groups.
                let forget = open
                    .latest
                    .saturating_add(idle)
                    .min(epoch_end(self.epoch_ms, open.latest))
                    .max(open.deadline);
                self.remember(key.clone(), open.latest, last.clone(), forget);
            }
        }
        self.publish();
        if let Some(m) = &self.metrics {
            m.group_completed(open.bytes, reason);
        }
        let id = group_id(
            &key.to_string(),
            &open
                .records
                .first()
                .map(|r| r.group_seed())
                .unwrap_or_default(),
        );
        Group {
            id,
            key,
            records: open.records,
            first_time_ms: open.first,
            last_time_ms: open.last,
            bytes: open.bytes,
            reason,
        }
    }

    /// Remembers `key`'s latest event time and record until the frontier reaches `forget`. Past
    /// the cap on open groups, the keys to be forgotten soonest are forgotten now: their next
    /// record is then a leading edge, an extra write rather than unbounded memory.
    fn remember(&mut self, key: K, latest: u64, record: D, forget: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.forget_at
            .push(Reverse((forget, seq, Unordered(key.clone()))));
        self.recent.insert(
            key,
            Recent {
                latest,
                record,
                seq,
            },
        );
        while self.recent.len() > self.limits.max_open_groups {
            let Some(Reverse((_, seq, Unordered(key)))) = self.forget_at.pop() else {
                break;
            };
            if self.recent.get(&key).is_some_and(|r| r.seq == seq) {
                self.recent.remove(&key);
            }
        }
    }

    /// Forgets the remembered keys whose time `reached` says the frontier has passed (all of them
    /// at the end of the input): their next record is a leading edge.
    fn forget_idle(&mut self, reached: &impl Fn(u64) -> bool, end_of_input: bool) {
        if end_of_input {
            self.recent.clear();
            self.forget_at.clear();
            return;
        }
        while let Some(Reverse((forget, _, _))) = self.forget_at.peek() {
            if !reached(*forget) {
                break;
            }
            let Some(Reverse((_, seq, Unordered(key)))) = self.forget_at.pop() else {
                break;
            };
            if self.recent.get(&key).is_some_and(|r| r.seq == seq) {
                self.recent.remove(&key);
            }
        }
    }

    /// Downgrades the held capability to the earliest pending deadline, or drops it when no group
    /// is open.
    fn release_capability(&mut self) {
        if self.open.is_empty() {
            self.deadlines.clear();
            self.held = None;
            return;
        }
        if let (Some(Reverse((due, _, _))), Some(held)) = (self.deadlines.peek(), &mut self.held) {
            if *held.time() < *due {
                held.downgrade(due);
            }
        }
    }
}

/// A key in the deadline queue. Entries are ordered by (deadline, sequence number), which is
/// unique, so the key itself never needs an order.
pub(crate) struct Unordered<K>(pub(crate) K);

impl<K> PartialEq for Unordered<K> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<K> Eq for Unordered<K> {}
impl<K> PartialOrd for Unordered<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Unordered<K> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// Completing a group that is not open is a bug in this module: every caller checked first.
#[cold]
fn unreachable_group<K: fmt::Display>(key: &K) -> ! {
    panic!("aggregate_by_key: no open group for key {key}")
}

/// What a record does to its key's open group.
enum Step<D> {
    /// It joined; the group now has this many records and bytes.
    Joined(usize, usize),
    /// The group completes first (why, and the deadline it passed, if it is overdue); the record
    /// starts the next one, alone and at once if it is a leading edge (the flag).
    Close((CompletionReason, Option<u64>), bool, D),
    /// No group was open: the record starts one, alone and at once if it is a leading edge.
    Start(bool, D),
}

/// The leading-edge rule (off when `idle_ms` is 0).
#[derive(Clone, Copy)]
struct LeadingEdge {
    idle_ms: u64,
    epoch_ms: u64,
}

impl LeadingEdge {
    fn on(self) -> bool {
        self.idle_ms != 0
    }

    /// Whether `record` (event time `at`) is a leading edge, given its key's latest remembered
    /// event time and one of its records: the key was idle for the pause, or the record opens a
    /// new commit epoch for the key (so that no conversation straddles an epoch's start, where
    /// the runtime commits), or comes from a newer assignment of its partition (whose reader
    /// starts with no memory).
    fn leads<D: Aggregatable>(
        self,
        latest: u64,
        previous: Option<&D>,
        record: &D,
        at: u64,
    ) -> bool {
        at >= latest.saturating_add(self.idle_ms)
            || at >= epoch_end(self.epoch_ms, latest)
            || previous.is_some_and(|p| !record.may_join(p))
    }
}

/// The end of the commit epoch `at` falls in (`u64::MAX` without epochs).
pub(crate) fn epoch_end(epoch_ms: u64, at: u64) -> u64 {
    match epoch_ms {
        0 => u64::MAX,
        e => (at / e).saturating_add(1).saturating_mul(e),
    }
}

/// Whether `record` (event time `at`, `size` bytes) arrives too late, too large, or from another
/// assignment for `open`, and if so why the group completes (with its deadline when the record
/// came after it).
fn closing_reason<D: Aggregatable>(
    open: &OpenGroup<D>,
    record: &D,
    at: u64,
    size: usize,
    policy: &WindowPolicy,
) -> Option<(CompletionReason, Option<u64>)> {
    if open
        .records
        .first()
        .is_some_and(|first| !record.may_join(first))
    {
        return Some((CompletionReason::Reassigned, None));
    }
    let age_limit = open.first.saturating_add(policy.max_age_ms);
    let idle_limit = open.last.saturating_add(policy.inactivity_timeout_ms);
    if at >= age_limit.min(idle_limit) {
        let reason = if age_limit <= idle_limit {
            CompletionReason::MaxAge
        } else {
            CompletionReason::Inactivity
        };
        Some((reason, Some(open.deadline)))
    } else if at >= open.epoch_end {
        // A late record of an earlier epoch still joins; only a later one closes the group.
        Some((CompletionReason::Epoch, None))
    } else if open.bytes + size > policy.max_bytes {
        Some((CompletionReason::MaxBytes, None))
    } else {
        None
    }
}

/// The deadline of a group whose records span `first..=last`.
fn deadline(policy: &WindowPolicy, first: u64, last: u64) -> u64 {
    first
        .saturating_add(policy.max_age_ms)
        .min(last.saturating_add(policy.inactivity_timeout_ms))
}
