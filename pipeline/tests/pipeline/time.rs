//! Typed records and the two clocks: times that are not the wall clock's (device-relative, from
//! 0) grouped by their gaps under event time only, and times ahead of the clock held to it and
//! flushed at shutdown.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use confab_pipeline::{
    from_iter, group_id, Aggregatable, CompletionReason, Group, ManualClock, Pipeline, Polled,
    Position, Read, RecordSource, SourceError, WindowPolicy,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reading {
    device: u32,
    ts_ms: u64,
}

impl Aggregatable for Reading {
    fn event_time_ms(&self) -> u64 {
        self.ts_ms
    }
    fn size_bytes(&self) -> usize {
        16
    }
}

fn reading(device: u32, ts_ms: u64) -> Reading {
    Reading { device, ts_ms }
}

/// Polls answered from a script, then `Idle` for ever (or `End`, if `ends`); one partition.
struct Scripted {
    script: VecDeque<Option<Vec<Reading>>>,
    next: u64,
    ends: bool,
    committed: Arc<Mutex<Option<u64>>>,
}

impl Scripted {
    /// `None` in `script` is an idle poll.
    fn new(script: Vec<Option<Vec<Reading>>>, ends: bool) -> Self {
        Self {
            script: script.into(),
            next: 0,
            ends,
            committed: Arc::default(),
        }
    }
}

#[async_trait]
impl RecordSource<Reading> for Scripted {
    async fn poll(&mut self, _: usize, _: Duration) -> Result<Polled<Read<Reading>>, SourceError> {
        Ok(match self.script.pop_front() {
            Some(Some(readings)) => Polled::Records(
                readings
                    .into_iter()
                    .map(|r| {
                        let position = Position {
                            partition: 0,
                            offset: self.next,
                        };
                        self.next += 1;
                        Read::record(position, r)
                    })
                    .collect(),
            ),
            Some(None) => Polled::Idle,
            None if self.ends => Polled::End,
            None => {
                // Idle for ever, without spinning the test's runtime.
                tokio::time::sleep(Duration::from_millis(1)).await;
                Polled::Idle
            }
        })
    }
    async fn commit(&mut self, next: &[Position]) -> Result<(), SourceError> {
        if let Ok(mut committed) = self.committed.lock() {
            *committed = next.first().map(|p| p.offset);
        }
        Ok(())
    }
}

type Kept = Arc<Mutex<Vec<Group<u32, Reading>>>>;

fn pipeline(policy: WindowPolicy) -> (Pipeline<u32, Reading>, Kept) {
    let kept: Kept = Arc::default();
    let sink = Arc::clone(&kept);
    let p = Pipeline::typed(|r: &Reading| r.device)
        .policy(policy)
        .sink_fn("keep", move |g: &Group<u32, Reading>| {
            sink.lock().expect("not poisoned").push(g.clone());
            Ok(())
        });
    (p, kept)
}

