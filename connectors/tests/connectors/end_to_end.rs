//! Kafka -> pipeline -> Firestore and Cassandra: every message in exactly one Firestore document
//! and one Cassandra row, and the consumer group committed to the end of every partition.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use confab_connectors::cassandra::History;
use confab_connectors::decode_chat_message;
use confab_connectors::kafka::{KafkaSource, KafkaSourceConfig};
use confab_pipeline::memory::MemoryDeadLetters;
use confab_pipeline::{ChatMessage, Pipeline, RuntimeConfig, WindowPolicy};

use crate::kafka::{brokers, committed, create_topic, end_offsets, produce_messages};
use crate::{cassandra, chat_message, firestore, unique_name};

#[tokio::test]
async fn kafka_to_firestore_and_cassandra_puts_every_message_once_and_commits_to_the_end() {
    const PARTITIONS: u32 = 3;
    const CHATS: usize = 10;
    const PER_CHAT: usize = 45;
    let topic = create_topic("e2e", PARTITIONS as i32).await;
    // Event times 40 ms apart per chat, with a pause of 1 s after every 15th message: groups
    // complete by count (max 10) and by inactivity, the same way on every run.
    let t0 = 1_700_000_000_000;
    let mut messages = Vec::new();
    for i in 0..PER_CHAT {
        for chat in 0..CHATS {
            let ms = t0 + 40 * i as u64 + 1_000 * (i / 15) as u64 + chat as u64;
            messages.push(chat_message(&format!("chat-{chat}"), i, ms));
        }
    }
    let partitions_used = produce_messages(&topic, &messages).await;
    assert!(partitions_used.len() > 1, "keys spread over partitions");

    let (firestore_sink, firestore_config) = firestore::sink().await;
    let cassandra_config = cassandra::config(1_000);
    let cassandra_sink = cassandra::sink(&cassandra_config).await;
    let session = cassandra_sink.session();
    let db = firestore_sink.db().clone();

    let group = unique_name("aggregator");
    let source = KafkaSource::connect(&KafkaSourceConfig {
        brokers: brokers(),
        topic: topic.clone(),
        group_id: group.clone(),
        exit_at_end: true,
        // A small read-ahead, so the source fills its queue and waits for room on the way.
        max_buffered_records: 32,
        ..KafkaSourceConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let dead_letters = MemoryDeadLetters::default();
    let started = std::time::Instant::now();
    let report = Pipeline::new(
        |m: &ChatMessage| m.chat_id.to_string(),
        decode_chat_message,
        Arc::new(dead_letters.clone()),
    )
    .sink(Arc::new(firestore_sink))
    .sink(Arc::new(cassandra_sink))
    .policy(WindowPolicy {
        inactivity_timeout_ms: 500,
        max_messages: 10,
        max_bytes: 64 * 1024,
        max_age_ms: 5_000,
        ..WindowPolicy::default()
    })
    .config(RuntimeConfig {
        poll_max_records: 64,
        commit_interval_ms: 200,
        ..RuntimeConfig::default()
    })
    .run(source, std::future::pending())
    .await
    .expect("pipeline run");
    let elapsed = started.elapsed();

    assert_eq!(report.messages_in, messages.len() as u64);
    assert_eq!(report.dead_letters, 0, "{:?}", dead_letters.letters());
    assert_eq!(report.unacknowledged_groups, 0);
    let ends = end_offsets(&topic, PARTITIONS).await;
    assert_eq!(
        report.committed,
        ends.iter()
            .copied()
            .filter(|p| p.offset > 0)
            .collect::<Vec<_>>()
    );
    let on_broker = committed(&topic, &group, PARTITIONS).await;
    assert_eq!(
        on_broker,
        ends.iter()
            .map(|p| (p.offset > 0).then_some(p.offset))
            .collect::<Vec<_>>(),
        "the group's committed offsets are the end offsets"
    );

    // Firestore: every message in exactly one document.
    let docs = firestore::documents(&db, &firestore_config.collection).await;
    assert_eq!(docs.len() as u64, report.groups_out);
    let mut doc_of: BTreeMap<String, String> = BTreeMap::new();
    for doc in &docs {
        assert_eq!(doc.message_count as usize, doc.list_of_messages.len());
        for m in &doc.list_of_messages {
            assert_eq!(m.chat_id, doc.chat_id);
            if let Some(other) = doc_of.insert(m.message_id.to_string(), doc.group_id.clone()) {
                panic!(
                    "{} is in documents {other} and {}",
                    m.message_id, doc.group_id
                );
            }
        }
    }
    let all: BTreeSet<String> = messages.iter().map(|m| m.message_id.to_string()).collect();
    assert_eq!(doc_of.keys().cloned().collect::<BTreeSet<_>>(), all);

    // Cassandra: every message in exactly one row, in each chat's order.
    let history = History::new(Arc::clone(&session), &cassandra_config)
        .await
        .expect("history");
    let mut rows = 0;
    for chat in 0..CHATS {
        let chat = format!("chat-{chat}");
        let read = cassandra::read_all(&history, &chat, 17).await;
        let expected: Vec<ChatMessage> = messages
            .iter()
            .filter(|m| m.chat_id == chat)
            .rev()
            .cloned()
            .collect();
        assert_eq!(read, expected, "history of {chat}");
        rows += read.len();
    }
    assert_eq!(rows, messages.len());
    cassandra::drop_keyspace(&session, &cassandra_config.keyspace).await;
    eprintln!(
        "end to end: {} messages in {} groups over {} partitions in {:.1} s",
        report.messages_in,
        report.groups_out,
        partitions_used.len(),
        elapsed.as_secs_f64()
    );
}
