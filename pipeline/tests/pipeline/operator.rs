//! The operator alone, on timely, checked against the reference model.

use std::sync::{Arc, Mutex};

use confab_pipeline::{AggregateByKey, CompletionReason, Group, WindowPolicy};
use proptest::prelude::*;
use timely::dataflow::operators::{Input, Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

use crate::model::{reference_groups, Outline, Rec};

/// Runs the operator on `workers` workers over `records` fed in `chunks` (sizes), advancing the
/// input time before each chunk to that chunk's first event time. Returns the groups and the
/// final input time.
pub(crate) fn run_operator(
    records: &[Rec],
    chunks: &[usize],
    policy: WindowPolicy,
    workers: usize,
) -> (Vec<Group<u8, Rec>>, u64) {
    let mut schedule: Vec<(u64, Vec<Rec>)> = Vec::new();
    let mut rest = records;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        schedule.push((chunk[0].time, chunk.to_vec()));
        rest = tail;
    }
    let final_epoch = schedule.last().map_or(0, |(t, _)| *t);
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&out);
    timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let sink = Arc::clone(&sink);
        let probe = ProbeHandle::new();
        let mut input = InputHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            scope
                .input_from(&mut input)
                .aggregate_by_key(|r: &Rec| r.key, policy)
                .inspect(move |g: &Group<u8, Rec>| sink.lock().expect("sink").push(g.clone()))
                .probe_with(&probe);
        });
        for (time, chunk) in &schedule {
            if *time > *input.time() {
                input.advance_to(*time);
            }
            if index == 0 {
                for r in chunk {
                    input.send(r.clone());
                }
            }
            while probe.less_than(input.time()) {
                worker.step();
            }
        }
        drop(input);
        while worker.step() {}
    })
    .expect("timely runs");
    let groups = out.lock().expect("groups").clone();
    (groups, final_epoch)
}

pub(crate) fn outline(groups: &[Group<u8, Rec>]) -> Vec<Outline> {
    let mut outline: Vec<Outline> = groups
        .iter()
        .map(|g| {
            (
                g.key,
                g.records.iter().map(|r| r.id.clone()).collect(),
                g.reason,
            )
        })
        .collect();
    outline.sort();
    outline
}

/// A log of records over a few keys with non-decreasing times, bursts and long gaps.
fn arb_log() -> impl Strategy<Value = Vec<Rec>> {
    prop::collection::vec(
        (
            0u8..6,
            prop_oneof![0u64..3, 0u64..20, 30u64..200],
            1usize..400,
        ),
        0..150,
    )
    .prop_map(|steps| {
        let mut time = 1_000_000;
        steps
            .into_iter()
            .enumerate()
            .map(|(i, (key, gap, size))| {
                // Times on a 100 ms grid, like the policy's limits, so that records landing exactly
                // on a deadline are common.
                time += gap * 100;
                Rec {
                    key,
                    id: format!("r{i}"),
                    time,
                    size,
                }
            })
            .collect()
    })
}

fn arb_policy() -> impl Strategy<Value = WindowPolicy> {
    (1u64..40, 1usize..12, 100usize..3_000, 1u64..5).prop_map(|(idle, count, bytes, age)| {
        let idle = idle * 100;
        WindowPolicy {
            inactivity_timeout_ms: idle,
            max_messages: count,
            max_bytes: bytes,
            max_age_ms: idle * age,
            leading_edge_idle_ms: 0,
        }
    })
}

