//! Against a real Cassandra (`CASSANDRA_NODES`, default 127.0.0.1:9042;
//! `scripts/infra up cassandra`), with PostgreSQL as the database. Every test uses its own
//! keyspace, with one-second buckets so that a few seconds of messages span several partitions.
//!
//! - 95 messages written by the connectors' Cassandra sink across several buckets, walked through
//!   both history routes page by page: all 95 exactly once, newest first;
//! - (with `kafka`) the whole flow: API -> Kafka -> pipeline -> Cassandra -> history routes;
//! - the Cassandra chat store itself, where the API cannot reach: 16 concurrent creations of one
//!   pair straight at the transaction, a creation that stopped halfway, activity written out of
//!   order. (Every API test also runs on this store: `<test>::cassandra`.)

use crate::common::{cassandra_store_config, unique_name, Backend, TestApp, TestDb};
use axum::http::StatusCode;
use confab_chat::message_log::MemoryMessageLog;
use confab_chat::store::{CassandraChatStore, Created};
use confab_chat::ChatStore;
use confab_chat::{EventsConfig, HistoryConfig};
use confab_connectors::cassandra::{bucket_of, CassandraConfig, CassandraSink, ConsistencyLevel};
use confab_connectors::env_or;
use confab_pipeline::chat::{iso_from_ms, timeuuid_from_ms, timeuuid_ms};
use confab_pipeline::memory::MemoryLog;
use confab_pipeline::{group_id, ChatMessage, CompletionReason, Group, Sink};
use confab_token::Secret;
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
                message_id: Uuid::new_v4().to_string().into(),
                chat_id: chat.to_string().into(),
                from_user: from.id.to_string().into(),
                to_user: to.id.to_string().into(),
                body: format!("message {i}").into(),
                time: timeuuid_from_ms(ms, 0, [5; 6]),
                time_iso: iso_from_ms(ms).into(),
            }
        })
        .collect();
    let groups: Vec<Group<String, ChatMessage>> = messages
        .chunks(12)
        .map(|records| Group {
            id: group_id(&records[0].chat_id, &records[0].message_id),
            key: records[0].chat_id.to_string(),
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

/// The Cassandra chat store on a fresh keyspace, with a PostgreSQL database for the users.
struct StoreUnderTest {
    store: Arc<CassandraChatStore>,
    users: confab_chat::store::Store,
    db: TestDb,
}

impl StoreUnderTest {
    async fn new() -> Self {
        let mut db = TestDb::new(Backend::Postgres).await;
        let keyspace = unique_name("chat_store_test");
        db.keyspace = Some(keyspace.clone());
        let users = confab_chat::store::Store::connect(&Secret::new(db.url.clone()), 2)
            .await
            .expect("connect PostgreSQL");
        // The error names the address and `scripts/infra up cassandra`.
        let store =
            CassandraChatStore::connect(&cassandra_store_config(&keyspace), users.clone(), 3600)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        Self {
            store: Arc::new(store),
            users,
            db,
        }
    }

    async fn user(&self, name: &str) -> Uuid {
        let auth = self.db.auth_store().await;
        let user = auth
            .insert_user(name, "$argon2id$not-a-real-hash")
            .await
            .expect("insert user");
        auth.close().await;
        user.id
    }

    fn keyspace(&self) -> &str {
        self.db.keyspace.as_deref().expect("keyspace")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_store_creations_for_one_pair_make_one_chat_through_the_transaction() {
    let test = StoreUnderTest::new().await;
    let (ann, bob) = (test.user("ann").await, test.user("bob").await);
    // Straight at the store, so every call reaches the INSERT ... IF NOT EXISTS (the handler
    // looks the pair up first, which hides most of the race).
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&test.store);
            tokio::spawn(async move {
                if i % 2 == 0 {
                    store.create_chat(ann, bob).await
                } else {
                    store.create_chat(bob, ann).await
                }
            })
        })
        .collect();
    let mut new = Vec::new();
    let mut existing = Vec::new();
    for task in tasks {
        match task.await.expect("join").expect("create") {
            Created::New(chat) => new.push(chat),
            Created::Existing(chat) => existing.push(chat),
        }
    }
    assert_eq!(new.len(), 1, "exactly one creation applies");
    let chat = &new[0];
    assert_eq!(existing.len(), 15);
    for other in &existing {
        assert_eq!(other, chat, "every loser gets the winner's chat");
    }
    for user in [ann, bob] {
        let listed = test.store.list_chats(user, None, 50).await.expect("list");
        assert_eq!(listed.len(), 1, "one chat in each member's list");
        assert_eq!(&listed[0].chat, chat);
        assert_eq!(listed[0].low_name.is_some(), listed[0].high_name.is_some());
    }
    test.users.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_whose_creation_stopped_after_the_transaction_is_completed_by_the_next_reader() {
    let test = StoreUnderTest::new().await;
    let (ann, bob) = (test.user("ann").await, test.user("bob").await);
    let (low, high) = if ann < bob { (ann, bob) } else { (bob, ann) };
    // A creator that won the transaction and died before writing anything else.
    let chat_id = Uuid::now_v7();
    let session = test.store.session();
    session
        .query_unpaged(
            format!(
                "INSERT INTO {}.chat_pairs (user_low, user_high, chat_id, created_by, created_at) \
                 VALUES (?, ?, ?, ?, toTimestamp(now()))",
                test.keyspace()
            ),
            (low, high, chat_id, ann),
        )
        .await
        .expect("insert the pair alone");
    assert_eq!(test.store.find_chat(chat_id).await.expect("find"), None);
    assert!(test
        .store
        .list_chats(bob, None, 50)
        .await
        .expect("list")
        .is_empty());

    let found = test
        .store
        .find_chat_of_pair(bob, ann)
        .await
        .expect("find the pair")
        .expect("the pair has a chat");
    assert_eq!(
        (found.id, found.user_low, found.user_high),
        (chat_id, low, high)
    );
    assert_eq!(found.created_by, ann);
    assert_eq!(
        test.store.find_chat(chat_id).await.expect("find"),
        Some(found.clone()),
        "the chat's rows were written"
    );
    match test.store.create_chat(bob, ann).await.expect("create") {
        Created::Existing(chat) => assert_eq!(chat, found),
        Created::New(chat) => panic!("a second chat for the pair: {chat:?}"),
    }
    for user in [ann, bob] {
        let listed = test.store.list_chats(user, None, 50).await.expect("list");
        let ids: Vec<Uuid> = listed.iter().map(|c| c.chat.id).collect();
        assert_eq!(ids, [chat_id]);
    }
    test.users.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_written_out_of_order_never_moves_back() {
    let test = StoreUnderTest::new().await;
    let (ann, bob, cat) = (
        test.user("ann").await,
        test.user("bob").await,
        test.user("cat").await,
    );
    let Created::New(with_bob) = test.store.create_chat(ann, bob).await.expect("create") else {
        panic!("a fresh pair");
    };
    let Created::New(with_cat) = test.store.create_chat(ann, cat).await.expect("create") else {
        panic!("a fresh pair");
    };
    let t0 = with_cat.created_at;
    let newer = t0 + chrono::Duration::seconds(2);
    let older = t0 + chrono::Duration::seconds(1);
    test.store
        .touch_chat(&with_bob, newer)
        .await
        .expect("touch");
    // A send that finished later but happened earlier (another replica, a slow request).
    test.store
        .touch_chat(&with_bob, older)
        .await
        .expect("touch");
    let stored = test
        .store
        .find_chat(with_bob.id)
        .await
        .expect("find")
        .expect("chat");
    assert_eq!(stored.last_activity, newer, "the newest activity wins");
    for user in [ann, bob] {
        let listed = test.store.list_chats(user, None, 50).await.expect("list");
        assert_eq!(listed[0].chat.id, with_bob.id);
        assert_eq!(listed[0].chat.last_activity, newer, "{user}'s row too");
    }
    // Ann's list, most recent first, and paged by the (activity, id) cursor.
    let listed = test.store.list_chats(ann, None, 1).await.expect("list");
    assert_eq!(listed.len(), 1);
    let cursor = (listed[0].chat.last_activity, listed[0].chat.id);
    let rest = test
        .store
        .list_chats(ann, Some(cursor), 10)
        .await
        .expect("list");
    let ids: Vec<Uuid> = rest.iter().map(|c| c.chat.id).collect();
    assert_eq!(ids, [with_cat.id]);
    let names: Vec<Option<&str>> =
        [rest[0].low_name.as_deref(), rest[0].high_name.as_deref()].into();
    let mut names: Vec<&str> = names.into_iter().map(|n| n.expect("a username")).collect();
    names.sort_unstable();
    assert_eq!(names, ["ann", "cat"], "usernames come from the users table");
    test.users.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_alone_creates_the_sql_tables_and_the_store_keyspace() {
    let mut db = TestDb::new(Backend::Postgres).await;
    let keyspace = unique_name("chat_migrate");
    db.keyspace = Some(keyspace.clone());
    let config = confab_chat::Config {
        database_url: Secret::new(db.url.clone()),
        store: confab_chat::StoreConfig::Cassandra(cassandra_store_config(&keyspace)),
        ..confab_chat::Config::default()
    };
    // `confab chat migrate`: nothing else starts (no verifier key is configured).
    confab_chat::migrate(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = CassandraChatStore::connect(
        &CassandraConfig {
            migrate: false,
            ..cassandra_store_config(&keyspace)
        },
        confab_chat::store::Store::connect(&config.database_url, 1)
            .await
            .expect("connect PostgreSQL"),
        3600,
    )
    .await
    .unwrap_or_else(|e| panic!("the keyspace was migrated: {e}"));
    store.check().await.expect("the store answers");
    assert_eq!(
        store.find_chat(Uuid::now_v7()).await.expect("query"),
        None,
        "the tables exist and are empty"
    );
}
