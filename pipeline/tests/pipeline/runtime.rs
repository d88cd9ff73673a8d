//! The runtime on the in-memory log: crashes and restarts, idle completion in virtual time,
//! graceful shutdown, dead letters.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use confab_pipeline::chat::{iso_from_ms, timeuuid_from_ms};
use confab_pipeline::memory::{MemoryDeadLetters, MemoryLog, MemorySink};
use confab_pipeline::{
    Aggregatable, ChatMessage, CompletionReason, DecodeError, Group, ManualClock, Pipeline,
    PipelineError, RunReport, RuntimeConfig, Sink, SinkError, Source, SourceRecord, WindowPolicy,
};
use tokio::sync::Notify;

fn chat_message(i: u64, chat: u64, ms: u64) -> ChatMessage {
    ChatMessage {
        message_id: format!("m{i}").into(),
        chat_id: format!("chat-{chat}").into(),
        from_user: format!("u{}", i % 2).into(),
        to_user: format!("u{}", (i + 1) % 2).into(),
        body: format!("message number {i}").into(),
        time: timeuuid_from_ms(ms, (i % 10_000) as u16, [0, 0, 0, 0, 0, 1]),
        time_iso: iso_from_ms(ms).into(),
    }
}

/// A policy under which groups complete only at `max_messages` (or at the end): its timeouts
/// are an hour long, far beyond any test's clock.
fn hour_long_timeouts(max_messages: usize) -> WindowPolicy {
    WindowPolicy {
        inactivity_timeout_ms: 3_600_000,
        max_age_ms: 3_600_000,
        max_messages,
        ..WindowPolicy::default()
    }
}

/// Runs `p` on `source` in a task until the returned `Notify` is notified (or the input ends).
fn run_until_stopped<S: Source + Send + Sync + 'static>(
    p: Pipeline<String, ChatMessage>,
    source: S,
) -> (
    tokio::task::JoinHandle<Result<RunReport, PipelineError>>,
    Arc<Notify>,
) {
    let stop = Arc::new(Notify::new());
    let stopped = Arc::clone(&stop);
    let run = tokio::spawn(p.run(source, async move { stopped.notified().await }));
    (run, stop)
}

fn decode(record: &SourceRecord) -> Result<ChatMessage, DecodeError> {
    ChatMessage::decode(&record.payload, usize::MAX)
}

fn pipeline(
    sinks: Vec<Arc<dyn Sink<String, ChatMessage>>>,
    dead: MemoryDeadLetters,
    policy: WindowPolicy,
    config: RuntimeConfig,
) -> Pipeline<String, ChatMessage> {
    let mut p = Pipeline::new(
        |m: &ChatMessage| m.chat_id.to_string(),
        decode,
        Arc::new(dead),
    )
    .policy(policy)
    .config(config);
    for sink in sinks {
        p = p.sink(sink);
    }
    p
}

/// A sink that fails at random (retryably), keeps every group it accepts, and announces each
/// accepted write so the test can crash the pipeline at a chosen point.
struct FlakySink {
    kept: MemorySink<String, ChatMessage>,
    seed: AtomicU64,
    fail_percent: u64,
    writes: AtomicUsize,
    written: Notify,
}

#[async_trait]
impl Sink<String, ChatMessage> for FlakySink {
    fn name(&self) -> &str {
        "flaky"
    }
    async fn write(&self, groups: &[Group<String, ChatMessage>]) -> Result<(), SinkError> {
        // xorshift: reproducible failures.
        let mut x = self.seed.load(SeqCst);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed.store(x, SeqCst);
        if x % 100 < self.fail_percent {
            return Err(SinkError::retryable("injected failure"));
        }
        self.kept.write(groups).await?;
        self.writes.fetch_add(1, SeqCst);
        self.written.notify_waiters();
        Ok(())
    }
}

/// The crash tests' log: 3,000 messages over 40 chats in three partitions, a random 0-400 ms
/// apart (so each chat has a message every 8 s on average, and gaps from a few ms to a minute).
fn crash_test_log() -> (MemoryLog, BTreeMap<String, Vec<String>>) {
    let log = MemoryLog::new(3);
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut ms = 1_700_000_000_000;
    let mut x = 88_172_645_463_325_252u64;
    for i in 0..3_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ms += x % 400;
        let chat = x % 40;
        let m = chat_message(i, chat, ms);
        expected
            .entry(m.chat_id.to_string())
            .or_default()
            .push(m.message_id.to_string());
        log.append(m.chat_id.as_bytes(), m.encode());
    }
    log.close();
    (log, expected)
}

