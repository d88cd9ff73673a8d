//! What the process-level reliability tests share: a fresh topic (Kafka or Fluvio) with live
//! producers, the aggregator as a child process (killed, terminated, watched), the check of what
//! reached Firestore, Cassandra and the committed offsets, and a Fluvio cluster of a test's own.

// Shared by two test binaries (`runner` and `faults`), each of which uses only a part.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use confab_connectors::cassandra::{CassandraConfig, History};
use confab_connectors::env_or;
use confab_connectors::firestore::GroupDocument;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The built `confab` binary.
pub(crate) fn confab() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_confab"))
}

/// The repository's root folder.
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A chat message as JSON, with a version-1 TimeUUID at `ms`.
pub(crate) fn message_json(i: u64, chat: &str, ms: u64) -> String {
    use confab_pipeline::chat::{iso_from_ms, timeuuid_from_ms};
    let m = confab_pipeline::ChatMessage {
        message_id: format!("m{i}").into(),
        chat_id: chat.into(),
        from_user: format!("u{}", i % 2).into(),
        to_user: format!("u{}", (i + 1) % 2).into(),
        body: format!("message {i}").into(),
        time: timeuuid_from_ms(ms, (i % 10_000) as u16, [0, 0, 0, 0, 0, 7]),
        time_iso: iso_from_ms(ms).into(),
    };
    String::from_utf8(m.encode()).unwrap_or_default()
}

/// A plain HTTP GET on loopback (one request needs no client library).
pub(crate) fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Message ids per chat, in the order they were produced (the log order of the chat's partition).
pub(crate) type Expected = BTreeMap<String, Vec<String>>;

/// A small seeded generator (xorshift64*): the same seed gives the same kill schedule.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `low..high`.
    pub(crate) fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low).max(1)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `scripts/infra ACTION SERVER`, with this process's environment (the servers' ports) and `env`.
pub(crate) fn infra(action: &str, server: &str, env: &[(&str, String)]) {
    let status = std::process::Command::new(repo_root().join("scripts/infra"))
        .args([action, server])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .status()
        .expect("run scripts/infra");
    assert!(status.success(), "scripts/infra {action} {server} failed");
}

/// The log a backlog's topic is in.
enum Log {
    Kafka {
        admin: AdminClient<DefaultClientContext>,
        /// Made on the first [`Backlog::send`].
        producer: OnceLock<FutureProducer>,
    },
    Fluvio(FluvioLog),
}

/// A Fluvio topic's writer, shared with the live producers' tasks.
#[derive(Clone)]
struct FluvioLog {
    endpoint: String,
    producer: Arc<fluvio::TopicProducerPool>,
    /// One past the last offset produced, per partition: where the committed offsets must reach
    /// (only the test writes to its topic).
    ends: Arc<Mutex<BTreeMap<u32, u64>>>,
    client: Arc<fluvio::Fluvio>,
}

impl FluvioLog {
    /// Writes `records` (key, payload), then waits until the SPU acknowledged every one.
    async fn write(&self, topic: &str, records: &[(String, Vec<u8>)]) {
        let mut sent = Vec::with_capacity(records.len());
        for (key, payload) in records {
            let output = self
                .producer
                .send(key.clone().into_bytes(), payload.clone())
                .await
                .unwrap_or_else(|e| panic!("producing to Fluvio {topic}: {e:#}"));
            sent.push(output);
        }
        self.producer
            .flush()
            .await
            .unwrap_or_else(|e| panic!("flushing to Fluvio {topic}: {e:#}"));
        for output in sent {
            let metadata = output
                .wait()
                .await
                .unwrap_or_else(|e| panic!("producing to Fluvio {topic}: {e:#}"));
            let mut ends = self.ends.lock().expect("ends");
            let end = ends.entry(metadata.partition_id()).or_insert(0);
            *end = (*end).max(metadata.offset() as u64 + 1);
        }
    }
}

/// A fresh topic (Kafka or Fluvio) and the consumer group (Kafka) or consumer name (Fluvio)
/// the aggregator commits under.
pub(crate) struct Backlog {
    /// Kafka's bootstrap servers (empty for a Fluvio backlog).
    pub(crate) brokers: String,
    pub(crate) topic: String,
    /// The Kafka consumer group, or the Fluvio consumer name.
    pub(crate) group: String,
    pub(crate) run: String,
    partitions: i32,
    log: Log,
}

