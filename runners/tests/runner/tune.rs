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
    assert!(stdout.contains("cheapest with a leading edge"), "{stdout}");
    assert!(stdout.contains("cost/p50 Pareto points"), "{stdout}");
    // 2 keys x 2 timeouts x 2 sizes x 1 age x 3 leading edges (none, 5 s, 15 s), plus the seed
    // and the no-grouping rows.
    assert_eq!(
        std::fs::read_to_string(&csv).expect("csv").lines().count(),
        1 + 26
    );
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid json");
    assert_eq!(rows.as_array().map(Vec::len), Some(26));
}

/// Replayed traffic (--input) under a leading edge equal to the timeout, checked against a count
/// by hand: each chat's messages fall into runs, each message within the timeout of the one
/// before; a run's first message is written alone at once, and the rest is one group delivered
/// timeout + lateness after the run's last message. Without the leading edge, a run is one group.
#[test]
fn tune_on_replayed_traffic_counts_leading_edges_as_a_count_by_hand_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("messages.jsonl");
    let json = dir.path().join("out.json");
    let start = 1_700_000_000_000u64;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut lines = String::new();
    let mut times: Vec<(String, u64)> = Vec::new();
    for chat in 0..30u64 {
        let mut t = start + chat * 7_000;
        for _ in 0..40 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Quick replies, slower ones, and pauses long enough to lead.
            t += [300, 900, 1_400, 2_500, 30_000][(x % 5) as usize];
            times.push((format!("chat-{chat}"), t));
        }
    }
    times.sort_by_key(|(_, t)| *t);
    for (i, (chat, t)) in times.iter().enumerate() {
        lines.push_str(&crate::message_json(i as u64, chat, *t));
        lines.push('\n');
    }
    std::fs::write(&input, lines).expect("write messages");

    let out = confab()
        .arg("tune")
        .arg("--input")
        .arg(&input)
        .args(["--keys", "chat", "--timeouts", "2s", "--sizes", "1000"])
        .args([
            "--ages",
            "1h",
            "--leading-edges",
            "0,2s",
            "--lateness",
            "500ms",
        ])
        .args(["--p50-budget", "10s", "--p99-budget", "1h"])
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
    assert!(
        stdout.contains("recommended for p50 <= 10s and p99 <= 1h"),
        "{stdout}"
    );

    let mut runs: std::collections::HashMap<&str, Vec<Vec<u64>>> = Default::default();
    for (chat, t) in &times {
        let chat_runs = runs.entry(chat.as_str()).or_default();
        match chat_runs.last_mut() {
            Some(run) if *t < run[run.len() - 1] + 2_000 => run.push(*t),
            _ => chat_runs.push(vec![*t]),
        }
    }
    let runs: Vec<&Vec<u64>> = runs.values().flatten().collect();
    let leaders = runs.len() as u64;
    let writes = leaders + runs.iter().filter(|r| r.len() > 1).count() as u64;
    let mut delays: Vec<u64> = Vec::new();
    for run in &runs {
        delays.push(0);
        let delivered = run[run.len() - 1] + 2_000 + 500;
        delays.extend(run[1..].iter().map(|t| delivered - t));
    }
    delays.sort_unstable();
    let percentile = |p: f64| delays[((p * delays.len() as f64).ceil() as usize).max(1) - 1];

    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid json");
    let rows = rows.as_array().expect("rows");
    let row = |lead: u64| {
        rows.iter()
            .find(|r| {
                r["candidate"]["policy"]["leading_edge_idle_ms"] == lead
                    && r["candidate"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("chat: timeout 2s"))
            })
            .unwrap_or_else(|| panic!("a row with leading edge {lead}: {rows:?}"))
    };
    let led = row(2_000);
    assert!(leaders > 30 && leaders < writes, "{leaders} of {writes}");
    assert_eq!(led["messages"], times.len() as u64);
    assert_eq!(led["writes"], writes);
    assert_eq!(led["completions"]["leading_edge"], leaders);
    for (field, p) in [
        ("delay_p50_ms", 0.5),
        ("delay_p90_ms", 0.9),
        ("delay_p99_ms", 0.99),
    ] {
        assert_eq!(led[field], percentile(p), "{field}");
    }
    assert_eq!(led["delay_max_ms"], delays[delays.len() - 1]);
    let plain = row(0);
    assert_eq!(plain["writes"], leaders, "one group per run");
    assert_eq!(plain["completions"].get("leading_edge"), None);
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
