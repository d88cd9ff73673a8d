//! `confab aggregate` as a process on Fluvio, as on Kafka: stopped with SIGTERM, killed with
//! SIGKILL at random points, a poison record among good ones, and the Fluvio cluster restarted
//! under it. The bodies are the Kafka tests' (`aggregate_kafka`, `crash`, `poison`) on a Fluvio
//! topic; the restart and the new cluster run on a cluster of the test's own (`OwnFluvio`), so
//! that they never disturb the shared one.
//!
//! No package registry ships a Fluvio server, so these tests are `#[ignore]`d with that reason:
//! `scripts/test` runs them whenever `scripts/infra` finds a server, and `.ci/run` fails if they
//! were skipped while one was there. By hand: `scripts/infra up fluvio`, then
//! `cargo test -p confab --all-features --test runner fluvio -- --include-ignored`.

use std::time::{Duration, Instant};

use confab_connectors::fluvio::{consumer_offsets, FluvioSource, FluvioSourceConfig};
use confab_connectors::fluvio::{create_topic, OFFSETS_TOPIC_WAIT};

use crate::harness::{fluvio_client, Aggregator, Backlog, Outputs, OwnFluvio};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Fluvio server: scripts/infra up fluvio, then --include-ignored (scripts/test does both when it finds one)"]
async fn fluvio_to_firestore_and_cassandra_then_sigterm_commits_everything() {
    crate::aggregate_kafka::backlog_then_sigterm(Backlog::create_fluvio("runner", 3).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Fluvio server: scripts/infra up fluvio, then --include-ignored (scripts/test does both when it finds one)"]
async fn fluvio_sigkill_at_random_points_loses_and_doubles_nothing_and_groups_as_uninterrupted() {
    let backlog = Backlog::create_fluvio("crash", 3).await;
    crate::crash::sigkill_at_random_points(backlog, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Fluvio server: scripts/infra up fluvio, then --include-ignored (scripts/test does both when it finds one)"]
async fn fluvio_poison_records_go_to_the_dead_letter_topic_and_never_stop_the_pipeline() {
    let backlog = Backlog::create_fluvio("poison", 2).await;
    let letters = format!("{}-dead", backlog.topic);
    create_topic(backlog.fluvio(), &letters, 1, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    crate::poison::poison_between_good_records(backlog, Some(&letters)).await;
}

/// The cluster stops and starts again (its data kept) under a running aggregator, between two
/// halves of the traffic: the aggregator reconnects by itself and loses and doubles nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Fluvio server: scripts/infra up fluvio, then --include-ignored (scripts/test does both when it finds one)"]
async fn fluvio_restart_under_a_running_aggregator_loses_and_doubles_nothing() {
    let cluster = OwnFluvio::start();
    let mut backlog = Backlog::create_fluvio_at(&cluster.endpoint, "restart", 3).await;
    let outputs = Outputs::new(&backlog.run);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = outputs.config(&backlog, dir.path(), "", "", "");
    let mut aggregator = Aggregator::start(&config);

    let mut expected = backlog
        .produce_live("before", 0, 2_000, 20, 500)
        .await
        .expect("producer task");
    backlog
        .wait_committed_to_end(&mut aggregator, Duration::from_secs(120))
        .await;

    let t = Instant::now();
    cluster.down();
    tokio::time::sleep(Duration::from_secs(3)).await;
    aggregator.assert_running("while Fluvio was down");
    cluster.up();
    eprintln!(
        "fluvio restart: down and up again in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // The test's own client does not outlive the cluster; the aggregator's must.
    backlog.reconnect_fluvio().await;
    // Produced in well under a second, while the aggregator's readers are still backing off
    // (their retries are 3 s apart by now): the drain each does on reconnecting reads every
    // record at once. Regression: no wait read a record then, so no partition was reported
    // caught up again, event time stood still and the last groups were never committed (lag
    // 1,480 in 2 of 2 runs at fe81a72; at 500 messages/s CI met it once, at 1b6c7a1).
    expected.extend(
        backlog
            .produce_live("after", 2_000, 2_000, 20, 5_000)
            .await
            .expect("producer task"),
    );
    backlog
        .wait_committed_to_end(&mut aggregator, Duration::from_secs(120))
        .await;
    eprintln!(
        "fluvio restart: everything committed {:.1} s after the restart began",
        t.elapsed().as_secs_f64()
    );
    aggregator.terminate();
    let report = outputs.verify(&expected).await;
    eprintln!("fluvio restart: {report}");
    assert_eq!(report.messages, 4_000);
}

/// Regression: a cluster that has just started answers before it has created its
/// `consumer-offset` topic, and reading offsets then failed with `Partition not found:
/// consumer-offset-0` (2 of 6 runs begun right after a start). Offsets are read at once on three
/// fresh clusters, by the test's helper and by the source an aggregator starts with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Fluvio server: scripts/infra up fluvio, then --include-ignored (scripts/test does both when it finds one)"]
async fn fluvio_offsets_read_at_once_on_a_cluster_just_started() {
    for round in 1..=3 {
        let cluster = OwnFluvio::start();
        let client = fluvio_client(&cluster.endpoint).await;
        let started = Instant::now();
        let offsets = consumer_offsets(&client, OFFSETS_TOPIC_WAIT)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(offsets.is_empty(), "a new cluster stores no offsets");
        eprintln!(
            "fresh cluster {round}: offsets read {} ms after its start returned",
            started.elapsed().as_millis()
        );

        let topic = "fresh";
        create_topic(&client, topic, 1, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let source = FluvioSource::connect(&FluvioSourceConfig {
            endpoint: cluster.endpoint.clone(),
            topic: topic.to_string(),
            consumer: "fresh-consumer".to_string(),
            ..FluvioSourceConfig::default()
        })
        .await
        .unwrap_or_else(|e| panic!("round {round}: the source on a new cluster: {e}"));
        assert_eq!(source.partitions(), [0]);
    }
}
