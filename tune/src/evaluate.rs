//! One candidate over one workload, through the real operator in virtual time.
//!
//! The input time jumps from one message's timestamp to the next, so groups complete exactly when
//! the runtime would complete them, without waiting. A group completed by a deadline (inactivity,
//! age) reaches the sinks `lateness_ms` after it, as in the runtime, which holds time back by that
//! margin; a group completed by size or by the leading edge is delivered at once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use confab_pipeline::{
    Aggregatable, AggregateByKey, AggregateOptions, ChatMessage, CompletionReason, Group, Metrics,
};
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::{Input, Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

use crate::grid::Candidate;

/// Groups with the virtual time they were emitted at, shared with the timely worker.
type Delivered = Arc<Mutex<Vec<(u64, Group<confab_pipeline::Text, ChatMessage>)>>>;

/// Firestore list prices and how many clients listen to each chat.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Prices {
    /// Dollars per 100,000 document writes.
    pub write_per_100k: f64,
    /// Dollars per 100,000 document reads (each document a listener receives is one read).
    pub read_per_100k: f64,
    /// Clients listening to each chat (both members of a 1:1 chat: 2).
    pub listeners_per_chat: f64,
}

impl Default for Prices {
    fn default() -> Self {
        // Firestore Standard edition list prices (multi-region nam5) at the time of writing.
        Self {
            write_per_100k: 0.18,
            read_per_100k: 0.06,
            listeners_per_chat: 2.0,
        }
    }
}

/// What one candidate did with the workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The candidate evaluated.
    pub candidate: Candidate,
    /// Messages in the workload.
    pub messages: u64,
    /// Firestore document writes (one per group).
    pub writes: u64,
    /// Writes per message (1.0 without grouping).
    pub writes_per_message: f64,
    /// Document reads by listeners (writes x listeners per chat).
    pub reads: u64,
    /// Reads per user (client) over the workload.
    pub reads_per_client: f64,
    /// Dollars per 30-day month at this traffic, writes plus reads.
    pub cost_per_month: f64,
    /// Delivery delay percentiles in ms: from a message's time to its group's delivery.
    pub delay_p50_ms: u64,
    /// 90th percentile delay (ms).
    pub delay_p90_ms: u64,
    /// 95th percentile delay (ms).
    pub delay_p95_ms: u64,
    /// 99th percentile delay (ms).
    pub delay_p99_ms: u64,
    /// Largest delay (ms).
    pub delay_max_ms: u64,
    /// Most documents written for one chat within any one second.
    pub max_writes_per_chat_second: u64,
    /// Most groups open at once.
    pub peak_open_groups: u64,
    /// Most bytes held in open groups at once.
    pub peak_open_bytes: u64,
    /// Groups completed, by reason.
    pub completions: HashMap<String, u64>,
}

/// Runs `candidate` over `messages` (sorted by time) and measures it.
pub fn evaluate(
    messages: &Arc<Vec<ChatMessage>>,
    candidate: &Candidate,
    prices: &Prices,
    lateness_ms: u64,
) -> Outcome {
    let metrics = Arc::new(Metrics::default());
    let delivered: Delivered = Arc::default();
    let (peak_groups, peak_bytes) = run_virtual_time(
        Arc::clone(messages),
        candidate,
        Arc::clone(&metrics),
        Arc::clone(&delivered),
    );
    let groups = std::mem::take(&mut *delivered.lock().unwrap_or_else(|p| p.into_inner()));

    let mut delays: Vec<u64> = Vec::with_capacity(messages.len());
    let mut per_chat: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut completions: HashMap<String, u64> = HashMap::new();
    for (at, group) in &groups {
        let timed = matches!(
            group.reason,
            CompletionReason::Inactivity | CompletionReason::MaxAge
        );
        let delivered_at = at + if timed { lateness_ms } else { 0 };
        for m in &group.records {
            delays.push(delivered_at.saturating_sub(m.event_time_ms()));
        }
        if let Some(first) = group.records.first() {
            per_chat
                .entry(first.chat_id.as_str())
                .or_default()
                .push(delivered_at);
        }
        *completions
            .entry(group.reason.as_str().to_string())
            .or_default() += 1;
    }
    delays.sort_unstable();
    let percentile = |p: f64| -> u64 {
        if delays.is_empty() {
            return 0;
        }
        let rank = ((p * delays.len() as f64).ceil() as usize).clamp(1, delays.len());
        delays[rank - 1]
    };
    let max_writes_per_chat_second = per_chat
        .values_mut()
        .map(|times| {
            times.sort_unstable();
            let mut best = 0;
            let mut lo = 0;
            for hi in 0..times.len() {
                while times[hi] - times[lo] >= 1_000 {
                    lo += 1;
                }
                best = best.max(hi - lo + 1);
            }
            best as u64
        })
        .max()
        .unwrap_or(0);

    let n = messages.len() as u64;
    let writes = groups.len() as u64;
    let reads = (writes as f64 * prices.listeners_per_chat).round() as u64;
    let users: HashSet<&str> = messages
        .iter()
        .flat_map(|m| [m.from_user.as_str(), m.to_user.as_str()])
        .collect();
    let span_ms = match (messages.first(), messages.last()) {
        (Some(a), Some(b)) => (b.event_time_ms() - a.event_time_ms()).max(1),
        _ => 1,
    };
    let month_factor = 30.0 * 86_400_000.0 / span_ms as f64;
    let cost_per_month = month_factor
        * (writes as f64 / 100_000.0 * prices.write_per_100k
            + reads as f64 / 100_000.0 * prices.read_per_100k);
    Outcome {
        candidate: candidate.clone(),
        messages: n,
        writes,
        writes_per_message: if n == 0 {
            0.0
        } else {
            writes as f64 / n as f64
        },
        reads,
        reads_per_client: if users.is_empty() {
            0.0
        } else {
            reads as f64 / users.len() as f64
        },
        cost_per_month,
        delay_p50_ms: percentile(0.50),
        delay_p90_ms: percentile(0.90),
        delay_p95_ms: percentile(0.95),
        delay_p99_ms: percentile(0.99),
        delay_max_ms: delays.last().copied().unwrap_or(0),
        max_writes_per_chat_second,
        peak_open_groups: peak_groups,
        peak_open_bytes: peak_bytes,
        completions,
    }
}