impl Backlog {
    pub(crate) async fn create(prefix: &str, partitions: i32) -> Self {
        let brokers = env_or("KAFKA_BROKERS", "127.0.0.1:9092");
        let run = uuid::Uuid::new_v4().simple().to_string();
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("admin client");
        let topic = format!("{prefix}_{run}");
        for created in admin
            .create_topics(
                &[NewTopic::new(
                    &topic,
                    partitions,
                    TopicReplication::Fixed(1),
                )],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot reach Kafka at {brokers} ({e}): start it with scripts/infra up kafka"
                )
            })
        {
            created.expect("topic created");
        }
        Self {
            brokers,
            group: topic.clone(),
            topic,
            run,
            partitions,
            log: Log::Kafka {
                admin,
                producer: OnceLock::new(),
            },
        }
    }

    /// A fresh topic on the Fluvio cluster at `CONFAB_FLUVIO_ENDPOINT` (127.0.0.1:9003 by
    /// default, where `scripts/infra up fluvio` serves).
    pub(crate) async fn create_fluvio(prefix: &str, partitions: u32) -> Self {
        let endpoint = env_or("CONFAB_FLUVIO_ENDPOINT", "127.0.0.1:9003");
        Self::create_fluvio_at(&endpoint, prefix, partitions).await
    }

    /// A fresh topic on the Fluvio cluster at `endpoint`.
    pub(crate) async fn create_fluvio_at(endpoint: &str, prefix: &str, partitions: u32) -> Self {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let client = fluvio_client(endpoint).await;
        // Fluvio names take lowercase letters, digits and dashes only.
        let topic = format!("{prefix}-{run}");
        confab_connectors::fluvio::create_topic(
            &client,
            &topic,
            partitions,
            Duration::from_secs(60),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let producer = client
            .topic_producer(&topic)
            .await
            .unwrap_or_else(|e| panic!("a producer for Fluvio {topic}: {e:#}"));
        Self {
            brokers: String::new(),
            group: topic.clone(),
            topic,
            run,
            partitions: partitions as i32,
            log: Log::Fluvio(FluvioLog {
                endpoint: endpoint.to_string(),
                producer: Arc::new(producer),
                ends: Arc::default(),
                client: Arc::new(client),
            }),
        }
    }

    /// The `[source]` lines of the aggregator's config for this topic. `instance` is the Kafka
    /// consumer's static group membership id (empty: none; Fluvio has no consumer groups).
    fn source_toml(&self, instance: &str) -> String {
        match &self.log {
            Log::Kafka { .. } => {
                let membership = if instance.is_empty() {
                    String::new()
                } else {
                    format!(r#"properties = {{ "group.instance.id" = "{instance}" }}"#)
                };
                format!(
                    "type = \"kafka\"\nbrokers = \"{}\"\ntopic = \"{}\"\ngroup_id = \"{}\"\n\
                     session_timeout_ms = 6000\n{membership}",
                    self.brokers, self.topic, self.group
                )
            }
            Log::Fluvio(log) => format!(
                "type = \"fluvio\"\nendpoint = \"{}\"\ntopic = \"{}\"\nconsumer = \"{}\"",
                log.endpoint, self.topic, self.group
            ),
        }
    }

    /// The Fluvio client of a Fluvio backlog.
    pub(crate) fn fluvio(&self) -> &fluvio::Fluvio {
        match &self.log {
            Log::Fluvio(log) => &log.client,
            Log::Kafka { .. } => panic!("{} is a Kafka topic", self.topic),
        }
    }

    /// A new client and producer for a Fluvio backlog, after its cluster restarted.
    pub(crate) async fn reconnect_fluvio(&mut self) {
        let Log::Fluvio(log) = &mut self.log else {
            panic!("{} is a Kafka topic", self.topic);
        };
        let client = fluvio_client(&log.endpoint).await;
        let producer = client
            .topic_producer(&self.topic)
            .await
            .unwrap_or_else(|e| panic!("a producer for Fluvio {}: {e:#}", self.topic));
        log.client = Arc::new(client);
        log.producer = Arc::new(producer);
    }

    /// The SC address of a Fluvio backlog's cluster.
    pub(crate) fn fluvio_endpoint(&self) -> &str {
        match &self.log {
            Log::Fluvio(log) => &log.endpoint,
            Log::Kafka { .. } => panic!("{} is a Kafka topic", self.topic),
        }
    }

    /// Every record of `topic` on a Fluvio backlog's cluster, as text, in each partition's order.
    pub(crate) async fn read_fluvio_topic(&self, topic: &str) -> Vec<String> {
        use confab_connectors::fluvio::{FluvioSource, FluvioSourceConfig};
        use confab_pipeline::{Polled, Source};
        let mut source = FluvioSource::connect(&FluvioSourceConfig {
            endpoint: self.fluvio_endpoint().to_string(),
            topic: topic.to_string(),
            consumer: format!("{topic}-reader"),
            exit_at_end: true,
            ..FluvioSourceConfig::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let mut records = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                Instant::now() < deadline,
                "{topic} not read to its end within 60 s"
            );
            match source.poll(1000, Duration::from_millis(200)).await {
                Ok(Polled::Records(batch)) => records.extend(
                    batch
                        .into_iter()
                        .map(|r| String::from_utf8_lossy(&r.payload).into_owned()),
                ),
                Ok(Polled::End) => return records,
                Ok(_) => {}
                Err(e) => panic!("reading {topic}: {e}"),
            }
        }
    }

    /// Writes one record keyed `key` and waits until the log acknowledged it.
    pub(crate) async fn send(&self, key: &str, payload: &[u8]) {
        match &self.log {
            Log::Kafka { producer, .. } => {
                let producer = producer.get_or_init(|| {
                    ClientConfig::new()
                        .set("bootstrap.servers", &self.brokers)
                        .set("acks", "all")
                        .create()
                        .expect("producer")
                });
                producer
                    .send(
                        FutureRecord::to(&self.topic).key(key).payload(payload),
                        Duration::from_secs(30),
                    )
                    .await
                    .unwrap_or_else(|(e, _)| panic!("producing to {}: {e}", self.topic));
            }
            Log::Fluvio(log) => {
                log.write(&self.topic, &[(key.to_string(), payload.to_vec())])
                    .await;
            }
        }
    }

    /// Produces `messages` (numbered from `first`) over `chats` chats (named `{chat_prefix}-{n}`) at about `rate` per second, each stamped with the
    /// time it is produced, in a background task that returns what it produced. Chat 0 gets a
    /// twentieth of the traffic, at most 40 messages/s (a busy chat that fills groups); the rest
    /// are spread evenly. The
    /// producer retries through broker outages (idempotent, `acks=all`): every message it
    /// returns was acknowledged. On Fluvio, whose producer does not retry through a restart, a
    /// failed write fails the test.
    pub(crate) fn produce_live(
        &self,
        chat_prefix: &str,
        first: u64,
        messages: u64,
        chats: u64,
        rate: u64,
    ) -> tokio::task::JoinHandle<Expected> {
        let producer = match &self.log {
            Log::Kafka { .. } => Ok(ClientConfig::new()
                .set("bootstrap.servers", &self.brokers)
                .set("acks", "all")
                .set("enable.idempotence", "true")
                .set("message.timeout.ms", "300000")
                .set("linger.ms", "5")
                .create::<FutureProducer>()
                .expect("producer")),
            Log::Fluvio(log) => Err(log.clone()),
        };
        let topic = self.topic.clone();
        let prefix = chat_prefix.to_string();
        tokio::spawn(async move {
            let mut expected = Expected::new();
            let tick = Duration::from_millis(50);
            let per_tick = (rate / 20).max(1);
            let started = Instant::now();
            let mut i = first;
            let end = first + messages;
            while i < end {
                let batch: Vec<_> = (i..(i + per_tick).min(end))
                    .map(|n| {
                        // The busy chat stays within the Firestore sink's default per-chat
                        // budget (5 documents/s, ~50 messages/s) at any rate.
                        let chat = if n % (rate / 40).max(20) == 0 {
                            format!("{prefix}-0")
                        } else {
                            format!("{prefix}-{}", 1 + n % (chats - 1).max(1))
                        };
                        let payload = message_json(n, &chat, now_ms());
                        expected
                            .entry(chat.clone())
                            .or_default()
                            .push(format!("m{n}"));
                        (chat, payload)
                    })
                    .collect();
                match &producer {
                    Ok(kafka) => {
                        let sends = batch.iter().map(|(chat, payload)| {
                            kafka.send(
                                FutureRecord::to(&topic).key(chat).payload(payload),
                                Duration::from_secs(300),
                            )
                        });
                        for sent in futures::future::join_all(sends).await {
                            sent.unwrap_or_else(|(e, _)| panic!("producing to {topic}: {e}"));
                        }
                    }
                    Err(fluvio) => {
                        let records: Vec<(String, Vec<u8>)> = batch
                            .into_iter()
                            .map(|(chat, payload)| (chat, payload.into_bytes()))
                            .collect();
                        fluvio.write(&topic, &records).await;
                    }
                }
                i += per_tick;
                let due = started + tick * ((i - first) / per_tick) as u32;
                tokio::time::sleep_until(due.into()).await;
            }
            expected
        })
    }

    /// Waits until the consumer group has committed every partition to its end, while
    /// `aggregator` keeps running.
    pub(crate) async fn wait_committed_to_end(
        &self,
        aggregator: &mut Aggregator,
        timeout: Duration,
    ) {
        let kafka: Option<BaseConsumer> = matches!(self.log, Log::Kafka { .. }).then(|| {
            ClientConfig::new()
                .set("bootstrap.servers", &self.brokers)
                .set("group.id", &self.group)
                .create()
                .expect("consumer")
        });
        let started = Instant::now();
        loop {
            let lag = match &kafka {
                Some(consumer) => self.lag(consumer),
                None => self.fluvio_lag().await,
            };
            if lag == Some(0) {
                return;
            }
            aggregator.assert_running("while draining the topic");
            if started.elapsed() >= timeout {
                let partitions = match &kafka {
                    Some(_) => String::new(),
                    None => self.fluvio_positions_text().await,
                };
                panic!(
                    "the group did not commit to the end within {timeout:?} (lag {lag:?}{partitions})\n\
                     aggregator metrics:\n{}\naggregator {}\naggregator log, last lines:\n{}",
                    aggregator.metrics(),
                    aggregator.log_warnings(15),
                    aggregator.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Records not yet committed by the group, over all partitions (`None` if unknown).
    pub(crate) fn lag(&self, consumer: &BaseConsumer) -> Option<i64> {
        let mut partitions = TopicPartitionList::new();
        for p in 0..self.partitions {
            partitions.add_partition(&self.topic, p);
        }
        let committed = consumer
            .committed_offsets(partitions, Duration::from_secs(10))
            .ok()?;
        let mut lag = 0;
        for element in committed.elements() {
            let (_, high) = consumer
                .fetch_watermarks(&self.topic, element.partition(), Duration::from_secs(10))
                .ok()?;
            lag += match element.offset() {
                Offset::Offset(committed) => high - committed,
                _ => high,
            };
        }
        Some(lag)
    }

    /// Per partition of a Fluvio backlog: one past the last offset produced, and the consumer's
    /// stored offset (the last record it processed), if any. `None` if the offsets cannot be
    /// read.
    async fn fluvio_positions(&self) -> Option<Vec<(u32, u64, Option<i64>)>> {
        let Log::Fluvio(log) = &self.log else {
            panic!("{} is a Kafka topic", self.topic);
        };
        let stored = confab_connectors::fluvio::consumer_offsets(
            &log.client,
            confab_connectors::fluvio::OFFSETS_TOPIC_WAIT,
        )
        .await
        .ok()?;
        let ends = log.ends.lock().expect("ends").clone();
        let positions = ends.iter().map(|(&partition, &end)| {
            let offset = stored
                .iter()
                .find(|o| {
                    o.consumer_id == self.group && o.topic == self.topic && o.partition == partition
                })
                .map(|o| o.offset);
            (partition, end, offset)
        });
        Some(positions.collect())
    }

    /// [`Backlog::fluvio_positions`] as text for a failure message.
    async fn fluvio_positions_text(&self) -> String {
        match self.fluvio_positions().await {
            None => "; the stored offsets cannot be read".to_string(),
            Some(positions) => positions
                .iter()
                .map(|(partition, end, stored)| match stored {
                    Some(offset) => {
                        format!(
                            "; partition {partition}: produced to {end}, stored offset {offset}"
                        )
                    }
                    None => format!("; partition {partition}: produced to {end}, no stored offset"),
                })
                .collect(),
        }
    }

    /// Records of a Fluvio backlog produced but not committed by its consumer (`None` if the
    /// offsets cannot be read).
    pub(crate) async fn fluvio_lag(&self) -> Option<i64> {
        let positions = self.fluvio_positions().await?;
        let lag = positions
            .iter()
            .map(|(_, end, stored)| *end as i64 - stored.map_or(0, |offset| offset + 1))
            .sum();
        Some(lag)
    }

    /// Deletes a Kafka topic. Fluvio topics stay: a local SC sometimes left a topic creation
    /// unanswered while a deletion was being cleaned up beside it.
    pub(crate) async fn delete(&self) {
        if let Log::Kafka { admin, .. } = &self.log {
            let _ = admin
                .delete_topics(&[&self.topic], &AdminOptions::new())
                .await;
        }
    }
}

/// A client of the Fluvio cluster at `endpoint`; fails the test, saying how to start the
/// cluster, when there is none.
pub(crate) async fn fluvio_client(endpoint: &str) -> fluvio::Fluvio {
    let config = fluvio::FluvioClusterConfig::new(endpoint);
    tokio::time::timeout(
        Duration::from_secs(30),
        fluvio::Fluvio::connect_with_config(&config),
    )
    .await
    .map_err(|_| "timed out".to_string())
    .and_then(|r| r.map_err(|e| format!("{e:#}")))
    .unwrap_or_else(|e| {
        panic!("cannot reach Fluvio at {endpoint} ({e}): start it with scripts/infra up fluvio")
    })
}

/// A Fluvio cluster of one test's own: `scripts/infra up fluvio` with a temporary state folder
/// and free ports, so that the test may start it fresh, stop and restart it without touching
/// the shared cluster other tests use. Stopped when dropped.
pub(crate) struct OwnFluvio {
    pub(crate) endpoint: String,
    env: Vec<(&'static str, String)>,
    _dir: tempfile::TempDir,
}

impl OwnFluvio {
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // Held together, so that the four ports differ; freed just before the cluster binds.
        let listeners: Vec<std::net::TcpListener> = (0..4)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
            .collect();
        let ports: Vec<String> = listeners
            .iter()
            .map(|l| l.local_addr().expect("port").port().to_string())
            .collect();
        drop(listeners);
        let env = vec![
            ("CONFAB_INFRA_DIR", dir.path().display().to_string()),
            ("FLUVIO_SC_PORT", ports[0].clone()),
            ("FLUVIO_SC_PRIVATE_PORT", ports[1].clone()),
            ("FLUVIO_SPU_PORT", ports[2].clone()),
            ("FLUVIO_SPU_PRIVATE_PORT", ports[3].clone()),
        ];
        let own = Self {
            endpoint: format!("127.0.0.1:{}", ports[0]),
            env,
            _dir: dir,
        };
        own.up();
        own
    }

    pub(crate) fn up(&self) {
        infra("up", "fluvio", &self.env);
    }

    pub(crate) fn down(&self) {
        infra("down", "fluvio", &self.env);
    }
}

impl Drop for OwnFluvio {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo_root().join("scripts/infra"))
            .args(["down", "fluvio"])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .status();
    }
}

/// The sinks a test run writes to: a fresh Firestore collection and Cassandra keyspace.
pub(crate) struct Outputs {
    pub(crate) project: String,
    pub(crate) firestore_host: String,
    pub(crate) nodes: String,
    pub(crate) keyspace: String,
    pub(crate) collection: String,
    /// The `[dead_letters]` lines; `None`: a file `dead.jsonl` in the config's folder.
    pub(crate) dead_letters: Option<String>,
}

impl Outputs {
    pub(crate) fn new(run: &str) -> Self {
        Self {
            project: env_or("FIRESTORE_PROJECT_ID", "confab-local"),
            firestore_host: env_or("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080"),
            nodes: env_or("CASSANDRA_NODES", "127.0.0.1:9042"),
            keyspace: format!("reliability_{}", &run[..16]),
            collection: format!("reliability_{run}"),
            dead_letters: None,
        }
    }

    /// Writes the aggregator's config for `backlog` into `dir`. `instance` is the consumer's
    /// static group membership id, so that a restarted process takes its partitions back at once
    /// instead of waiting for the killed one's session to expire (empty: no static membership).
    /// `source` and `runtime` are extra lines for those tables.
    pub(crate) fn config(
        &self,
        backlog: &Backlog,
        dir: &Path,
        instance: &str,
        source: &str,
        runtime: &str,
    ) -> PathBuf {
        let dead_letters = self.dead_letters.clone().unwrap_or_else(|| {
            format!(
                "type = \"file\"\npath = \"{}\"",
                dir.join("dead.jsonl").display()
            )
        });
        let config = format!(
            r#"
key = "chat"
[source]
{log}
{source}
[[sinks]]
type = "firestore"
project_id = "{project}"
collection = "{collection}"
[[sinks]]
type = "cassandra"
nodes = "{nodes}"
keyspace = "{keyspace}"
[dead_letters]
{dead_letters}
[window]
inactivity_timeout_ms = 500
max_messages = 10
[runtime]
# lateness_ms stays at its default (500 ms): the replay guarantee holds for records delayed less
# than it, and 200 ms was exceeded now and then by Fluvio on this loaded 2-core machine.
commit_interval_ms = 200
{runtime}
[http]
listen = "127.0.0.1:0"
"#,
            log = backlog.source_toml(instance),
            project = self.project,
            collection = self.collection,
            nodes = self.nodes,
            keyspace = self.keyspace,
        );
        let name = if instance.is_empty() {
            "aggregator"
        } else {
            instance
        };
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config).expect("write config");
        path
    }

    /// Every group document in the collection.
    pub(crate) async fn documents(&self) -> Vec<GroupDocument> {
        std::env::set_var("FIRESTORE_EMULATOR_HOST", &self.firestore_host);
        let db = firestore::FirestoreDb::new(&self.project)
            .await
            .expect("firestore client");
        db.fluent()
            .select()
            .from(self.collection.as_str())
            .obj::<GroupDocument>()
            .query()
            .await
            .expect("list the collection")
    }

    /// The groups written: each group document's id and its message ids, in order.
    pub(crate) async fn groups(&self) -> BTreeMap<String, Vec<String>> {
        self.documents()
            .await
            .into_iter()
            .map(|d| {
                let ids = d
                    .list_of_messages
                    .iter()
                    .map(|m| m.message_id.to_string())
                    .collect();
                (d.group_id, ids)
            })
            .collect()
    }

    /// Checks Firestore and Cassandra against what was produced, panicking with the first
    /// difference, and returns what was counted.
    pub(crate) async fn verify(&self, expected: &Expected) -> Report {
        let produced: usize = expected.values().map(Vec::len).sum();
        // Where each message is in the log of its chat.
        let position: BTreeMap<&str, (&str, usize)> = expected
            .iter()
            .flat_map(|(chat, ids)| {
                ids.iter()
                    .enumerate()
                    .map(move |(n, id)| (id.as_str(), (chat.as_str(), n)))
            })
            .collect();

        // Firestore: each message in exactly one group document, each document in log order.
        let docs = self.documents().await;
        let mut holder: BTreeMap<String, String> = BTreeMap::new();
        for doc in &docs {
            let mut previous: Option<usize> = None;
            for m in &doc.list_of_messages {
                let Some(&(chat, n)) = position.get(m.message_id.as_str()) else {
                    panic!(
                        "document {} holds {} which was never produced",
                        doc.group_id, m.message_id
                    );
                };
                assert_eq!(chat, doc.chat_id, "document {} mixes chats", doc.group_id);
                assert!(
                    previous.is_none_or(|p| p < n),
                    "document {} is not in log order at {}",
                    doc.group_id,
                    m.message_id
                );
                previous = Some(n);
                if let Some(other) = holder.insert(m.message_id.to_string(), doc.group_id.clone()) {
                    let describe = |d: &GroupDocument| {
                        let ids: Vec<&str> = d
                            .list_of_messages
                            .iter()
                            .map(|m| m.message_id.as_str())
                            .collect();
                        format!(
                            "{} ({}, {}..{} ms): {ids:?}",
                            d.group_id, d.reason, d.first_time_ms, d.last_time_ms
                        )
                    };
                    let other = docs.iter().find(|d| d.group_id == other).expect("holder");
                    panic!(
                        "{} is in two group documents:\n  {}\n  {}",
                        m.message_id,
                        describe(other),
                        describe(doc)
                    );
                }
            }
            assert_eq!(
                doc.message_count as usize,
                doc.list_of_messages.len(),
                "document {} ({}, {}..{} ms) counts other messages than it lists: {:?}",
                doc.group_id,
                doc.reason,
                doc.first_time_ms,
                doc.last_time_ms,
                doc.list_of_messages
                    .iter()
                    .map(|m| m.message_id.as_str())
                    .collect::<Vec<_>>()
            );
        }
        let missing: Vec<&&str> = position
            .keys()
            .filter(|id| !holder.contains_key(**id))
            .take(10)
            .collect();
        assert!(
            missing.is_empty(),
            "{} of {produced} messages are in no Firestore document, e.g. {missing:?}",
            produced - holder.len()
        );

        // Cassandra: each chat's history is exactly its messages.
        let cassandra = CassandraConfig {
            nodes: self.nodes.clone(),
            keyspace: self.keyspace.clone(),
            ..CassandraConfig::default()
        };
        let session = confab_connectors::cassandra::connect(&cassandra)
            .await
            .expect("cassandra");
        let history = History::new(session, &cassandra).await.expect("history");
        let mut rows = 0;
        for (chat, ids) in expected {
            let page = history
                .page(chat, None, ids.len() + 100)
                .await
                .expect("page");
            let mut got: Vec<String> = page.into_iter().map(|m| m.message_id.to_string()).collect();
            got.reverse();
            rows += got.len();
            assert_eq!(&got, ids, "Cassandra history of {chat}");
        }
        Report {
            messages: holder.len(),
            documents: docs.len(),
            rows,
        }
    }
}

/// What [`Outputs::verify`] counted.
pub(crate) struct Report {
    /// Messages found in exactly one Firestore document.
    pub(crate) messages: usize,
    /// Group documents.
    pub(crate) documents: usize,
    /// Cassandra history rows.
    pub(crate) rows: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} messages each in exactly one of {} group documents ({:.1} messages per write), {} Cassandra rows",
            self.messages,
            self.documents,
            self.messages as f64 / self.documents.max(1) as f64,
            self.rows
        )
    }
}

