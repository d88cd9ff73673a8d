//! Faults on the real servers while one `confab aggregate` process keeps running: the Kafka
//! broker is restarted, then Cassandra, then the Firestore emulator is frozen (SIGSTOP; a restart
//! would wipe the emulator's in-memory data, and a hung server is the harsher case for a client)
//! while a burst arrives. Messages keep coming throughout. The aggregator must recover on its own,
//! lose nothing, double nothing, and keep its memory bounded while a sink is down.
//!
//! Its own test binary: it stops shared servers, so nothing else may run beside it.

#[path = "runner/harness.rs"]
mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::{infra, repo_root, Aggregator, Backlog, Outputs};

/// The process group of a server started by `scripts/infra` (the first field of its pid file,
/// under `$CONFAB_INFRA_DIR`, `.infra` by default, as in the script).
fn server_group(server: &str) -> String {
    let dir = std::env::var("CONFAB_INFRA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".infra"));
    let file = dir.join(format!("run/{server}.pid"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; start the servers with scripts/infra up",
            file.display()
        )
    });
    text.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn signal_group(signal: &str, group: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{group}")])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} -- -{group}");
}

/// Waits until the group's lag drops below `below` (the pipeline is moving again).
async fn wait_lag_below(backlog: &Backlog, aggregator: &mut Aggregator, below: i64, what: &str) {
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &backlog.brokers)
        .set("group.id", &backlog.group)
        .create()
        .expect("consumer");
    let started = Instant::now();
    let mut said = Instant::now();
    loop {
        // Blocking librdkafka calls: off the runtime's workers, which the producers share.
        let lag = tokio::task::block_in_place(|| backlog.lag(&consumer));
        if said.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "faults: {:.1} s after {what}: lag {lag:?}",
                started.elapsed().as_secs_f64()
            );
            said = Instant::now();
        }
        if lag.is_some_and(|l| l < below) {
            let took = started.elapsed();
            eprintln!(
                "faults: recovered after {what} in {:.1} s (lag {lag:?})",
                took.as_secs_f64()
            );
            if took > Duration::from_secs(10) {
                // Slow but within bounds: what the aggregator said meanwhile, to see why.
                eprintln!(
                    "faults: the aggregator's log so far:\n{}",
                    aggregator.log_tail()
                );
            }
            return;
        }
        aggregator.assert_running(&format!("after {what}"));
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no recovery within 180 s after {what} (lag {lag:?}):\n{}",
            aggregator.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_and_cassandra_restarts_and_a_frozen_firestore_lose_nothing() {
    const RATE: u64 = 300;
    const STEADY: u64 = 24_000;
    const BURST: u64 = 60_000;
    let backlog = Backlog::create("faults", 3).await;
    let outputs = Outputs::new(&backlog.run);
    let dir = tempfile::tempdir().expect("temp dir");
    // Small read-ahead limits, so that a frozen sink shows whether memory stays bounded. No
    // static membership: with it, a broker away for longer than the session timeout fences the
    // consumer when it rejoins (librdkafka issue 3437: FencedInstanceId, a fatal error), and the
    // aggregator exits for its supervisor to restart, which is not what this test is about.
    let config = outputs.config(
        &backlog,
        dir.path(),
        "",
        "max_buffered_records = 2000",
        // Short commit epochs: under the steady producer, commits move every 2 s, so the lag
        // below shows when the pipeline moves again, not when an epoch of the default 60 s ends.
        "max_unacked_bytes = 2097152\ncommit_epoch_ms = 2000",
    );
    let mut aggregator = Aggregator::start(&config);
    let steady = backlog.produce_live("steady", 0, STEADY, 100, RATE);
    tokio::time::sleep(Duration::from_secs(6)).await;
    aggregator.assert_running("before the faults");

    // 1. The broker goes away and comes back (its log is on disk).
    let t = Instant::now();
    infra("down", "kafka", &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    infra("up", "kafka", &[]);
    eprintln!(
        "faults: Kafka down and up again in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    wait_lag_below(&backlog, &mut aggregator, 2_000, "the Kafka restart").await;

    // 2. Cassandra goes away and comes back.
    let t = Instant::now();
    infra("down", "cassandra", &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    infra("up", "cassandra", &[]);
    eprintln!(
        "faults: Cassandra down and up again in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    wait_lag_below(&backlog, &mut aggregator, 2_000, "the Cassandra restart").await;

    // 3. Firestore hangs while a burst arrives: the source must pause, not buffer the burst.
    let rss_before = aggregator.rss_kib().unwrap_or(0);
    let firestore = server_group("firestore");
    signal_group("STOP", &firestore);
    let burst = backlog.produce_live("burst", STEADY, BURST, 100, 20_000);
    let mut rss_peak = rss_before;
    let frozen = Instant::now();
    while frozen.elapsed() < Duration::from_secs(15) {
        rss_peak = rss_peak.max(aggregator.rss_kib().unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    signal_group("CONT", &firestore);
    let mut expected = burst.await.expect("burst producer");
    eprintln!(
        "faults: Firestore frozen 15 s during a burst of {BURST}; RSS {} MiB before, peak {} MiB",
        rss_before / 1024,
        rss_peak / 1024
    );
    // The two producers wrote to different chats, so each chat's log order is its producer's.
    expected.extend(steady.await.expect("steady producer"));

    backlog
        .wait_committed_to_end(&mut aggregator, Duration::from_secs(300))
        .await;
    aggregator.terminate();
    let report = outputs.verify(&expected).await;
    eprintln!("faults: {report}");
    assert_eq!(report.messages as u64, STEADY + BURST);
    assert!(
        rss_peak < rss_before + 48 * 1024,
        "memory grew by {} MiB while Firestore was down: backpressure should hold it near flat",
        (rss_peak - rss_before) / 1024
    );
    backlog.delete().await;
}
