//! Poison records in Kafka: garbage, wrong types, oversized, unknown fields, empty, and a record
//! the log holds twice, between good messages. The bad ones go to the dead-letter file with a
//! reason and are counted in `/metrics`; the pipeline never stops; every good message reaches
//! Firestore and Cassandra once, the repeated one included.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::harness::{http_get, message_json, Aggregator, Backlog, Expected, Outputs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_dead_lettered_counted_and_never_stop_the_pipeline() {
    let backlog = Backlog::create("poison", 2).await;
    let outputs = Outputs::new(&backlog.run);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = outputs.config(&backlog, dir.path(), "poison-0", "", "");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let good: Vec<(String, String)> = (0..60)
        .map(|i| {
            let chat = format!("chat-{}", i % 4);
            (chat.clone(), message_json(i, &chat, now + i * 10))
        })
        .collect();
    let unknown_field = good[0].1.replacen('{', r#"{"is_admin":true,"#, 1);
    let wrong_type = good[1].1.replacen(r#""body":"#, r#""body":42,"was":"#, 1);
    let oversized = good[2].1.replacen(
        r#""body":""#,
        &format!(r#""body":"{}"#, "x".repeat(100 * 1024)),
        1,
    );
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\x00\xff\xfe not json at all".to_vec()),
        ("empty", Vec::new()),
        ("truncated", good[3].1.as_bytes()[..40].to_vec()),
        ("unknown field", unknown_field.into_bytes()),
        ("wrong type", wrong_type.into_bytes()),
        ("oversized", oversized.into_bytes()),
        ("array", b"[1,2,3]".to_vec()),
    ];

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &backlog.brokers)
        .set("acks", "all")
        .create()
        .expect("producer");
    let mut expected = Expected::new();
    let send = |key: String, payload: Vec<u8>| {
        let producer = producer.clone();
        let topic = backlog.topic.clone();
        async move {
            producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(&payload),
                    Duration::from_secs(30),
                )
                .await
                .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
        }
    };
    for (i, (chat, payload)) in good.iter().enumerate() {
        send(chat.clone(), payload.clone().into_bytes()).await;
        expected
            .entry(chat.clone())
            .or_default()
            .push(format!("m{i}"));
        if let Some((_, bad)) = poison.get(i / 8) {
            if i % 8 == 0 {
                send(chat.clone(), bad.clone()).await;
            }
        }
        if i == 30 {
            // The same record again, as a producer retry without idempotence would write it.
            send(chat.clone(), payload.clone().into_bytes()).await;
        }
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut aggregator =
        Aggregator::start_with(&config, &["--listen", &format!("127.0.0.1:{port}")]);
    backlog
        .wait_committed_to_end(&mut aggregator, Duration::from_secs(120))
        .await;
    let metrics = http_get(port, "/metrics").expect("/metrics answers");
    aggregator.assert_running("after the poison records");
    aggregator.terminate();

    // Every poison record is in the dead-letter file, with a reason naming what is wrong.
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).expect("dead letters");
    let letters: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).expect("a dead letter is JSON"))
        .collect();
    assert_eq!(letters.len(), poison.len(), "{dead}");
    for letter in &letters {
        let reason = letter["reason"].as_str().unwrap_or_default();
        assert!(
            !reason.is_empty(),
            "a dead letter without a reason: {letter}"
        );
    }
    assert!(
        dead.contains("over the max_record_bytes limit"),
        "the oversized record says so: {dead}"
    );
    assert!(dead.contains("unknown field"), "{dead}");
    assert!(
        metrics.contains(&format!("confab_dead_letters_total {}", poison.len())),
        "{metrics}"
    );

    let report = outputs.verify(&expected).await;
    assert_eq!(report.messages, good.len());
    assert_eq!(report.rows, good.len());
    backlog.delete().await;
}
