//! Poison records in the log: garbage, wrong types, oversized, unknown fields, empty, and a
//! record the log holds twice, between good messages. The bad ones go to the dead letters with a
//! reason and are counted in `/metrics`; the pipeline never stops; every good message reaches
//! Firestore and Cassandra once, the repeated one included. On Kafka with a dead-letter file
//! here; on Fluvio with a dead-letter topic in `aggregate_fluvio`.

use std::time::Duration;

use crate::harness::{http_get, message_json, Aggregator, Backlog, Expected, Outputs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_dead_lettered_counted_and_never_stop_the_pipeline() {
    poison_between_good_records(Backlog::create("poison", 2).await, None).await;
}

/// The test on `backlog`'s topic, with the dead letters in the file `dead.jsonl`, or in the
/// Fluvio topic `dead_letter_topic` (which exists) of the backlog's cluster.
pub(crate) async fn poison_between_good_records(backlog: Backlog, dead_letter_topic: Option<&str>) {
    let mut outputs = Outputs::new(&backlog.run);
    if let Some(topic) = dead_letter_topic {
        outputs.dead_letters = Some(format!(
            "type = \"fluvio\"\nendpoint = \"{}\"\ntopic = \"{topic}\"",
            backlog.fluvio_endpoint()
        ));
    }
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

    let mut expected = Expected::new();
    for (i, (chat, payload)) in good.iter().enumerate() {
        backlog.send(chat, payload.as_bytes()).await;
        expected
            .entry(chat.clone())
            .or_default()
            .push(format!("m{i}"));
        if let Some((_, bad)) = poison.get(i / 8) {
            if i % 8 == 0 {
                backlog.send(chat, bad).await;
            }
        }
        if i == 30 {
            // The same record again, as a producer retry without idempotence would write it.
            backlog.send(chat, payload.as_bytes()).await;
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

    // Every poison record is in the dead letters, with a reason naming what is wrong.
    let dead = match dead_letter_topic {
        Some(topic) => backlog.read_fluvio_topic(topic).await.join("\n"),
        None => std::fs::read_to_string(dir.path().join("dead.jsonl")).expect("dead letters"),
    };
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
