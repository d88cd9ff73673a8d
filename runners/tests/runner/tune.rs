//! `confab tune` end to end on a small seeded workload.

use crate::confab;

#[test]
fn tune_prints_a_table_a_recommendation_and_writes_its_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (plot, csv, json) = (
        dir.path().join("plot.svg"),
        dir.path().join("out.csv"),
        dir.path().join("out.json"),
    );
    let out = confab()
        .args([
            "tune",
            "--messages",
            "3000",
            "--users",
            "40",
            "--chats",
            "60",
            "--duration",
            "1h",
        ])
        .args([
            "--timeouts",
            "500ms,2s",
            "--sizes",
            "10,50",
            "--ages",
            "10s",
            "--p99-budget",
            "5s",
        ])
        .arg("--plot")
        .arg(&plot)
        .arg("--csv")
        .arg(&csv)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run confab tune");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("recommended for p99 <= 5s"), "{stdout}");
    assert!(stdout.contains("seed: from_user+chat_id"), "{stdout}");
    let plot = std::fs::read_to_string(&plot).expect("plot");
    assert!(plot.starts_with("<svg") && plot.len() > 1_000);
    // 2 keys x 2 timeouts x 2 sizes x 1 age, plus the seed and the no-grouping rows.
    assert_eq!(
        std::fs::read_to_string(&csv).expect("csv").lines().count(),
        1 + 10
    );
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid json");
    assert_eq!(rows.as_array().map(Vec::len), Some(10));
}

#[test]
fn tune_refuses_an_impossible_workload_with_the_parameter() {
    let out = confab()
        .args(["tune", "--users", "1"])
        .output()
        .expect("run confab tune");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("users"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tune_replays_a_kafka_topic_without_committing_anything() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use std::time::Duration;

    let backlog = crate::harness::Backlog::create("tune", 3).await;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &backlog.brokers)
        .create()
        .expect("producer");
    let start = 1_700_000_000_000;
    for i in 0..600u64 {
        let chat = format!("chat-{}", i % 30);
        // Two messages a second per chat, in bursts: a 1 s timeout groups each chat's burst.
        let payload = crate::message_json(i, &chat, start + (i / 30) * 500);
        producer
            .send(
                FutureRecord::to(&backlog.topic)
                    .key(&chat)
                    .payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    }
    producer
        .send(
            FutureRecord::to(&backlog.topic)
                .key("junk")
                .payload("not a chat message"),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce: {e}"));

    let out = confab()
        .args(["tune", "--kafka-topic", &backlog.topic])
        .args(["--kafka-brokers", &backlog.brokers])
        .args(["--timeouts", "1s,5s", "--sizes", "100", "--ages", "60s"])
        .args(["--keys", "chat"])
        .output()
        .expect("run confab tune");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "workload: 600 messages over 9s 500ms (Kafka topic {})",
            backlog.topic
        )),
        "{stderr}"
    );
    assert!(stderr.contains("skipped 1 records"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("recommended"), "{stdout}");

    // Nothing was committed for any group: the topic is left as it was.
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &backlog.brokers)
        .set("group.id", "confab-tune-replay")
        .create()
        .expect("consumer");
    let mut partitions = rdkafka::TopicPartitionList::new();
    for p in 0..3 {
        partitions.add_partition(&backlog.topic, p);
    }
    let committed = rdkafka::consumer::Consumer::committed_offsets(
        &consumer,
        partitions,
        Duration::from_secs(10),
    )
    .expect("committed offsets");
    assert!(committed
        .elements()
        .iter()
        .all(|e| e.offset() == rdkafka::Offset::Invalid));
    backlog.delete().await;
}
