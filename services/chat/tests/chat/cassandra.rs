//! Against a real Cassandra (`CASSANDRA_NODES`, default 127.0.0.1:9042;
//! `scripts/infra up cassandra`), with PostgreSQL as the database. Every test uses its own
//! keyspace, with one-second buckets so that a few seconds of messages span several partitions.
//!
//! - 95 messages written by the connectors' Cassandra sink across several buckets, walked through
//!   both history routes page by page: all 95 exactly once, newest first;
//! - (with `kafka`) the whole flow: API -> Kafka -> pipeline -> Cassandra -> history routes.

use crate::common::{unique_name, Backend, TestApp};
use axum::http::StatusCode;
use confab_chat::message_log::MemoryMessageLog;
use confab_chat::{EventsConfig, HistoryConfig};
use confab_connectors::cassandra::{bucket_of, CassandraConfig, CassandraSink, ConsistencyLevel};
use confab_connectors::env_or;
use confab_pipeline::memory::MemoryLog;
use confab_pipeline::record::{iso_from_ms, timeuuid_from_ms, timeuuid_ms};
use confab_pipeline::{group_id, ChatMessage, CompletionReason, Group, Sink};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

const BUCKET_MS: u64 = 1_000;

fn config() -> CassandraConfig {
    CassandraConfig {
        nodes: env_or("CASSANDRA_NODES", "127.0.0.1:9042"),
        keyspace: unique_name("chat_test"),
        bucket_size_ms: BUCKET_MS,
        consistency: ConsistencyLevel::One,
        ..CassandraConfig::default()
    }
}

async fn sink(config: &CassandraConfig) -> CassandraSink {
    // The error names the address and `scripts/infra up cassandra`.
    CassandraSink::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn drop_keyspace(sink: &CassandraSink, keyspace: &str) {
    sink.session()
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[])
        .await
        .expect("DROP KEYSPACE");
}

