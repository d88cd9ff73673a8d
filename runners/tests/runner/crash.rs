//! Crash consistency: `confab aggregate` on the real servers is killed with SIGKILL at random
//! points while messages keep arriving, and restarted each time. Afterwards every message is in
//! Firestore exactly once (one group document holds it, in log order), in Cassandra exactly once,
//! and the committed offsets reach the end of every partition. On Kafka here; on Fluvio in
//! `aggregate_fluvio`, which also checks that the groups are the very ones an uninterrupted run
//! writes.
//!
//! Sized for CI by default; `CONFAB_CRASH_MESSAGES`, `CONFAB_CRASH_KILLS`, `CONFAB_CRASH_RATE`,
//! `CONFAB_CRASH_CHATS` and `CONFAB_CRASH_SEED` (and `CONFAB_CRASH_DRAIN_SECONDS`, the wait for the
//! last run) scale it up for the soak run reported in docs/RELIABILITY.md.
//!
//! The kills are spread over the whole production: lifetimes are drawn around
//! `messages / rate / kills` (at least 0.3 s, mean at least 2 s), so a long soak is killed while
//! its traffic arrives rather than only at its start.

use std::time::{Duration, Instant};

use crate::harness::{Aggregator, Backlog, Outputs, Rng};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_doubles_nothing() {
    sigkill_at_random_points(Backlog::create("crash", 3).await, false).await;
}

/// The crash test on `backlog`'s topic. With `compare_uninterrupted`, an aggregator that is never
/// killed then reads the same topic from its start, under another consumer and into other
/// outputs, and must write the same group documents (ids and messages): replays after the kills
/// rebuilt exactly the groups of the log.
pub(crate) async fn sigkill_at_random_points(mut backlog: Backlog, compare_uninterrupted: bool) {
    let messages = env_number("CONFAB_CRASH_MESSAGES", 20_000);
    let kills = env_number("CONFAB_CRASH_KILLS", 10);
    let rate = env_number("CONFAB_CRASH_RATE", 800);
    let seed = env_number(
        "CONFAB_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    );
    let chats = env_number("CONFAB_CRASH_CHATS", (messages / 100).clamp(10, 2_000)).max(2);
    // Mean lifetime: the production time shared among the kills, and never under 2 s.
    let mean_ms = (messages * 1_000 / rate.max(1) / kills.max(1)).max(2_000);
    eprintln!(
        "crash test: {messages} messages over {chats} chats at {rate}/s, {kills} SIGKILLs, seed {seed} (CONFAB_CRASH_SEED)"
    );
    let mut rng = Rng::new(seed);

    let outputs = Outputs::new(&backlog.run);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = outputs.config(&backlog, dir.path(), "crash-0", "", "");

    // Live traffic: the producer runs through all the kills.
    let producing = backlog.produce_live("chat", 0, messages, chats, rate);

    let started = Instant::now();
    let mut lifetimes = Vec::new();
    for kill in 0..kills {
        let mut aggregator = Aggregator::start(&config);
        // At a random point: sometimes before the first commit, mostly mid-stream.
        let lifetime = Duration::from_millis(rng.between(300, 2 * mean_ms - 300));
        tokio::time::sleep(lifetime).await;
        aggregator.assert_running(&format!("before SIGKILL {}", kill + 1));
        aggregator.kill();
        lifetimes.push(lifetime.as_millis());
    }
    let expected = producing.await.expect("producer task");
    eprintln!(
        "crash test: {kills} kills done after {:.1} s (lifetimes ms: {lifetimes:?}); final run",
        started.elapsed().as_secs_f64()
    );

    // The last run drains the topic, then stops gracefully.
    let mut aggregator = Aggregator::start(&config);
    backlog
        .wait_committed_to_end(
            &mut aggregator,
            Duration::from_secs(env_number("CONFAB_CRASH_DRAIN_SECONDS", 240)),
        )
        .await;
    aggregator.terminate();
    eprintln!(
        "crash test: committed to the end {:.1} s after start",
        started.elapsed().as_secs_f64()
    );

    let report = outputs.verify(&expected).await;
    eprintln!("crash test: {report}");
    assert_eq!(report.messages, messages as usize);

    if compare_uninterrupted {
        let reference = Outputs::new(&uuid::Uuid::new_v4().simple().to_string());
        backlog.group = format!("{}-uninterrupted", backlog.group);
        let config = reference.config(&backlog, dir.path(), "uninterrupted", "", "");
        let mut aggregator = Aggregator::start(&config);
        backlog
            .wait_committed_to_end(&mut aggregator, Duration::from_secs(240))
            .await;
        aggregator.terminate();
        let (killed, uninterrupted) = (outputs.groups().await, reference.groups().await);
        let differing: Vec<_> = killed
            .iter()
            .filter(|(id, ids)| uninterrupted.get(*id) != Some(ids))
            .map(|(id, _)| id)
            .chain(uninterrupted.keys().filter(|id| !killed.contains_key(*id)))
            .take(5)
            .collect();
        assert!(
            differing.is_empty(),
            "the killed run wrote {} groups, the uninterrupted run {}; they differ at {differing:?}",
            killed.len(),
            uninterrupted.len()
        );
        eprintln!(
            "crash test: the {} groups are identical to an uninterrupted run's",
            killed.len()
        );
    }
    backlog.delete().await;
}