/// A policy with a leading edge from its inactivity timeout up to six seconds longer.
fn arb_leading_edge_policy() -> impl Strategy<Value = WindowPolicy> {
    (arb_policy(), 0u64..60).prop_map(|(policy, extra)| WindowPolicy {
        leading_edge_idle_ms: policy.inactivity_timeout_ms + extra * 100,
        ..policy
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn operator_matches_the_reference_model_on_1_2_and_4_workers(
        log in arb_log(),
        policy in arb_policy(),
        chunks in prop::collection::vec(1usize..20, 1..8),
    ) {
        for workers in [1, 2, 4] {
            let (groups, final_epoch) = run_operator(&log, &chunks, policy, workers);
            let expected = reference_groups(&log, &policy, final_epoch);
            prop_assert_eq!(outline(&groups), expected, "workers = {}", workers);
            for g in &groups {
                prop_assert_eq!(g.id, confab_pipeline::group_id(&g.key.to_string(), &g.records[0].id));
                prop_assert_eq!(g.bytes, g.records.iter().map(|r| r.size).sum::<usize>());
            }
        }
    }

    /// The same with a leading edge: every batching and worker count yields the model's groups,
    /// the records that come after a pause alone and at once.
    #[test]
    fn operator_with_a_leading_edge_matches_the_reference_model_on_1_2_and_4_workers(
        log in arb_log(),
        policy in arb_leading_edge_policy(),
        chunks in prop::collection::vec(1usize..20, 1..8),
    ) {
        prop_assert_eq!(policy.validate(), Ok(()));
        for workers in [1, 2, 4] {
            let (groups, final_epoch) = run_operator(&log, &chunks, policy, workers);
            let expected = reference_groups(&log, &policy, final_epoch);
            prop_assert_eq!(outline(&groups), expected, "workers = {}", workers);
            for g in &groups {
                prop_assert_eq!(g.id, confab_pipeline::group_id(&g.key.to_string(), &g.records[0].id));
            }
        }
    }
}

#[test]
fn replaying_the_same_log_yields_identical_groups_and_ids() {
    let log: Vec<Rec> = (0..500)
        .map(|i| Rec {
            key: (i * 7 % 11) as u8,
            id: format!("m{i}"),
            time: 1_000 + i * 137 % 5_000 + i * 40,
            size: 120,
        })
        .scan(0, |t, mut r| {
            *t = (*t).max(r.time);
            r.time = *t;
            Some(r)
        })
        .collect();
    let policy = WindowPolicy {
        inactivity_timeout_ms: 900,
        max_messages: 10,
        max_bytes: 1_000,
        max_age_ms: 5_000,
        ..WindowPolicy::default()
    };
    let (first, _) = run_operator(&log, &[13, 1, 40], policy, 2);
    let (second, _) = run_operator(&log, &[5, 77], policy, 4);
    let key = |g: &Group<u8, Rec>| g.id;
    let mut first = first;
    let mut second = second;
    first.sort_by_key(key);
    second.sort_by_key(key);
    assert_eq!(first.len(), second.len());
    assert!(
        first.len() > 50,
        "the log forms many groups: {}",
        first.len()
    );
    for (a, b) in first.iter().zip(&second) {
        assert_eq!((a.id, &a.records, a.key), (b.id, &b.records, b.key));
    }
}

#[test]
fn a_lone_record_completes_at_its_inactivity_deadline_with_no_later_input() {
    let policy = WindowPolicy {
        inactivity_timeout_ms: 3_000,
        ..WindowPolicy::default()
    };
    timely::execute_directly(move |worker| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let probe = ProbeHandle::new();
        let mut input = InputHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            scope
                .input_from(&mut input)
                .aggregate_by_key(|r: &Rec| r.key, policy)
                .inspect_core(move |event| {
                    if let Ok((stamp, groups)) = event {
                        let time: Option<&u64> = stamp.least();
                        let time = time.copied().unwrap_or(0);
                        sink.lock()
                            .expect("sink")
                            .extend(groups.iter().map(|g| (time, g.clone())));
                    }
                })
                .probe_with(&probe);
        });
        input.advance_to(10_000);
        input.send(Rec {
            key: 1,
            id: "only".into(),
            time: 10_000,
            size: 10,
        });
        // Virtual time: just before the deadline nothing completes...
        input.advance_to(12_999);
        while probe.less_than(input.time()) {
            worker.step();
        }
        assert!(
            seen.lock().expect("seen").is_empty(),
            "nothing completes before the deadline"
        );
        // ...and once the input time reaches it, the group completes, input still open.
        input.advance_to(13_000);
        while probe.less_than(input.time()) {
            worker.step();
        }
        let seen = seen.lock().expect("seen").clone();
        assert_eq!(seen.len(), 1);
        let (time, group) = &seen[0];
        assert_eq!(*time, 13_000, "emitted at its deadline");
        assert_eq!(group.reason, CompletionReason::Inactivity);
        assert_eq!(group.records.len(), 1);
    });
}