fn buckets(messages: &[Value]) -> HashSet<i64> {
    messages
        .iter()
        .map(|m| {
            let time: Uuid = m["time"].as_str().expect("time").parse().expect("uuid");
            bucket_of(timeuuid_ms(&time).expect("TimeUUID"), BUCKET_MS)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ninety_five_messages_across_buckets_walk_newest_first_on_both_routes() {
    let cassandra = config();
    let sink = sink(&cassandra).await;
    // The messages are written below, straight to Cassandra: no log or aggregator needed.
    let app = TestApp::with(Backend::Postgres, |config, backends| {
        config.history = HistoryConfig::Cassandra(cassandra.clone());
        config.events = EventsConfig::None {};
        backends.log = Some(Arc::new(MemoryMessageLog::new(MemoryLog::new(1))));
    })
    .await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;

    // 95 messages 70 ms apart: about 6.6 s, so seven one-second buckets.
    let t0 = 1_700_000_000_500;
    let messages: Vec<ChatMessage> = (0..95u64)
        .map(|i| {
            let ms = t0 + 70 * i;
            let (from, to) = if i % 2 == 0 {
                (&ann, &bob)
            } else {
                (&bob, &ann)
            };
            ChatMessage {
                message_id: Uuid::new_v4().to_string(),
                chat_id: chat.to_string(),
                from_user: from.id.to_string(),
                to_user: to.id.to_string(),
                body: format!("message {i}"),
                time: timeuuid_from_ms(ms, 0, [5; 6]),
                time_iso: iso_from_ms(ms),
            }
        })
        .collect();
    let groups: Vec<Group<String, ChatMessage>> = messages
        .chunks(12)
        .map(|records| Group {
            id: group_id(&records[0].chat_id, &records[0].message_id),
            key: records[0].chat_id.clone(),
            first_time_ms: 0,
            last_time_ms: 0,
            bytes: 0,
            reason: CompletionReason::MaxMessages,
            records: records.to_vec(),
        })
        .collect();
    sink.write(&groups).await.expect("write the history");
    sink.write(&groups[2..4])
        .await
        .expect("a replay is harmless");

    let newest_first: Vec<Value> = messages
        .iter()
        .rev()
        .map(|m| serde_json::to_value(m).expect("json"))
        .collect();
    assert!(buckets(&newest_first).len() >= 2, "spans several buckets");
    let rest = format!("/api/v1/chats/{chat}/messages");
    let seed = format!("/chat/{chat}");
    let (by_ten, pages) = app.walk_history(&ann, &rest, Some(10)).await;
    assert_eq!(pages, 10);
    assert_eq!(by_ten, newest_first, "all 95, exactly once, newest first");
    let (by_default, _) = app.walk_history(&bob, &rest, None).await;
    assert_eq!(by_default, newest_first);
    let (seed_walk, _) = app.walk_history(&ann, &seed, Some(10)).await;
    assert_eq!(seed_walk, newest_first, "the seed route agrees");
    // A page that starts inside one bucket and ends in an older one.
    let cursor = newest_first[10]["time"].as_str().expect("time");
    let page = app
        .get(
            &format!("{seed}?time={cursor}&quantity=30"),
            Some(&ann.token),
        )
        .await
        .assert_status(StatusCode::OK);
    let page = page["messages"].as_array().expect("messages").clone();
    assert_eq!(page.as_slice(), &newest_first[11..41]);
    assert!(
        buckets(&page).len() >= 2,
        "the page crosses a bucket boundary"
    );

    let ready = app.get("/readyz", None).await.assert_status(StatusCode::OK);
    assert_eq!(ready["history"], "cassandra");
    let cat = app.user("cat").await;
    app.get(&rest, Some(&cat.token))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    drop_keyspace(&sink, &cassandra.keyspace).await;
}

#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_to_kafka_to_the_pipeline_to_cassandra_history() {
    use crate::kafka::{brokers, create_topic, kafka_log, unreachable};
    use confab_chat::LogConfig;
    use confab_connectors::kafka::{KafkaSource, KafkaSourceConfig};
    use confab_pipeline::memory::MemoryDeadLetters;
    use confab_pipeline::{ChatKey, Pipeline, RuntimeConfig};
    use std::time::Duration;

    let cassandra = config();
    let cassandra_sink = sink(&cassandra).await;
    let topic = create_topic("chat_messages", 2).await;
    let app = TestApp::with(Backend::Postgres, |config, _| {
        config.log = LogConfig::Kafka(kafka_log(&topic));
        config.history = HistoryConfig::Cassandra(cassandra.clone());
        config.events = EventsConfig::None {};
    })
    .await;
    let source = KafkaSource::connect(&KafkaSourceConfig {
        brokers: brokers(),
        topic: topic.clone(),
        group_id: unique_name("chat-test-aggregator"),
        ..KafkaSourceConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{}", unreachable(e)));
    let key = ChatKey::Chat;
    let pipeline = Pipeline::new(
        move |m: &ChatMessage| key.key(m),
        confab_connectors::decode_chat_message,
        Arc::new(MemoryDeadLetters::default()),
    )
    .sink(Arc::new(sink(&cassandra).await))
    .policy(crate::common::fast_policy())
    .config(RuntimeConfig {
        lateness_ms: 0,
        commit_interval_ms: 100,
        ..RuntimeConfig::default()
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let aggregator = tokio::spawn(pipeline.run(source, async {
        let _ = stopped.await;
    }));

    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let mut sent = Vec::new();
    for i in 0..30 {
        let sender = if i % 2 == 0 { &ann } else { &bob };
        sent.push(app.say_ok(sender, chat, &format!("to cassandra {i}")).await);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let newest_first: Vec<Value> = sent.into_iter().rev().collect();
    assert!(
        buckets(&newest_first).len() >= 2,
        "1.2 s of messages span buckets"
    );
    app.wait_for_history(&ann, chat, 30).await;
    let (walk, pages) = app
        .walk_history(&bob, &format!("/chat/{chat}"), Some(10))
        .await;
    assert_eq!(pages, 3);
    assert_eq!(walk, newest_first);

    stop.send(()).expect("aggregator running");
    let report = aggregator.await.expect("join").expect("run");
    assert_eq!(report.messages_in, 30);
    drop_keyspace(&cassandra_sink, &cassandra.keyspace).await;
}
