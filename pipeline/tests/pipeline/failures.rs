//! How a run ends when something fails: a sink that cannot go on, a sink that refuses one
//! group for good, a panicking sink or key function, a configuration that cannot work. Each
//! says what it is, and nothing after the failed group is committed.

use std::sync::Arc;

use async_trait::async_trait;
use confab_pipeline::chat::{iso_from_ms, timeuuid_from_ms};
use confab_pipeline::memory::{MemoryDeadLetters, MemoryLog, MemorySink};
use confab_pipeline::{
    ChatMessage, DeadLetter, DeadLetterSink, DecodeError, ErrorKind, Group, Metrics, Pipeline,
    PipelineError, RunReport, RuntimeConfig, Sink, SinkError, SourceRecord, WindowPolicy,
};

const START: u64 = 1_700_000_000_000;

fn message(i: u64, chat: &str) -> ChatMessage {
    ChatMessage {
        message_id: format!("m{i}").into(),
        chat_id: chat.into(),
        from_user: "u1".into(),
        to_user: "u2".into(),
        body: format!("message {i}").into(),
        time: timeuuid_from_ms(START + i, i as u16, [0, 0, 0, 0, 0, 1]),
        time_iso: iso_from_ms(START + i).into(),
    }
}

/// One partition: chats a, b, c, two messages each, in that order (offsets 0-5). The payloads
/// are pretty-printed JSON, which no encoder of ours writes, so a dead letter holding them holds
/// the bytes as read. One of chat b's bodies holds an escape sequence: a message decoded from
/// such JSON does not hold its bytes whole, so the runtime keeps them beside it.
fn three_chats() -> MemoryLog {
    let log = MemoryLog::new(1);
    for (i, chat) in ["a", "a", "b", "b", "c", "c"].into_iter().enumerate() {
        let mut m = message(i as u64, chat);
        if i == 3 {
            m.body = "a \"quoted\" body".into();
        }
        let pretty = serde_json::to_vec_pretty(&m).expect("encodes");
        log.append(b"all", pretty);
    }
    log.close();
    log
}

fn decode(record: &SourceRecord) -> Result<ChatMessage, DecodeError> {
    ChatMessage::decode(&record.payload, usize::MAX)
}

/// Groups of two messages, written one group per sink batch, one batch at a time: the order of
/// writes is the log's.
fn pipeline(
    sink: Arc<dyn Sink<String, ChatMessage>>,
    dead: MemoryDeadLetters,
    batch: usize,
) -> Pipeline<String, ChatMessage> {
    Pipeline::new(
        |m: &ChatMessage| m.chat_id.to_string(),
        decode,
        Arc::new(dead),
    )
    .sink(sink)
    .policy(WindowPolicy {
        max_messages: 2,
        inactivity_timeout_ms: 3_600_000,
        max_age_ms: 3_600_000,
        ..WindowPolicy::default()
    })
    .config(RuntimeConfig {
        sink_batch_max_groups: batch,
        sink_concurrency: 1,
        retry_initial_ms: 1,
        commit_interval_ms: 0,
        ..RuntimeConfig::default()
    })
}

/// What a sink does with chat b's group; every other group it keeps.
#[derive(Clone, Copy)]
enum OnChatB {
    Fatal,
    Reject,
    Panic,
}

struct Picky {
    kept: MemorySink<String, ChatMessage>,
    on_b: OnChatB,
}

#[async_trait]
impl Sink<String, ChatMessage> for Picky {
    fn name(&self) -> &str {
        "picky"
    }
    async fn write(&self, groups: &[Group<String, ChatMessage>]) -> Result<(), SinkError> {
        if groups.iter().any(|g| g.key == "b") {
            match self.on_b {
                OnChatB::Fatal => return Err(SinkError::fatal("credentials expired")),
                OnChatB::Reject => return Err(SinkError::rejected("chat b is not welcome")),
                OnChatB::Panic => panic!("picky sink blew up on chat b"),
            }
        }
        self.kept.write(groups).await
    }
}