fn crash_test_config() -> RuntimeConfig {
    RuntimeConfig {
        workers: 2,
        poll_max_records: 37,
        commit_interval_ms: 0,
        sink_batch_max_groups: 3,
        retry_initial_ms: 1,
        retry_max_ms: 5,
        ..RuntimeConfig::default()
    }
}

/// Runs `policy` over the crash tests' log with a sink that fails at random, crashing the
/// pipeline ten times mid-run (each restart resumes from what was committed), then to the end.
/// Checks that it committed to the end and returns every group the sink accepted, replays
/// included, in the order written.
fn run_with_crashes(
    log: &MemoryLog,
    policy: WindowPolicy,
    consumer: &str,
) -> Vec<Group<String, ChatMessage>> {
    let sink = Arc::new(FlakySink {
        kept: MemorySink::default(),
        seed: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
        fail_percent: 20,
        writes: AtomicUsize::new(0),
        written: Notify::new(),
    });
    let config = crash_test_config();

    // Crash after a varying number of accepted writes, ten times, then run to the end.
    let mut crashes = 0;
    for crash_after in [1usize, 4, 2, 9, 3, 7, 5, 11, 6, 8] {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let sink_dyn: Arc<dyn Sink<String, ChatMessage>> = sink.clone();
        let p = pipeline(
            vec![sink_dyn],
            MemoryDeadLetters::default(),
            policy,
            config.clone(),
        );
        let source = log.source(consumer);
        let start = sink.writes.load(SeqCst);
        let sink_ref = Arc::clone(&sink);
        let finished = rt.block_on(async move {
            let run = tokio::spawn(p.run(source, std::future::pending()));
            loop {
                let notified = sink_ref.written.notified();
                if sink_ref.writes.load(SeqCst) >= start + crash_after || run.is_finished() {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            }
            run.is_finished()
        });
        // A crash: every task stops where it is; nothing is flushed or committed.
        rt.shutdown_background();
        if finished {
            break;
        }
        crashes += 1;
    }
    assert!(
        crashes >= 5,
        "the pipeline was crashed mid-run {crashes} times"
    );

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let p = pipeline(
        vec![sink.clone()],
        MemoryDeadLetters::default(),
        policy,
        config,
    );
    let report = rt
        .block_on(p.run(log.source(consumer), std::future::pending()))
        .expect("final run");
    assert_eq!(report.unacknowledged_groups, 0);
    assert_eq!(
        log.committed(consumer),
        log.end_offsets(),
        "committed to the end"
    );
    sink.kept.groups()
}

/// Keeps the last write of each group id, as a document store does with upserts.
fn by_group_id(
    written: &[Group<String, ChatMessage>],
) -> HashMap<uuid::Uuid, Group<String, ChatMessage>> {
    let mut by_id = HashMap::new();
    for g in written {
        by_id.insert(g.id, g.clone());
    }
    by_id
}

/// Every message in exactly one group, in log order, every chat whole.
fn assert_every_message_once(
    by_id: &HashMap<uuid::Uuid, Group<String, ChatMessage>>,
    expected: &BTreeMap<String, Vec<String>>,
) {
    let mut seen: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    let mut copies: HashMap<String, usize> = HashMap::new();
    for g in by_id.values() {
        for m in &g.records {
            *copies.entry(m.message_id.to_string()).or_default() += 1;
            let index: u64 = m.message_id[1..].parse().expect("id");
            seen.entry(g.key.clone())
                .or_default()
                .push((index, m.message_id.to_string()));
        }
        let ids: Vec<u64> = g
            .records
            .iter()
            .map(|m| m.message_id[1..].parse().unwrap_or(0))
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "log order inside group {}",
            g.id
        );
    }
    assert!(
        copies.values().all(|&n| n == 1),
        "every message in exactly one group"
    );
    for (chat, ids) in expected {
        let mut got = seen.remove(chat).unwrap_or_default();
        got.sort();
        let got: Vec<String> = got.into_iter().map(|(_, id)| id).collect();
        assert_eq!(&got, ids, "every message of {chat}, once");
    }
    assert!(seen.is_empty());
}

