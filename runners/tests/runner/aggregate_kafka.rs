//! `confab aggregate` as a process on the real servers: Kafka in, Firestore and Cassandra out,
//! stopped with SIGTERM; it must exit 0 having written every message once and committed them all.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use confab_connectors::cassandra::{CassandraConfig, History};
use confab_connectors::env_or;
use confab_connectors::firestore::GroupDocument;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::{confab, message_json};

const N: u64 = 240;
const CHATS: u64 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_firestore_and_cassandra_then_sigterm_commits_everything() {
    let brokers = env_or("KAFKA_BROKERS", "127.0.0.1:9092");
    let nodes = env_or("CASSANDRA_NODES", "127.0.0.1:9042");
    let project = env_or("FIRESTORE_PROJECT_ID", "confab-local");
    let firestore_host = env_or("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080");
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (topic, group, keyspace, collection) = (
        format!("runner_{run}"),
        format!("runner_{run}"),
        format!("runner_{}", &run[..16]),
        format!("runner_{run}"),
    );

    // The backlog: N messages over CHATS chats on a 3-partition topic, keyed by chat.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for created in admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &options,
        )
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach Kafka at {brokers} ({e}): start it with scripts/infra up kafka")
        })
    {
        created.expect("topic created");
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("acks", "all")
        .create()
        .expect("producer");
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..N {
        let chat = format!("chat-{}", i % CHATS);
        let payload = message_json(i, &chat, 1_700_000_000_000 + i * 20);
        producer
            .send(
                FutureRecord::to(&topic).key(&chat).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("producing to {topic}: {e}"));
        expected.entry(chat).or_default().push(format!("m{i}"));
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let groups_file = dir.path().join("groups.jsonl");
    let config = format!(
        r#"
key = "chat"
[source]
type = "kafka"
brokers = "{brokers}"
topic = "{topic}"
group_id = "{group}"
[[sinks]]
type = "firestore"
project_id = "{project}"
collection = "{collection}"
[[sinks]]
type = "cassandra"
nodes = "{nodes}"
keyspace = "{keyspace}"
[[sinks]]
type = "file"
path = "{groups}"
[dead_letters]
type = "file"
path = "{dead}"
[window]
inactivity_timeout_ms = 500
max_messages = 10
[runtime]
lateness_ms = 200
commit_interval_ms = 200
[http]
listen = "127.0.0.1:0"
"#,
        groups = groups_file.display(),
        dead = dir.path().join("dead.jsonl").display(),
    );
    let config_path = dir.path().join("aggregate.toml");
    std::fs::write(&config_path, config).expect("write config");

    let mut child = confab()
        .args(["aggregate", "--config"])
        .arg(&config_path)
        .env("FIRESTORE_EMULATOR_HOST", &firestore_host)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start confab aggregate");

    // Every message reaches the file sink (written with the others) before we stop it.
    let started = Instant::now();
    loop {
        let seen = std::fs::read_to_string(&groups_file)
            .unwrap_or_default()
            .matches("\"message_id\"")
            .count();
        if seen >= N as usize {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let err = child
                .stderr
                .take()
                .map(|mut s| {
                    let mut t = String::new();
                    let _ = std::io::Read::read_to_string(&mut s, &mut t);
                    t
                })
                .unwrap_or_default();
            panic!("confab aggregate exited early ({status}): {err}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {seen} of {N} messages written in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(killed.success());
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no exit within 60 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    if let Some(mut s) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut s, &mut stderr);
    }
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(stderr.contains("aggregator stopped"), "{stderr}");

    // Firestore: every message in exactly one group document.
    std::env::set_var("FIRESTORE_EMULATOR_HOST", &firestore_host);
    let db = firestore::FirestoreDb::new(&project)
        .await
        .expect("firestore client");
    let docs: Vec<GroupDocument> = db
        .fluent()
        .select()
        .from(collection.as_str())
        .obj::<GroupDocument>()
        .query()
        .await
        .expect("list the collection");
    let mut in_firestore: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for doc in &docs {
        for m in &doc.list_of_messages {
            in_firestore
                .entry(m.chat_id.clone())
                .or_default()
                .push(m.message_id.clone());
        }
    }
    for ids in in_firestore.values_mut() {
        ids.sort_by_key(|id| id[1..].parse::<u64>().unwrap_or(0));
    }
    assert_eq!(
        in_firestore, expected,
        "Firestore holds every message once, in order per chat"
    );

    // Cassandra: the history of each chat, newest first, is exactly its messages.
    let cassandra = CassandraConfig {
        nodes: nodes.clone(),
        keyspace: keyspace.clone(),
        ..CassandraConfig::default()
    };
    let session = confab_connectors::cassandra::connect(&cassandra)
        .await
        .expect("cassandra");
    let history = History::new(session, &cassandra).await.expect("history");
    for (chat, ids) in &expected {
        let page = history.page(chat, None, 1_000).await.expect("page");
        let mut got: Vec<String> = page.into_iter().map(|m| m.message_id).collect();
        got.reverse();
        assert_eq!(&got, ids, "history of {chat}");
    }

    // Kafka: the consumer group committed every partition to its end.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", &group)
        .create()
        .expect("consumer");
    let mut partitions = TopicPartitionList::new();
    for p in 0..3 {
        partitions.add_partition(&topic, p);
    }
    let committed = consumer
        .committed_offsets(partitions, Duration::from_secs(10))
        .expect("committed offsets");
    for element in committed.elements() {
        let (_, high) = consumer
            .fetch_watermarks(&topic, element.partition(), Duration::from_secs(10))
            .expect("watermarks");
        assert_eq!(
            element.offset(),
            Offset::Offset(high),
            "partition {} committed to its end",
            element.partition()
        );
    }
    let _ = admin.delete_topics(&[&topic], &options).await;
}
