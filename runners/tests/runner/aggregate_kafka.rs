//! `confab aggregate` as a process on the real servers: a backlog of old messages in the log,
//! Firestore and Cassandra out, stopped with SIGTERM; it must exit 0 having written every
//! message once and committed them all.

use std::time::Duration;

use crate::harness::{message_json, Aggregator, Backlog, Expected, Outputs};

const N: u64 = 240;
const CHATS: u64 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_firestore_and_cassandra_then_sigterm_commits_everything() {
    backlog_then_sigterm(Backlog::create("runner", 3).await).await;
}

/// The test on `backlog`'s topic (Kafka here, Fluvio in `aggregate_fluvio`).
pub(crate) async fn backlog_then_sigterm(backlog: Backlog) {
    let outputs = Outputs::new(&backlog.run);

    // The backlog: N messages over CHATS chats, keyed by chat, from long ago (event time far
    // behind the clock: once read, the idle clock completes every group).
    let mut expected = Expected::new();
    for i in 0..N {
        let chat = format!("chat-{}", i % CHATS);
        let payload = message_json(i, &chat, 1_700_000_000_000 + i * 20);
        backlog.send(&chat, payload.as_bytes()).await;
        expected.entry(chat).or_default().push(format!("m{i}"));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config = outputs.config(&backlog, dir.path(), "runner-0", "", "");
    let mut aggregator = Aggregator::start(&config);
    backlog
        .wait_committed_to_end(&mut aggregator, Duration::from_secs(120))
        .await;
    aggregator.terminate();
    let log = aggregator.log_text();
    assert!(log.contains("aggregator stopped"), "{log}");

    let report = outputs.verify(&expected).await;
    assert_eq!(report.messages, N as usize);
    assert_eq!(report.rows, N as usize);
    backlog.delete().await;
}