#[test]
fn crashes_and_restarts_lose_nothing_and_double_nothing_after_dedup_by_group_id() {
    let (log, expected) = crash_test_log();
    let policy = WindowPolicy {
        inactivity_timeout_ms: 3_000,
        max_messages: 10,
        max_bytes: 64 * 1024,
        max_age_ms: 10_000,
        ..WindowPolicy::default()
    };
    let written = run_with_crashes(&log, policy, "aggregator");
    let by_id = by_group_id(&written);
    assert!(written.len() > by_id.len(), "replays rewrote some groups");
    assert_every_message_once(&by_id, &expected);
}

/// The leading edge makes a record's group depend on its key's previous record, which may lie
/// before the committed position: a restart there would write the next record alone, and a
/// document already written under its id would be rewritten with different messages (the dedup
/// by id of the test above hides that). With the conversations held back from commits, the
/// crashed runs write exactly the groups of one uninterrupted run, each id always with the same
/// messages.
#[test]
fn crashes_and_restarts_with_a_leading_edge_rewrite_the_same_groups_as_one_clean_run() {
    let (log, expected) = crash_test_log();
    let policy = WindowPolicy {
        inactivity_timeout_ms: 3_000,
        max_messages: 10,
        max_bytes: 64 * 1024,
        max_age_ms: 10_000,
        leading_edge_idle_ms: 5_000,
    };
    let written = run_with_crashes(&log, policy, "aggregator");
    let by_id = by_group_id(&written);
    assert!(written.len() > by_id.len(), "replays rewrote some groups");
    for g in &written {
        assert_eq!(
            g.records, by_id[&g.id].records,
            "group {} was written twice with different messages",
            g.id
        );
    }
    assert_every_message_once(&by_id, &expected);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let clean = MemorySink::default();
    let p = pipeline(
        vec![Arc::new(clean.clone())],
        MemoryDeadLetters::default(),
        policy,
        crash_test_config(),
    );
    rt.block_on(p.run(log.source("clean"), std::future::pending()))
        .expect("clean run");
    let outline = |groups: &HashMap<uuid::Uuid, Group<String, ChatMessage>>| {
        let mut v: Vec<(uuid::Uuid, Vec<String>)> = groups
            .values()
            .map(|g| {
                let ids = g.records.iter().map(|m| m.message_id.to_string());
                (g.id, ids.collect())
            })
            .collect();
        v.sort();
        v
    };
    let clean = by_group_id(&clean.groups());
    let leading = clean
        .values()
        .filter(|g| g.reason == CompletionReason::LeadingEdge)
        .count();
    assert!(
        leading > 100 && leading < clean.len(),
        "the log has leading edges ({leading}) and other groups ({})",
        clean.len()
    );
    assert_eq!(outline(&by_id), outline(&clean), "the groups of the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_chat_completes_by_inactivity_in_virtual_time() {
    let log = MemoryLog::new(1);
    let start = 1_700_000_000_000;
    let clock = ManualClock::new(start);
    let m = chat_message(1, 1, start);
    log.append(m.chat_id.as_bytes(), m.encode());
    let sink = MemorySink::default();
    let policy = WindowPolicy {
        inactivity_timeout_ms: 3_000,
        ..WindowPolicy::default()
    };
    let config = RuntimeConfig {
        lateness_ms: 200,
        poll_wait_ms: 5,
        ..RuntimeConfig::default()
    };
    let p = pipeline(
        vec![Arc::new(sink.clone())],
        MemoryDeadLetters::default(),
        policy,
        config,
    )
    .clock(Arc::new(clock.clone()));
    let metrics = p.metrics_handle();
    let (run, stop) = run_until_stopped(p, log.source("g"));

    // The record is read, and virtual time stands just short of its deadline plus lateness.
    wait_until(|| metrics.messages_in.load(SeqCst) == 1).await;
    clock.set(start + 3_000 + 199);
    wait_until(|| metrics.open_groups.load(SeqCst) == 1).await;
    tokio::task::yield_now().await;
    assert!(sink.groups().is_empty(), "not complete before the deadline");

    // Virtual time passes the deadline: the group completes with no further record.
    clock.set(start + 3_000 + 200);
    wait_until(|| !sink.groups().is_empty()).await;
    let groups = sink.groups();
    assert_eq!(groups[0].reason, CompletionReason::Inactivity);
    assert_eq!(groups[0].records, vec![m]);
    stop.notify_one();
    let report = run.await.expect("join").expect("run");
    assert_eq!(report.groups_out, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_every_open_group_and_commits_to_the_end() {
    let log = MemoryLog::new(2);
    let start = 1_700_000_000_000;
    for i in 0..50 {
        let m = chat_message(i, i % 7, start + i * 10);
        log.append(m.chat_id.as_bytes(), m.encode());
    }
    let sink = MemorySink::default();
    // Nothing would complete on its own for an hour.
    let policy = hour_long_timeouts(1_000);
    let clock = ManualClock::new(start);
    let p = pipeline(
        vec![Arc::new(sink.clone())],
        MemoryDeadLetters::default(),
        policy,
        RuntimeConfig::default(),
    )
    .clock(Arc::new(clock));
    let metrics = p.metrics_handle();
    let (run, stop) = run_until_stopped(p, log.source("g"));
    wait_until(|| metrics.open_groups.load(SeqCst) == 7).await;
    assert!(sink.groups().is_empty());
    stop.notify_one();
    let report = run.await.expect("join").expect("run");

    let groups = sink.groups();
    assert_eq!(groups.len(), 7);
    assert!(groups
        .iter()
        .all(|g| g.reason == CompletionReason::EndOfInput));
    assert_eq!(groups.iter().map(|g| g.len()).sum::<usize>(), 50);
    assert_eq!(log.committed("g"), log.end_offsets());
    assert_eq!(report.committed, log.end_offsets());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_go_to_the_dead_letter_sink_with_a_reason_and_the_rest_flows() {
    let log = MemoryLog::new(1);
    let start = 1_700_000_000_000;
    let good = chat_message(1, 1, start);
    log.append(b"k", b"\xff not json".to_vec());
    log.append(good.chat_id.as_bytes(), good.encode());
    log.append(b"k", br#"{"chat_id":"c1"}"#.to_vec());
    log.append(b"k", vec![b'x'; 100_000]);
    log.close();
    let sink = MemorySink::default();
    let dead = MemoryDeadLetters::default();
    let p = pipeline(
        vec![Arc::new(sink.clone())],
        dead.clone(),
        WindowPolicy::default(),
        RuntimeConfig::default(),
    );
    let report = p
        .run(log.source("g"), std::future::pending())
        .await
        .expect("run");

    assert_eq!(report.dead_letters, 3);
    let letters = dead.letters();
    let reasons: Vec<&str> = letters.iter().map(|l| l.reason.as_str()).collect();
    assert!(reasons[0].contains("not a chat message"), "{reasons:?}");
    assert!(reasons[1].contains("missing field"), "{reasons:?}");
    assert_eq!(
        reasons[2],
        "record is 100000 bytes, over the max_record_bytes limit of 65536"
    );
    // The reason is the decoder's error, word for word.
    let refusal = ChatMessage::decode(b"\xff not json", usize::MAX).expect_err("refused");
    assert_eq!(reasons[0], refusal.to_string());
    assert_eq!(letters[0].payload, b"\xff not json");
    assert_eq!(sink.groups().len(), 1);
    assert_eq!(
        log.committed("g"),
        log.end_offsets(),
        "dead letters are committed past too"
    );
}

/// Polls `done` until it holds (the pipeline runs on other threads); fails after 20 s.
async fn wait_until(done: impl Fn() -> bool) {
    for _ in 0..4_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not reached within 20 s");
}

/// A sink that fails (retryably) while its gate is closed, like a server that is down.
struct DownSink {
    up: std::sync::atomic::AtomicBool,
    kept: MemorySink<String, ChatMessage>,
}

#[async_trait]
impl Sink<String, ChatMessage> for DownSink {
    fn name(&self) -> &str {
        "down"
    }
    async fn write(&self, groups: &[Group<String, ChatMessage>]) -> Result<(), SinkError> {
        if !self.up.load(SeqCst) {
            return Err(SinkError::retryable("server unavailable"));
        }
        self.kept.write(groups).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_sink_pauses_the_source_instead_of_buffering_without_bound() {
    let log = MemoryLog::new(2);
    let start = 1_700_000_000_000;
    for i in 0..2_000 {
        let m = chat_message(i, i % 50, start + i);
        log.append(m.chat_id.as_bytes(), m.encode());
    }
    let sink = Arc::new(DownSink {
        up: false.into(),
        kept: MemorySink::default(),
    });
    let policy = WindowPolicy {
        max_messages: 1,
        ..WindowPolicy::default()
    };
    let cap = 20_000;
    let config = RuntimeConfig {
        max_unacked_bytes: cap,
        poll_max_records: 16,
        poll_wait_ms: 5,
        retry_initial_ms: 1,
        retry_max_ms: 20,
        ..RuntimeConfig::default()
    };
    let p = pipeline(
        vec![sink.clone()],
        MemoryDeadLetters::default(),
        policy,
        config,
    );
    let metrics = p.metrics_handle();
    let (run, stop) = run_until_stopped(p, log.source("g"));

    wait_until(|| metrics.backpressure_pauses.load(SeqCst) > 20).await;
    let read_while_down = metrics.messages_in.load(SeqCst);
    let record_bytes = chat_message(0, 0, start).encode().len() as u64;
    assert!(
        read_while_down * record_bytes <= cap + 16 * record_bytes * 4,
        "read {read_while_down} records ({} bytes) with the sink down; cap {cap}",
        read_while_down * record_bytes
    );
    assert!(metrics.sink_retries.load(SeqCst) > 0);
    assert!(sink.kept.groups().is_empty());

    // The server comes back: everything flows and is committed.
    sink.up.store(true, SeqCst);
    wait_until(|| metrics.messages_out.load(SeqCst) == 2_000).await;
    stop.notify_one();
    run.await.expect("join").expect("run");
    assert_eq!(sink.kept.groups().len(), 2_000);
    assert_eq!(log.committed("g"), log.end_offsets());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_partitions_open_groups_are_left_to_its_next_owner() {
    // Regression: the old owner flushed its half-built groups of a revoked partition at shutdown,
    // after the new owner had written the whole groups under the same ids, overwriting them.
    let log = MemoryLog::new(2);
    let start = 1_700_000_000_000;
    let append = |from: u64, to: u64| {
        for i in from..to {
            let m = chat_message(i, i % 20, start + i * 10);
            log.append(m.chat_id.as_bytes(), m.encode());
        }
    };
    append(0, 1_000);
    // Groups stay open for an hour unless they reach 7 messages.
    let policy = hour_long_timeouts(7);
    let config = RuntimeConfig {
        commit_interval_ms: 0,
        poll_wait_ms: 5,
        ..RuntimeConfig::default()
    };
    let sink = MemorySink::default();
    let spawn = |partitions: &[u32]| {
        let p = pipeline(
            vec![Arc::new(sink.clone())],
            MemoryDeadLetters::default(),
            policy,
            config.clone(),
        )
        .clock(Arc::new(ManualClock::new(start)));
        let metrics = p.metrics_handle();
        let source = log.source_assigned("g", partitions);
        let revoker = source.revoker();
        let (run, stop) = run_until_stopped(p, source);
        (metrics, revoker, stop, run)
    };

    let (a_metrics, a_revoker, a_stop, a_run) = spawn(&[0, 1]);
    wait_until(|| a_metrics.messages_in.load(SeqCst) == 1_000).await;
    a_revoker.revoke(&[1]);
    wait_until(|| a_revoker.is_done()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The partition's next owner starts from what the old owner committed, and more traffic comes.
    let b_start = log.committed("g")[1].offset;
    let (b_metrics, _, b_stop, b_run) = spawn(&[1]);
    append(1_000, 2_000);
    let p1_total = log.end_offsets()[1].offset;
    wait_until(|| b_metrics.messages_in.load(SeqCst) == p1_total - b_start).await;
    b_stop.notify_one();
    b_run.await.expect("join").expect("b");
    // The old owner stops last: were it to flush its old groups of partition 1, they would land
    // after the new owner's.
    a_stop.notify_one();
    a_run.await.expect("join").expect("a");

    let mut by_id: HashMap<uuid::Uuid, Group<String, ChatMessage>> = HashMap::new();
    for g in sink.groups() {
        by_id.insert(g.id, g);
    }
    let mut copies: HashMap<String, usize> = HashMap::new();
    for g in by_id.values() {
        for m in &g.records {
            *copies.entry(m.message_id.to_string()).or_default() += 1;
        }
    }
    let partition_1: Vec<String> = (0..2_000)
        .map(|i| chat_message(i, i % 20, start + i * 10))
        .filter(|m| log.end_offsets().len() == 2 && partition_of(&log, &m.chat_id) == 1)
        .map(|m| m.message_id.to_string())
        .collect();
    assert!(!partition_1.is_empty());
    for id in &partition_1 {
        assert_eq!(
            copies.get(id),
            Some(&1),
            "{id} of partition 1 once, after dedup by group id"
        );
    }
    assert_eq!(
        log.committed("g")[1],
        log.end_offsets()[1],
        "the new owner committed to the end"
    );
}

/// The partition the memory log puts `key` in (the same hash it uses).
fn partition_of(log: &MemoryLog, key: &str) -> u32 {
    let probe = MemoryLog::new(log.end_offsets().len() as u32);
    probe.append(key.as_bytes(), Vec::new()).partition
}

/// A restart with a backlog: the source hands out one partition's records before the other's,
/// and the partition read first holds later messages. Time must wait for the unread partition,
/// or its older messages arrive late and their groups depend on the batching instead of the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_read_one_partition_after_another_forms_the_groups_of_the_log() {
    let log = MemoryLog::new(2);
    let start = 1_700_000_000_000;
    let chat_in = |partition: u32| {
        (0..)
            .find(|c| partition_of(&log, &format!("chat-{c}")) == partition)
            .unwrap_or(0)
    };
    let (late_chat, early_chat) = (chat_in(0), chat_in(1));
    for i in 0..40 {
        // Partition 0, read first: a chat a hundred seconds later than partition 1's.
        let m = chat_message(i, late_chat, start + 100_000 + i * 100);
        log.append(m.chat_id.as_bytes(), m.encode());
        let m = chat_message(100 + i, early_chat, start + i * 100);
        log.append(m.chat_id.as_bytes(), m.encode());
    }
    let sink = MemorySink::default();
    let policy = WindowPolicy {
        inactivity_timeout_ms: 1_000,
        max_messages: 1_000,
        max_age_ms: 3_600_000,
        ..WindowPolicy::default()
    };
    let config = RuntimeConfig {
        lateness_ms: 200,
        poll_wait_ms: 5,
        poll_max_records: 3,
        ..RuntimeConfig::default()
    };
    let clock = ManualClock::new(start + 200_000);
    let p = pipeline(
        vec![Arc::new(sink.clone())],
        MemoryDeadLetters::default(),
        policy,
        config,
    )
    .clock(Arc::new(clock));
    let (run, stop) = run_until_stopped(p, log.source("g"));
    // Once both partitions are read, the idle clock completes both chats by inactivity.
    wait_until(|| sink.groups().iter().map(|g| g.len()).sum::<usize>() == 80).await;
    stop.notify_one();
    run.await.expect("join").expect("run");

    let groups = sink.groups();
    let sizes: Vec<(String, usize)> = groups.iter().map(|g| (g.key.clone(), g.len())).collect();
    assert_eq!(
        groups.len(),
        2,
        "one group per chat, as the log says: {sizes:?}"
    );
    assert!(groups
        .iter()
        .all(|g| g.len() == 40 && g.reason == CompletionReason::Inactivity));
}

/// Chats interleaved at random in a busy log: their groups overlap, so (almost) no offset lies
/// outside every group, and commit-after-ack, which commits only where no acknowledged group
/// straddles the position, could not move while the traffic lasted. Epochs of event time give
/// the log such points: here the committed offsets reach each epoch's start while the pipeline
/// runs, and every message is still in exactly one group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_move_through_a_busy_log_of_overlapping_groups_at_each_epoch() {
    const EPOCH_MS: u64 = 1_000;
    let log = MemoryLog::new(2);
    // An epoch boundary, so record i is at boundary + 10 i ms: 100 records per epoch.
    let start = 1_700_000_040_000;
    assert_eq!(start % EPOCH_MS, 0);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut last_epoch_start = vec![None; 2];
    let records = 2_000;
    for i in 0..records {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ms = start + i * 10;
        let m = chat_message(i, x % 20, ms);
        let at = log.append(m.chat_id.as_bytes(), m.encode());
        // The first offset of the last epoch, per partition.
        let first_of_last = ms >= start + (records * 10 / EPOCH_MS - 1) * EPOCH_MS;
        let slot = &mut last_epoch_start[at.partition as usize];
        if first_of_last && slot.is_none() {
            *slot = Some(at.offset);
        }
    }
    let sink = MemorySink::default();
    // Groups close only at 10 messages (or at an epoch's end): no timeout fires in this test.
    let policy = hour_long_timeouts(10);
    let clock = ManualClock::new(start);
    let config = RuntimeConfig {
        commit_interval_ms: 10,
        commit_epoch_ms: EPOCH_MS,
        ..RuntimeConfig::default()
    };
    let p = pipeline(
        vec![Arc::new(sink.clone())],
        MemoryDeadLetters::default(),
        policy,
        config,
    )
    .clock(Arc::new(clock.clone()));
    let (run, stop) = run_until_stopped(p, log.source("g"));

    // The clock moves only for the commit interval (10 ms a step, 20 s at most: far below the
    // hour-long timeouts, so it closes no group).
    let reached = |committed: &[confab_pipeline::Position]| {
        committed
            .iter()
            .all(|c| c.offset >= last_epoch_start[c.partition as usize].unwrap_or(0))
    };
    for _ in 0..2_000 {
        if reached(&log.committed("g")) {
            break;
        }
        clock.advance(10);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let committed = log.committed("g");
    assert!(
        reached(&committed),
        "committed {committed:?} while running, not yet the last epoch's start {last_epoch_start:?}"
    );
    let epoch_groups = sink
        .groups()
        .iter()
        .filter(|g| g.reason == CompletionReason::Epoch)
        .count();
    assert!(epoch_groups > 0, "no group was closed by an epoch");

    stop.notify_one();
    run.await.expect("join").expect("run");
    let groups = sink.groups();
    let mut seen: Vec<String> = groups
        .iter()
        .flat_map(|g| g.records.iter().map(|m| m.message_id.to_string()))
        .collect();
    seen.sort();
    let mut expected: Vec<String> = (0..records).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(seen, expected, "every message in exactly one group");
    for g in &groups {
        let epochs: std::collections::BTreeSet<u64> = g
            .records
            .iter()
            .map(|m| m.event_time_ms() / EPOCH_MS)
            .collect();
        assert_eq!(epochs.len(), 1, "group {} spans epochs {epochs:?}", g.id);
    }
    assert_eq!(log.committed("g"), log.end_offsets());
}

/// A reading that holds a share of a counter while it lives: what a run still holds of its
/// records is the counter's share count less one.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Held {
    device: u32,
    at_ms: u64,
    /// Never read: what counts is that it is dropped with the record.
    #[serde(skip)]
    _alive: Arc<()>,
}

impl Aggregatable for Held {
    fn event_time_ms(&self) -> u64 {
        self.at_ms
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_read_is_dropped_once_the_run_ends() {
    // Written groups go back to the reader to be dropped on its thread; once the reading ends
    // nothing takes them, so the sinks' last groups must be dropped where they are written.
    let alive = Arc::new(());
    let records: Vec<Held> = (0..20_000u64)
        .map(|i| Held {
            device: (i % 97) as u32,
            at_ms: i,
            _alive: Arc::clone(&alive),
        })
        .collect();
    let written = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&written);
    let report = Pipeline::typed(|r: &Held| r.device)
        .sink_fn("count", move |g: &Group<u32, Held>| {
            counted.fetch_add(g.records.len(), SeqCst);
            Ok(())
        })
        .policy(hour_long_timeouts(10))
        .event_time_only()
        .run_records(confab_pipeline::from_iter(records), std::future::pending())
        .await
        .expect("runs");
    assert_eq!(report.messages_in, 20_000);
    assert_eq!(written.load(SeqCst), 20_000);
    assert_eq!(
        Arc::strong_count(&alive),
        1,
        "records still held after the run"
    );
}
