//! Against a real Kafka (`KAFKA_BROKERS`, default 127.0.0.1:9092; `scripts/infra up kafka`),
//! with PostgreSQL as the database (the production combination). Every test uses its own topics.
//!
//! - sends are produced keyed by chat id and answered only after the broker's acknowledgement;
//!   retries with a `client_message_id` produce nothing new;
//! - an unreachable broker makes sends 503 with `Retry-After`, and refuses to start;
//! - the Kafka group feed streams groups from the grouped topic over SSE;
//! - the whole flow on real servers: API -> Kafka -> pipeline -> SQL history and grouped topic
//!   -> Kafka feed -> SSE;
//! - the live lane across two instances: each tails the topic, so a message sent through one
//!   reaches a person connected to the other at once; a restarted instance says `reset`, and
//!   history has what was sent while it was down.

use crate::common::{fast_policy, person_events, unique_name, Backend, TestApp, TestUser};
use axum::http::StatusCode;
use confab_chat::history::SqlHistorySink;
use confab_chat::message_log::KafkaMessageLog;
use confab_chat::{
    AppState, EventsConfig, KafkaEventsConfig, KafkaLogConfig, LogConfig, StartError,
};
use confab_connectors::env_or;
use confab_connectors::kafka::{
    self, KafkaGroupSink, KafkaSinkConfig, KafkaSource, KafkaSourceConfig,
};
use confab_pipeline::chat::{iso_from_ms, timeuuid_from_ms};
use confab_pipeline::memory::MemoryDeadLetters;
use confab_pipeline::{
    ChatKey, ChatMessage, CompletionReason, Group, Pipeline, RuntimeConfig, Sink,
};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

pub(crate) fn brokers() -> String {
    env_or("KAFKA_BROKERS", "127.0.0.1:9092")
}

pub(crate) fn unreachable(e: impl std::fmt::Display) -> String {
    format!(
        "cannot reach Kafka at {} ({e}): start it with `scripts/infra up kafka` and export \
         KAFKA_BROKERS as printed by `scripts/infra env`",
        brokers()
    )
}

/// Creates a fresh topic with `partitions` partitions.
pub(crate) async fn create_topic(prefix: &str, partitions: i32) -> String {
    let topic = unique_name(prefix);
    let admin = kafka::admin_client(&brokers(), &Default::default()).expect("admin client config");
    kafka::create_topic(&admin, &topic, partitions, Duration::from_secs(15))
        .await
        .unwrap_or_else(|e| panic!("{}", unreachable(e)));
    topic
}

/// Every record of `topic` (with `partitions` partitions) as (partition, key, message), read from
/// the beginning until `count` are there.
async fn read_topic(topic: &str, partitions: i32, count: usize) -> Vec<(i32, String, ChatMessage)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique_name("chat-test-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer config");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut records = Vec::new();
    while records.len() < count {
        let message = tokio::time::timeout(WAIT, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} records in {topic}", records.len()))
            .unwrap_or_else(|e| panic!("{}", unreachable(e)));
        let key = String::from_utf8(message.key().expect("a key").to_vec()).expect("utf8 key");
        let record = ChatMessage::decode(message.payload().expect("a payload"), usize::MAX)
            .expect("a message");
        records.push((message.partition(), key, record));
    }
    // Nothing more arrives.
    let extra = tokio::time::timeout(Duration::from_secs(2), consumer.recv()).await;
    assert!(extra.is_err(), "more records than expected in {topic}");
    records
}

pub(crate) fn kafka_log(topic: &str) -> KafkaLogConfig {
    KafkaLogConfig {
        brokers: brokers(),
        topic: topic.to_owned(),
        ..KafkaLogConfig::default()
    }
}

fn kafka_events(topic: &str) -> KafkaEventsConfig {
    KafkaEventsConfig {
        brokers: brokers(),
        topic: topic.to_owned(),
        ..KafkaEventsConfig::default()
    }
}

