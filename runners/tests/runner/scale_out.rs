//! Scale-out by processes: two `confab aggregate` processes in one consumer group share a topic.
//! One is killed mid-stream (its partitions move to the other after its session expires) and
//! later started again (they move back). Every message still lands in exactly one Firestore
//! document and one Cassandra row, and the group commits to the end.

use std::time::{Duration, Instant};

use crate::harness::{Aggregator, Backlog, Outputs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_topic_and_survive_one_dying_and_coming_back() {
    let backlog = Backlog::create("scaleout", 6).await;
    let outputs = Outputs::new(&backlog.run);
    let dir = tempfile::tempdir().expect("temp dir");
    // No static membership here: the partitions must really move between processes.
    let config = outputs.config(&backlog, dir.path(), "", "", "");

    let producing = backlog.produce_live("chat", 0, 12_000, 120, 400);
    let mut a = Aggregator::start(&config);
    let mut b = Aggregator::start(&config);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    a.assert_running("before the kill");
    b.assert_running("before the kill");
    // b dies without a word; a takes its partitions once b's session (6 s) expires.
    b.kill();
    tokio::time::sleep(Duration::from_secs(12)).await;
    a.assert_running("after b died");
    // b comes back; the group rebalances again.
    let mut b = Aggregator::start(&config);
    let expected = producing.await.expect("producer");
    eprintln!(
        "scale-out: produced {} messages in {:.1} s",
        expected.values().map(Vec::len).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    backlog
        .wait_committed_to_end(&mut a, Duration::from_secs(180))
        .await;
    b.assert_running("at the end");
    a.terminate();
    b.terminate();

    let report = outputs.verify(&expected).await;
    eprintln!("scale-out: {report}");
    assert_eq!(report.messages, 12_000);
    // Both processes did part of the work.
    for (name, log) in [("a", a.log_text()), ("b", b.log_text())] {
        assert!(
            log.contains("aggregator stopped"),
            "{name} stopped cleanly: {log}"
        );
    }
    backlog.delete().await;
}