/// Feeds records of key 1 with these event times one at a time to a dataflow whose time already
/// stands at `now`, running it to quiescence after each (a backlog read behind the frontier, as
/// after a restart), then lets time move on to `later`; the groups it emits.
fn feed_behind_the_frontier(
    policy: WindowPolicy,
    now: u64,
    times: Vec<u64>,
    later: u64,
) -> Vec<Group<u8, Rec>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&out);
    timely::execute(timely::Config::process(1), move |worker| {
        let sink = Arc::clone(&sink);
        let probe = ProbeHandle::new();
        let mut input = InputHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            scope
                .input_from(&mut input)
                .aggregate_by_key(|r: &Rec| r.key, policy)
                .inspect(move |g: &Group<u8, Rec>| sink.lock().expect("sink").push(g.clone()))
                .probe_with(&probe);
        });
        input.advance_to(now);
        for (i, time) in times.iter().enumerate() {
            input.send(Rec {
                key: 1,
                id: format!("r{i}"),
                time: *time,
                size: 1,
            });
            input.flush();
            for _ in 0..50 {
                worker.step();
            }
        }
        // The partition has caught up: time moves on and the groups complete.
        input.advance_to(later);
        while probe.less_than(input.time()) {
            worker.step();
        }
        drop(input);
        while worker.step() {}
    })
    .expect("timely runs");
    let groups = out.lock().expect("groups").clone();
    groups
}

/// A backlog read behind the frontier (after a restart, the runtime's time may already stand past
/// the events of a partition it has not read yet): records fed one at a time, with the dataflow
/// run to quiescence in between, still form the groups their event times say, not one group per
/// delivery.
#[test]
fn late_records_delivered_one_by_one_still_join_by_event_time() {
    let policy = WindowPolicy {
        inactivity_timeout_ms: 1_000,
        max_messages: 100,
        max_age_ms: 3_600_000,
        ..WindowPolicy::default()
    };
    // Time already stands at 10 s; the backlog's events are from 0 to 0.9 s.
    let groups = feed_behind_the_frontier(
        policy,
        10_000,
        (0..10u64).map(|i| i * 100).collect(),
        20_000,
    );
    let ids: Vec<Vec<String>> = groups
        .iter()
        .map(|g| g.records.iter().map(|r| r.id.clone()).collect())
        .collect();
    assert_eq!(
        groups.len(),
        1,
        "one group, as the event times say: {ids:?}"
    );
    assert_eq!(groups[0].records.len(), 10);
    assert_eq!(groups[0].reason, CompletionReason::Inactivity);
}

/// The leading edge's memory of a key outlives its group while a backlog is read behind the
/// frontier: records fed one at a time long after their event times are one conversation (the
/// first alone, the rest one group), not a leading edge each.
#[test]
fn a_backlog_read_behind_the_frontier_leads_once_per_pause_in_its_event_times() {
    let policy = WindowPolicy {
        inactivity_timeout_ms: 1_000,
        max_messages: 100,
        max_age_ms: 3_600_000,
        leading_edge_idle_ms: 2_000,
        ..WindowPolicy::default()
    };
    // Time already stands at 100 s. The backlog: a conversation at 0-0.9 s, then one at 5 s
    // (after a pause longer than the leading edge's) of three records.
    let times = (0..10u64)
        .map(|i| i * 100)
        .chain([5_000, 5_300, 5_600])
        .collect();
    let groups = feed_behind_the_frontier(policy, 100_000, times, 200_000);
    let mut outline: Vec<(Vec<String>, CompletionReason)> = groups
        .iter()
        .map(|g| (g.records.iter().map(|r| r.id.clone()).collect(), g.reason))
        .collect();
    outline.sort();
    let ids = |range: std::ops::Range<usize>| range.map(|i| format!("r{i}")).collect::<Vec<_>>();
    assert_eq!(
        outline,
        vec![
            (ids(0..1), CompletionReason::LeadingEdge),
            (ids(1..10), CompletionReason::Inactivity),
            (ids(10..11), CompletionReason::LeadingEdge),
            (ids(11..13), CompletionReason::Inactivity),
        ]
    );
}