async fn pair(app: &TestApp) -> (TestUser, TestUser, Uuid) {
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    (ann, bob, chat)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_reach_the_topic_keyed_by_chat_and_retries_produce_nothing_new() {
    let topic = create_topic("chat_messages", 3).await;
    let app = TestApp::with(Backend::Postgres, |config, _| {
        config.log = LogConfig::Kafka(kafka_log(&topic));
        config.events = EventsConfig::None {};
    })
    .await;
    let (ann, bob, chat) = pair(&app).await;
    let mut sent = vec![
        app.say_ok(&ann, chat, "one").await,
        app.say_ok(&bob, chat, "two").await,
    ];
    let keyed = json!({ "body": "three", "client_message_id": "k-1" });
    sent.push(
        app.say(&ann, chat, keyed.clone())
            .await
            .assert_status(StatusCode::CREATED),
    );
    for _ in 0..2 {
        let again = app
            .say(&ann, chat, keyed.clone())
            .await
            .assert_status(StatusCode::OK);
        assert_eq!(&again, sent.last().expect("sent"));
    }
    let records = read_topic(&topic, 3, 3).await;
    let partitions: HashSet<i32> = records.iter().map(|(p, _, _)| *p).collect();
    assert_eq!(partitions.len(), 1, "one chat, one partition, in order");
    for ((_, key, record), response) in records.iter().zip(&sent) {
        assert_eq!(key, &chat.to_string());
        assert_eq!(&serde_json::to_value(record).expect("json"), response);
    }
    let ready = app.get("/readyz", None).await.assert_status(StatusCode::OK);
    assert_eq!(ready["log"], "kafka");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_answers_503_and_refuses_to_start() {
    // Nothing listens on the discard port.
    let nowhere = KafkaLogConfig {
        brokers: "127.0.0.1:9".into(),
        topic: "chat_messages".into(),
        delivery_timeout_ms: 1_500,
        ..KafkaLogConfig::default()
    };
    let log = Arc::new(KafkaMessageLog::new(&nowhere).expect("settings"));
    let app = TestApp::with(Backend::Postgres, |config, backends| {
        config.events = EventsConfig::None {};
        backends.log = Some(log);
    })
    .await;
    let (ann, _bob, chat) = pair(&app).await;
    let started = std::time::Instant::now();
    let refused = app.say(&ann, chat, json!({ "body": "anyone?" })).await;
    refused.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(refused.retry_after(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the delivery timeout"
    );
    let message = app
        .get("/readyz", None)
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    // Which backend, not its error text (hosts, versions): that and the hint to run
    // `scripts/infra up kafka` are in the log only.
    assert!(message.contains("the message log"), "{message}");
    assert!(!message.contains("scripts/infra"), "{message}");

    let mut config = crate::common::test_config(&app.db);
    config.log = LogConfig::Kafka(nowhere);
    config.events = EventsConfig::None {};
    let backends = confab_chat::Backends {
        verifier: Some(Arc::new(app.signer.verifier().expect("verifier"))),
        ..Default::default()
    };
    let err = AppState::build_with(&config, backends)
        .await
        .expect_err("no broker, no service");
    assert!(matches!(err, StartError::Log(_)), "{err}");
    assert!(err.to_string().contains("scripts/infra up kafka"), "{err}");
}

/// A group of one message of `chat` from `from` to `to` (a group is routed to the people in it).
fn group_of(chat: Uuid, from: Uuid, to: Uuid, body: &str) -> Group<String, ChatMessage> {
    let ms = 1_700_000_000_000;
    let record = ChatMessage {
        message_id: Uuid::new_v4().to_string().into(),
        chat_id: chat.to_string().into(),
        from_user: from.to_string().into(),
        to_user: to.to_string().into(),
        body: body.into(),
        time: timeuuid_from_ms(ms, 0, [4; 6]),
        time_iso: iso_from_ms(ms).into(),
    };
    Group {
        id: Uuid::new_v4(),
        key: chat.to_string(),
        first_time_ms: ms,
        last_time_ms: ms,
        bytes: 0,
        reason: CompletionReason::Inactivity,
        records: vec![record],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_feed_streams_groups_from_the_grouped_topic() {
    let grouped = create_topic("chat_messages_grouped", 2).await;
    let app = TestApp::with(Backend::Postgres, |config, _| {
        config.events = EventsConfig::Kafka(kafka_events(&grouped));
    })
    .await;
    let (ann, bob, chat) = pair(&app).await;
    let mut events = app.events(chat, &bob.token, false).await;
    assert_eq!(events.status, StatusCode::OK);
    let sink = KafkaGroupSink::connect(&KafkaSinkConfig {
        brokers: brokers(),
        topic: grouped.clone(),
        ..KafkaSinkConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{}", unreachable(e)));
    let group = group_of(chat, ann.id, bob.id, "from the grouped topic");
    // The feed reads from the end once it has its partitions: write until it sees one.
    let received = loop {
        Sink::<String, ChatMessage>::write(&sink, std::slice::from_ref(&group))
            .await
            .expect("write a group");
        if let Some(event) = events.next_group(Duration::from_millis(700)).await {
            break event;
        }
    };
    assert_eq!(received.data["group_id"], group.id.to_string());
    assert_eq!(
        received.data["messages"][0]["body"],
        "from the grouped topic"
    );
    let ready = app.get("/readyz", None).await.assert_status(StatusCode::OK);
    assert_eq!(ready["events"], "kafka");
}

/// Polls `/readyz` until `ready` says its answer is the awaited one; returns that answer.
async fn wait_for_readyz(app: &TestApp, ready: impl Fn(StatusCode, &Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = app.get("/readyz", None).await;
        let body = response.json();
        if ready(response.status, &body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz still answers {} {body}",
            response.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_grouped_topic_is_created_and_the_service_becomes_ready() {
    let grouped = unique_name("chat_messages_grouped");
    let app = TestApp::with(Backend::Postgres, |config, _| {
        config.events = EventsConfig::Kafka(KafkaEventsConfig {
            create_partitions: 2,
            ..kafka_events(&grouped)
        });
    })
    .await;
    let ready = wait_for_readyz(&app, |status, _| status == StatusCode::OK).await;
    assert_eq!(ready["events"], "kafka");
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique_name("chat-test-metadata"))
        .create()
        .expect("consumer config");
    let metadata = consumer
        .fetch_metadata(Some(&grouped), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{}", unreachable(e)));
    let topic = &metadata.topics()[0];
    assert!(topic.error().is_none(), "{:?}", topic.error());
    assert_eq!(
        topic.partitions().len(),
        2,
        "created with create_partitions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_creation_readyz_says_the_grouped_topic_is_missing() {
    let grouped = unique_name("chat_messages_grouped");
    let app = TestApp::with(Backend::Postgres, |config, _| {
        config.events = EventsConfig::Kafka(KafkaEventsConfig {
            create_partitions: 0,
            ..kafka_events(&grouped)
        });
    })
    .await;
    // /readyz names the backend; the reason, with the topic, is in the log and in
    // `AppState::readiness`.
    let body = wait_for_readyz(&app, |status, body| {
        status == StatusCode::SERVICE_UNAVAILABLE
            && body["message"]
                .as_str()
                .is_some_and(|m| m.contains("the event feed is not ready"))
    })
    .await;
    let message = body["message"].as_str().unwrap_or_default();
    assert!(!message.contains(&grouped), "{message}");
    let deadline = tokio::time::Instant::now() + WAIT;
    let reason = loop {
        match app.state.readiness().await {
            Err(not_ready) if not_ready.reason.contains("does not exist yet") => {
                break not_ready.reason
            }
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "the feed's reason: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(reason.contains(&grouped), "{reason}");
    assert!(reason.contains("create_partitions"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_to_kafka_to_the_pipeline_to_history_and_the_realtime_feed() {
    let messages_topic = create_topic("chat_messages", 3).await;
    let grouped = create_topic("chat_messages_grouped", 3).await;
    let app = TestApp::with(Backend::Postgres, |config, _| {
        config.log = LogConfig::Kafka(kafka_log(&messages_topic));
        config.events = EventsConfig::Kafka(kafka_events(&grouped));
    })
    .await;

    let grouped_sink = KafkaGroupSink::connect(&KafkaSinkConfig {
        brokers: brokers(),
        topic: grouped.clone(),
        ..KafkaSinkConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{}", unreachable(e)));
    let (stop, aggregator) =
        start_aggregator(&app, &messages_topic, Some(Arc::new(grouped_sink))).await;

    let (ann, bob, chat) = pair(&app).await;
    let mut events = app.events(chat, &bob.token, false).await;
    assert_eq!(events.status, StatusCode::OK);
    // Let the feed take its partitions before the first group can be written.
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.get("/readyz", None).await.status != StatusCode::OK {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the feed never became ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(app.say_ok(&ann, chat, &format!("through kafka {i}")).await);
    }
    app.wait_for_history(&bob, chat, 5).await;
    let (history, _) = app
        .walk_history(&bob, &format!("/api/v1/chats/{chat}/messages"), Some(2))
        .await;
    let newest_first: Vec<Value> = sent.iter().rev().cloned().collect();
    assert_eq!(history, newest_first);

    let wanted: HashSet<String> = sent
        .iter()
        .map(|m| m["message_id"].as_str().expect("id").to_owned())
        .collect();
    let mut streamed = HashSet::new();
    while streamed.len() < wanted.len() {
        let group = events
            .next_group(WAIT)
            .await
            .unwrap_or_else(|| panic!("streamed {streamed:?} of {wanted:?}"));
        for message in group.data["messages"].as_array().expect("messages") {
            streamed.insert(message["message_id"].as_str().expect("id").to_owned());
        }
    }
    assert_eq!(streamed, wanted);

    stop.send(()).expect("aggregator running");
    let report = aggregator.await.expect("join").expect("aggregator run");
    assert_eq!(report.messages_in, 5);
    assert_eq!(report.dead_letters, 0);
}

type Aggregator =
    tokio::task::JoinHandle<Result<confab_pipeline::RunReport, confab_pipeline::PipelineError>>;

/// The aggregator as the standalone runner composes it: `topic` to `app`'s SQL history (and
/// `extra`); it stops when the returned sender sends.
async fn start_aggregator(
    app: &TestApp,
    topic: &str,
    extra: Option<Arc<dyn Sink<String, ChatMessage>>>,
) -> (tokio::sync::oneshot::Sender<()>, Aggregator) {
    let source = KafkaSource::connect(&KafkaSourceConfig {
        brokers: brokers(),
        topic: topic.to_owned(),
        group_id: unique_name("chat-test-aggregator"),
        ..KafkaSourceConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{}", unreachable(e)));
    let key = ChatKey::Chat;
    let mut pipeline = Pipeline::new(
        move |m: &ChatMessage| key.key(m).to_string(),
        confab_connectors::decode_chat_message,
        Arc::new(MemoryDeadLetters::default()),
    )
    .sink(Arc::new(SqlHistorySink::new(app.state.store().clone())));
    if let Some(extra) = extra {
        pipeline = pipeline.sink(extra);
    }
    let pipeline = pipeline.policy(fast_policy()).config(RuntimeConfig {
        lateness_ms: 0,
        commit_interval_ms: 100,
        ..RuntimeConfig::default()
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let aggregator = tokio::spawn(pipeline.run(source, async {
        let _ = stopped.await;
    }));
    (stop, aggregator)
}

/// The next `message` event of `stream` (other events skipped), within `WAIT`.
async fn next_message(stream: &mut crate::common::EventStream) -> crate::common::SseEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = stream.next(left).await.expect("a message event");
        if event.event == "message" {
            return event;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_each_others_messages_live_and_a_restart_catches_up_from_history() {
    let topic = create_topic("chat_messages", 3).await;
    let app = TestApp::with(Backend::Postgres, |config, _| {
        config.log = LogConfig::Kafka(kafka_log(&topic));
        config.events = EventsConfig::None {};
    })
    .await;
    // Instance B: same database, same log; bob is connected to it, ann sends through A.
    let (b_state, b) = app.sibling(|_| {}).await;
    let (stop, aggregator) = start_aggregator(&app, &topic, None).await;

    let (ann, bob, chat) = pair(&app).await;
    let mut on_b = person_events(&b, &bob.token, None).await;
    assert_eq!(on_b.status, StatusCode::OK);
    let mut on_a = app.person_events(&ann.token, None).await;
    // Each instance reads the log from its end once it has the partitions: send until both
    // show one (A's tail starts as independently as B's).
    let (mut a_reads, mut b_reads) = (false, false);
    while !(a_reads && b_reads) {
        app.say_ok(&ann, chat, "is B reading yet?").await;
        for (reads, stream) in [(&mut a_reads, &mut on_a), (&mut b_reads, &mut on_b)] {
            while let Some(event) = stream.next(Duration::from_millis(350)).await {
                if event.event == "message" {
                    assert_eq!(event.data["from_user"], ann.id.to_string());
                    *reads = true;
                }
            }
        }
    }
    let sent = app.say_ok(&ann, chat, "from A to B").await;
    let mut on_b_next = next_message(&mut on_b).await;
    while on_b_next.data["body"] == "is B reading yet?" {
        on_b_next = next_message(&mut on_b).await;
    }
    assert_eq!(on_b_next.data, sent, "B delivers what A produced");
    let mut on_a_next = next_message(&mut on_a).await;
    while on_a_next.data["body"] == "is B reading yet?" {
        on_a_next = next_message(&mut on_a).await;
    }
    assert_eq!(on_a_next.data, sent, "A delivers it to its own streams too");

    // B restarts; a message the log acknowledged meanwhile is not lost to bob.
    let last = on_b_next.id.expect("id");
    drop(on_b);
    drop(b);
    drop(b_state);
    let missed = app.say_ok(&ann, chat, "while B was down").await;
    let (_b2_state, b2) = app.sibling(|_| {}).await;
    let mut again = person_events(&b2, &bob.token, Some(&last)).await;
    let reset = again.next(WAIT).await.expect("an event");
    assert_eq!(
        reset.event, "reset",
        "a new instance cannot resume: it says so"
    );
    assert_eq!(
        again.next(WAIT).await.expect("ready").data["resumed"],
        false
    );
    // What the client does on `reset`: read the latest page again, which has the message.
    app.wait_for_history(&bob, chat, 1).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page = person_history(&b2, &bob.token, chat).await;
        if page.iter().any(|m| m["message_id"] == missed["message_id"]) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history never had the message"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.send(()).expect("aggregator running");
    let report = aggregator.await.expect("join").expect("aggregator run");
    assert_eq!(report.dead_letters, 0);
}

/// The latest history page of `chat` as `token`'s user reads it from the service `router`.
async fn person_history(router: &axum::Router, token: &str, chat: Uuid) -> Vec<Value> {
    let request = confab_service_kit::test_support::get_request(
        &format!("/api/v1/chats/{chat}/messages?quantity=50"),
        Some(token),
    );
    let response = confab_service_kit::test_support::send(router, request, "127.0.0.1:50000").await;
    assert_eq!(response.status, StatusCode::OK);
    response.json()["messages"]
        .as_array()
        .expect("messages")
        .clone()
}