async fn run_with(on_b: OnChatB, batch: usize) -> (Result<RunReport, PipelineError>, Setup) {
    let log = three_chats();
    let kept = MemorySink::default();
    let dead = MemoryDeadLetters::default();
    let sink = Arc::new(Picky {
        kept: kept.clone(),
        on_b,
    });
    let result = pipeline(sink, dead.clone(), batch)
        .run(log.source("g"), std::future::pending())
        .await;
    (result, Setup { log, kept, dead })
}

struct Setup {
    log: MemoryLog,
    kept: MemorySink<String, ChatMessage>,
    dead: MemoryDeadLetters,
}

fn keys(sink: &MemorySink<String, ChatMessage>) -> Vec<String> {
    sink.groups().iter().map(|g| g.key.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_sink_error_ends_the_run_with_an_error_and_commits_nothing_past_the_group() {
    let (result, setup) = run_with(OnChatB::Fatal, 1).await;
    match result {
        Err(e @ PipelineError::Sink { .. }) => {
            let PipelineError::Sink { sink, source } = &e else {
                unreachable!()
            };
            assert_eq!(sink, "picky");
            assert_eq!(source.message, "credentials expired");
            assert_eq!(source.kind, ErrorKind::Fatal);
            // The cause is the error's source, so a chain printer ({:#} of anyhow) says it once.
            let cause = std::error::Error::source(&e).map(ToString::to_string);
            assert_eq!(cause.as_deref(), Some("credentials expired"));
            assert!(!e.to_string().contains("credentials expired"), "{e}");
        }
        other => panic!("expected a sink error, got {other:?}"),
    }
    assert!(
        setup.log.committed("g")[0].offset <= 2,
        "committed {:?}: not past chat b's first record (offset 2)",
        setup.log.committed("g")
    );
    assert!(setup.dead.letters().is_empty(), "nothing silently diverted");
    assert!(!keys(&setup.kept).contains(&"b".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_group_is_dead_lettered_with_its_original_bytes_and_counted_apart() {
    // Batches of up to 200 groups: the runtime finds the refused group among the batch's.
    for batch in [1, 200] {
        let (result, setup) = run_with(OnChatB::Reject, batch).await;
        let report = result.expect("a rejected group does not stop the run");
        assert_eq!(report.groups_out, 2, "a and c written");
        assert_eq!(report.groups_rejected, 1, "b rejected, counted apart");
        assert_eq!(report.dead_letters, 2, "b's two records");
        let mut written = keys(&setup.kept);
        written.sort();
        written.dedup();
        assert_eq!(written, ["a", "c"]);
        let letters = setup.dead.letters();
        let originals = setup.log.records();
        assert_eq!(letters.len(), 2);
        for (letter, offset) in letters.iter().zip([2u64, 3]) {
            assert_eq!(letter.position.offset, offset);
            assert_eq!(
                letter.payload, originals[offset as usize].payload,
                "the bytes as read"
            );
            assert!(
                letter.reason.contains("sink picky rejected group")
                    && letter.reason.contains("chat b is not welcome"),
                "{}",
                letter.reason
            );
        }
        assert_eq!(setup.log.committed("g"), setup.log.end_offsets());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_sink_is_an_error_with_its_message_not_zero_unacknowledged_groups() {
    let (result, setup) = run_with(OnChatB::Panic, 1).await;
    match result {
        Err(PipelineError::Panicked { message, .. }) => {
            assert_eq!(message, "picky sink blew up on chat b");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    assert!(setup.log.committed("g")[0].offset <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_key_function_surfaces_with_its_message() {
    // Without a leading edge the key function runs on the workers; with one, on the reading
    // task as well (to track conversations).
    for leading_edge_idle_ms in [0, 3_000] {
        a_panicking_key_function_under(leading_edge_idle_ms).await;
    }
}

async fn a_panicking_key_function_under(leading_edge_idle_ms: u64) {
    let log = three_chats();
    let result = Pipeline::new(
        |m: &ChatMessage| {
            assert!(m.chat_id.as_str() != "b", "no key for chat {}", m.chat_id);
            m.chat_id.to_string()
        },
        decode,
        Arc::new(MemoryDeadLetters::default()),
    )
    .sink(Arc::new(MemorySink::default()))
    .policy(WindowPolicy {
        leading_edge_idle_ms,
        ..WindowPolicy::default()
    })
    .run(log.source("g"), std::future::pending())
    .await;
    match result {
        Err(PipelineError::Panicked { what, message }) => {
            assert_eq!(message, "no key for chat b");
            assert!(what.contains("key function"), "{what}");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    assert!(log.committed("g")[0].offset <= 2);
}

#[tokio::test]
async fn a_configuration_that_reads_nothing_is_refused() {
    let log = three_chats();
    let p = pipeline(
        Arc::new(MemorySink::default()),
        MemoryDeadLetters::default(),
        1,
    );
    let result = p
        .config(RuntimeConfig {
            poll_max_records: 0,
            ..RuntimeConfig::default()
        })
        .run(log.source("g"), std::future::pending())
        .await;
    match result {
        Err(PipelineError::Config(message)) => {
            assert!(message.contains("poll_max_records"), "{message}");
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    assert_eq!(log.committed("g")[0].offset, 0, "nothing read");
}

/// A dead-letter sink that refuses every letter for good.
struct BrokenDeadLetters;

#[async_trait]
impl DeadLetterSink for BrokenDeadLetters {
    async fn write(&self, _: &[DeadLetter]) -> Result<(), SinkError> {
        Err(SinkError::fatal("dead-letter topic does not exist"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dead_letter_sink_is_its_own_error_not_a_source_error() {
    let log = MemoryLog::new(1);
    log.append(b"k", serde_json::to_vec(&message(0, "a")).expect("encodes"));
    log.append(b"k", b"not a chat message".to_vec());
    log.append(b"k", serde_json::to_vec(&message(2, "a")).expect("encodes"));
    log.close();
    let result = pipeline(
        Arc::new(MemorySink::default()),
        MemoryDeadLetters::default(),
        1,
    )
    .dead_letters(Arc::new(BrokenDeadLetters))
    .run(log.source("g"), std::future::pending())
    .await;
    match &result {
        Err(e @ PipelineError::DeadLetters(source)) => {
            assert_eq!(source.message, "dead-letter topic does not exist");
            assert!(e.to_string().contains("dead-letter sink"), "{e}");
        }
        other => panic!("expected a dead-letter error, got {other:?}"),
    }
    assert!(
        log.committed("g")[0].offset <= 1,
        "committed {:?}: past the record that could not be dead-lettered",
        log.committed("g")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pipelines_sharing_metrics_each_report_their_own_counts() {
    let metrics = Arc::new(Metrics::default());
    let run = |chats: &'static [&'static str], bad: usize| {
        let log = MemoryLog::new(1);
        for (i, chat) in chats.iter().enumerate() {
            log.append(
                b"k",
                serde_json::to_vec(&message(i as u64, chat)).expect("encodes"),
            );
        }
        for _ in 0..bad {
            log.append(b"k", b"not json".to_vec());
        }
        log.close();
        let p = pipeline(
            Arc::new(MemorySink::default()),
            MemoryDeadLetters::default(),
            1,
        )
        .metrics(Arc::clone(&metrics));
        async move { p.run(log.source("g"), std::future::pending()).await }
    };
    // Both at once, so that each one's counting overlaps the other's.
    let (one, two) = tokio::join!(run(&["a", "a", "b", "b", "c", "c"], 1), run(&["x", "x"], 3));
    let (one, two) = (one.expect("first run"), two.expect("second run"));
    assert_eq!(
        (one.messages_in, one.groups_out, one.dead_letters),
        (7, 3, 1)
    );
    assert_eq!(
        (two.messages_in, two.groups_out, two.dead_letters),
        (5, 1, 3)
    );
    // The shared metrics add both up, for an exporter.
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(load(&metrics.messages_in), 12);
    assert_eq!(load(&metrics.groups_out), 4);
    assert_eq!(load(&metrics.dead_letters), 4);
}