/// Feeds the messages through the operator on one timely worker, advancing the input time to
/// each message's time; records every group with the time it was emitted. Returns the peak open
/// groups and bytes.
fn run_virtual_time(
    messages: Arc<Vec<ChatMessage>>,
    candidate: &Candidate,
    metrics: Arc<Metrics>,
    delivered: Delivered,
) -> (u64, u64) {
    let key = candidate.key;
    let policy = candidate.policy;
    let options = AggregateOptions {
        metrics: Some(Arc::clone(&metrics)),
        ..AggregateOptions::default()
    };
    timely::execute_directly(move |worker| {
        let probe = ProbeHandle::new();
        let mut input = InputHandle::new();
        let sink = Arc::clone(&delivered);
        worker.dataflow::<u64, _, _>(|scope| {
            scope
                .input_from(&mut input)
                .aggregate_by_key_with(move |m: &ChatMessage| key.key(m), policy, options)
                .inspect_core(move |event| {
                    if let Ok((stamp, groups)) = event {
                        let at = stamp.least().copied().unwrap_or(0);
                        let mut sink = sink.lock().unwrap_or_else(|p| p.into_inner());
                        sink.extend(groups.iter().map(|g| (at, g.clone())));
                    }
                })
                .probe_with(&probe);
        });
        let (mut peak_groups, mut peak_bytes) = (0, 0);
        for chunk in messages.chunks(256) {
            for m in chunk {
                let t = m.event_time_ms();
                if t > *input.time() {
                    input.advance_to(t);
                }
                input.send(m.clone());
            }
            while probe.less_than(input.time()) {
                worker.step();
            }
            peak_groups = peak_groups.max(metrics.open_groups.load(Ordering::Relaxed));
            peak_bytes = peak_bytes.max(metrics.open_bytes.load(Ordering::Relaxed));
        }
        // Let every open group reach its own deadline rather than flushing them at end of input.
        let last = messages.last().map_or(0, |m| m.event_time_ms());
        let horizon = last + policy.max_age_ms.min(u64::MAX / 4) + 1;
        if horizon > *input.time() {
            input.advance_to(horizon);
        }
        while probe.less_than(input.time()) {
            worker.step();
        }
        drop(input);
        while worker.step() {}
        (peak_groups, peak_bytes)
    })
}

/// Evaluates every candidate, `threads` at a time, calling `done` after each with the number
/// finished so far. Results are in the candidates' order.
pub fn evaluate_all(
    messages: &Arc<Vec<ChatMessage>>,
    candidates: &[Candidate],
    prices: &Prices,
    lateness_ms: u64,
    threads: usize,
    done: &(dyn Fn(usize) + Sync),
) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; candidates.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(candidate) = candidates.get(i) else {
                    break;
                };
                let outcome = evaluate(messages, candidate, prices, lateness_ms);
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(outcome);
                done(finished.fetch_add(1, Ordering::SeqCst) + 1);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}