/// `confab aggregate` as a child process, its log in a file.
pub(crate) struct Aggregator {
    child: Child,
    log: PathBuf,
}

impl Aggregator {
    pub(crate) fn start(config: &Path) -> Self {
        Self::start_with(config, &[])
    }

    /// Starts it with extra command-line arguments.
    pub(crate) fn start_with(config: &Path, args: &[&str]) -> Self {
        static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = config.with_extension(format!("{n}.log"));
        let file = std::fs::File::create(&log).expect("aggregator log file");
        let child = confab()
            .args(["aggregate", "--config"])
            .arg(config)
            .args(args)
            .env(
                "FIRESTORE_EMULATOR_HOST",
                env_or("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080"),
            )
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start confab aggregate");
        Self { child, log }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process logged.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What the process's /metrics answers (its address is read from the log), or why not.
    pub(crate) fn metrics(&self) -> String {
        let text = self.log_text();
        let port = text
            .lines()
            .find(|l| l.contains("serving /metrics"))
            .and_then(|l| l.split("127.0.0.1:").nth(1))
            .and_then(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u16>().ok()
            });
        match port {
            None => "(no /metrics address in the log)".to_string(),
            Some(port) => http_get(port, "/metrics")
                .map(|r| {
                    r.lines()
                        .filter(|l| {
                            l.starts_with("confab_") && !l.ends_with(" 0") && !l.contains("_bucket")
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_else(|| format!("(/metrics on port {port} did not answer)")),
        }
    }

    /// The warnings and errors the process logged, at most the last `n`.
    pub(crate) fn log_warnings(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        format!(
            "{} warnings and errors, the last {}:\n{}",
            lines.len(),
            n.min(lines.len()),
            lines[lines.len().saturating_sub(n)..].join("\n")
        )
    }

    /// The last lines the process logged.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Panics with the log if the process has exited.
    pub(crate) fn assert_running(&mut self, context: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "confab aggregate exited {context} ({status}):\n{}",
                self.log_tail()
            );
        }
    }

    /// SIGKILL: no flush, no commit, no goodbye.
    pub(crate) fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then the process must flush, commit and exit 0 within a minute.
    pub(crate) fn terminate(&mut self) {
        let signalled = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(signalled.success());
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no exit within 60 s of SIGTERM:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(status.success(), "exit {status}:\n{}", self.log_tail());
    }

    /// Resident memory in KiB, from /proc.
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