fn times(g: &Group<u32, Reading>) -> Vec<u64> {
    g.records.iter().map(|r| r.ts_ms).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_relative_timestamps_are_grouped_by_their_gaps_on_event_time_only() {
    // From 0, 100 ms apart; the source goes idle in the middle of the first run (under the wall
    // clock that idle spell would complete the group: its times are 56 years behind the clock).
    let first: Vec<Reading> = (0..5).map(|i| reading(1, i * 100)).collect();
    let rest: Vec<Reading> = (5..10).map(|i| reading(1, i * 100)).collect();
    let after_gap = vec![reading(1, 6_000), reading(1, 6_100)];
    let source = Scripted::new(
        vec![Some(first), None, None, None, Some(rest), Some(after_gap)],
        true,
    );
    let committed = Arc::clone(&source.committed);
    let (p, kept) = pipeline(WindowPolicy::after_inactivity(Duration::from_secs(2)));
    let report = p
        .event_time_only()
        .run_records(source, std::future::pending())
        .await
        .expect("run");
    let groups = kept.lock().expect("not poisoned").clone();
    let outline: Vec<(Vec<u64>, CompletionReason)> =
        groups.iter().map(|g| (times(g), g.reason)).collect();
    assert_eq!(
        outline,
        vec![
            (
                (0..10).map(|i| i * 100).collect(),
                CompletionReason::Inactivity
            ),
            (vec![6_000, 6_100], CompletionReason::EndOfInput),
        ]
    );
    assert_eq!(report.groups_out, 2);
    assert_eq!(*committed.lock().expect("not poisoned"), Some(12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_ahead_of_the_clock_is_held_to_the_clock_and_flushed_at_shutdown() {
    let now = 1_700_000_000_000;
    // Device 2's clock runs a minute fast. Its reading must not move time a minute on, which
    // would complete device 1's group before its second reading, 1 s later, could join.
    let source = Scripted::new(
        vec![
            Some(vec![reading(1, now), reading(2, now + 60_000)]),
            Some(vec![reading(1, now + 1_000)]),
        ],
        false,
    );
    let (p, kept) = pipeline(WindowPolicy::after_inactivity(Duration::from_secs(2)));
    let p = p.clock(Arc::new(ManualClock::new(now)));
    let metrics = p.metrics_handle();
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopped = Arc::clone(&stop);
    let run = tokio::spawn(p.run_records(source, async move { stopped.notified().await }));
    for _ in 0..4_000 {
        if metrics
            .messages_in
            .load(std::sync::atomic::Ordering::SeqCst)
            == 3
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        kept.lock().expect("not poisoned").is_empty(),
        "nothing completes while the clock stands still"
    );
    stop.notify_one();
    let report = run.await.expect("join").expect("run");
    let mut groups = kept.lock().expect("not poisoned").clone();
    groups.sort_by_key(|g| g.key);
    let outline: Vec<(u32, Vec<u64>, CompletionReason)> =
        groups.iter().map(|g| (g.key, times(g), g.reason)).collect();
    assert_eq!(
        outline,
        vec![
            (1, vec![now, now + 1_000], CompletionReason::EndOfInput),
            (2, vec![now + 60_000], CompletionReason::EndOfInput),
        ]
    );
    assert_eq!(report.groups_out, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_source_groups_as_the_iterator_does() {
    let readings: Vec<Reading> = (0..7u64).map(|i| reading(1, i * 700)).collect();
    let policy = WindowPolicy::after_inactivity(Duration::from_secs(1))
        .max_records(std::num::NonZeroUsize::new(3).expect("not zero"));
    let (p, kept) = pipeline(policy);
    let report = p
        .event_time_only()
        .run_records(
            confab_pipeline::from_stream(futures::stream::iter(readings)),
            std::future::pending(),
        )
        .await
        .expect("run");
    let mut sizes: Vec<(usize, CompletionReason)> = kept
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|g| (g.len(), g.reason))
        .collect();
    sizes.sort();
    assert_eq!(
        sizes,
        [
            (1, CompletionReason::EndOfInput),
            (3, CompletionReason::MaxMessages),
            (3, CompletionReason::MaxMessages)
        ]
    );
    assert_eq!(report.messages_in, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_without_ids_get_group_ids_from_their_positions_the_same_on_every_run() {
    let readings: Vec<Reading> = (0..6u32)
        .map(|i| reading(i % 2, u64::from(i) * 10))
        .collect();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (p, kept) = pipeline(WindowPolicy::after_inactivity(Duration::from_secs(1)));
        p.event_time_only()
            .run_records(from_iter(readings.clone()), std::future::pending())
            .await
            .expect("run");
        let mut groups = kept.lock().expect("not poisoned").clone();
        groups.sort_by_key(|g| g.key);
        ids.push(groups.iter().map(|g| g.id).collect::<Vec<_>>());
    }
    // Device 0's first reading is at offset 0, device 1's at offset 1.
    assert_eq!(ids[0], vec![group_id("0", "0@0"), group_id("1", "0@1")]);
    assert_eq!(ids[0], ids[1]);
}

/// A key of two fields, with no serde: a newtype with a `Display`, whose text the group id is
/// derived from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Sensor(u32, &'static str);

impl std::fmt::Display for Sensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.0, self.1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_needs_no_serde_and_its_text_makes_the_group_id() {
    let readings = vec![reading(7, 0), reading(7, 10)];
    let kept: Arc<Mutex<Vec<Group<Sensor, Reading>>>> = Arc::default();
    let sink = Arc::clone(&kept);
    Pipeline::typed(|r: &Reading| Sensor(r.device, "temperature"))
        .policy(WindowPolicy::after_inactivity(Duration::from_secs(1)))
        .event_time_only()
        .sink_fn("keep", move |g: &Group<Sensor, Reading>| {
            sink.lock().expect("not poisoned").push(g.clone());
            Ok(())
        })
        .run_records(from_iter(readings), std::future::pending())
        .await
        .expect("run");
    let groups = kept.lock().expect("not poisoned").clone();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].id, group_id("7/temperature", "0@0"));
}
