//! Cassandra: migrations, idempotent history rows, and pagination across bucket boundaries.

use std::sync::Arc;

use confab_connectors::cassandra::{self, CassandraConfig, CassandraSink, History, MIGRATIONS};
use confab_connectors::env_or;
use confab_pipeline::chat::timeuuid_ms;
use confab_pipeline::{group_id, ChatMessage, CompletionReason, Group, Sink};
use scylla::client::session::Session;

use crate::{chat_message, unique_name};

/// A config for a fresh keyspace with `bucket_size_ms` buckets.
pub(crate) fn config(bucket_size_ms: u64) -> CassandraConfig {
    CassandraConfig {
        nodes: env_or("CASSANDRA_NODES", "127.0.0.1:9042"),
        keyspace: unique_name("confab_test"),
        bucket_size_ms,
        consistency: cassandra::ConsistencyLevel::One,
        ..CassandraConfig::default()
    }
}

pub(crate) async fn sink(config: &CassandraConfig) -> CassandraSink {
    CassandraSink::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) async fn drop_keyspace(session: &Session, keyspace: &str) {
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[])
        .await
        .expect("DROP KEYSPACE");
}

/// Every message of `chat`, newest first, read page by page.
pub(crate) async fn read_all(history: &History, chat: &str, page: usize) -> Vec<ChatMessage> {
    let mut all: Vec<ChatMessage> = Vec::new();
    loop {
        let before = all.last().map(|m| m.time);
        let next = history.page(chat, before, page).await.expect("page");
        let done = next.len() < page;
        all.extend(next);
        if done {
            return all;
        }
    }
}

fn group(messages: Vec<ChatMessage>) -> Group<String, ChatMessage> {
    let times: Vec<u64> = messages
        .iter()
        .map(|m| timeuuid_ms(&m.time).unwrap_or(0))
        .collect();
    Group {
        id: group_id(&messages[0].chat_id, &messages[0].message_id),
        key: messages[0].chat_id.to_string(),
        first_time_ms: times.iter().copied().min().unwrap_or(0),
        last_time_ms: times.iter().copied().max().unwrap_or(0),
        bytes: 0,
        reason: CompletionReason::MaxMessages,
        records: messages,
    }
}

#[tokio::test]
async fn pagination_walks_buckets_newest_first_across_bucket_boundaries() {
    // One-second buckets; 25 messages 130 ms apart span four buckets.
    let config = config(1_000);
    let sink = sink(&config).await;
    let session = sink.session();
    let history = History::new(Arc::clone(&session), &config)
        .await
        .expect("history");
    let t0 = 1_700_000_000_000;
    let messages: Vec<ChatMessage> = (0..25)
        .map(|i| {
            let mut m = chat_message("chat-p", i, t0 + 130 * i as u64);
            // Some large bodies, so a group needs several batches under the size limit.
            if i % 5 == 0 {
                m.body = "y".repeat(12_000).into();
            }
            m
        })
        .collect();
    let other: Vec<ChatMessage> = (0..3)
        .map(|i| chat_message("chat-q", i, t0 + i as u64))
        .collect();
    let groups = vec![
        group(messages[..10].to_vec()),
        group(messages[10..].to_vec()),
        group(other.clone()),
    ];
    sink.write(&groups).await.expect("write");
    // A replay rewrites the same rows.
    sink.write(&groups).await.expect("replay");

    let newest_first: Vec<ChatMessage> = messages.iter().rev().cloned().collect();
    let first = history.page("chat-p", None, 10).await.expect("first page");
    assert_eq!(first, newest_first[..10], "the latest page, newest first");
    let second = history
        .page("chat-p", Some(first[9].time), 10)
        .await
        .expect("second page");
    assert_eq!(second, newest_first[10..20]);
    let buckets: std::collections::BTreeSet<u64> = second
        .iter()
        .map(|m| timeuuid_ms(&m.time).unwrap_or(0) / 1_000)
        .collect();
    assert!(
        buckets.len() > 1,
        "the second page crosses a bucket boundary"
    );
    let third = history
        .page("chat-p", Some(second[9].time), 10)
        .await
        .expect("third page");
    assert_eq!(
        third,
        newest_first[20..],
        "a short page: the history is exhausted"
    );
    assert!(history
        .page("chat-p", Some(third[4].time), 10)
        .await
        .expect("past the oldest")
        .is_empty());

    // A cursor inside a bucket, strictly older than the cursor.
    let cursor = messages[12].time;
    let page = history.page("chat-p", Some(cursor), 3).await.expect("page");
    assert_eq!(
        page,
        [
            messages[11].clone(),
            messages[10].clone(),
            messages[9].clone()
        ]
    );

    assert_eq!(
        read_all(&history, "chat-p", 7).await,
        newest_first,
        "no row doubled"
    );
    assert_eq!(
        read_all(&history, "chat-q", 10).await,
        other.iter().rev().cloned().collect::<Vec<_>>()
    );
    assert!(history
        .page("no-such-chat", None, 10)
        .await
        .expect("empty")
        .is_empty());
    assert!(history
        .page("chat-p", Some(uuid::Uuid::new_v4()), 10)
        .await
        .is_err());
    drop_keyspace(&session, &config.keyspace).await;
}

#[tokio::test]
async fn migrations_are_recorded_and_running_them_again_applies_nothing() {
    let config = config(86_400_000);
    let sink = sink(&config).await;
    let session = sink.session();
    let again = cassandra::migrate(&session, &config.keyspace, &config.replication)
        .await
        .expect("migrate again");
    assert!(again.is_empty(), "already applied: {again:?}");
    let versions: Vec<i32> = session
        .query_unpaged(
            format!("SELECT version FROM {}.schema_migrations", config.keyspace),
            &[],
        )
        .await
        .expect("select")
        .into_rows_result()
        .expect("rows")
        .rows::<(i32,)>()
        .expect("typed")
        .map(|r| r.expect("row").0)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        versions,
        MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>()
    );
    for table in [
        "messages",
        "chat_buckets",
        "chats",
        "chats_by_user",
        "chat_pairs",
        "chats_by_id",
        "chats_by_member",
        "client_messages",
    ] {
        session
            .query_unpaged(
                format!("SELECT * FROM {}.{table} LIMIT 1", config.keyspace),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("table {table}: {e}"));
    }
    drop_keyspace(&session, &config.keyspace).await;
}
