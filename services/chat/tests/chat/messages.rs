//! `POST /api/v1/chats/{chat_id}/messages`: the stamped message, membership and spoofing, the
//! content rules, idempotent retries (also concurrent), the log being down, and the rate limit.

use crate::common::{claims, on_every_backend, sign, Backend, TestApp, TestUser, SIGNING_SEED};
use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use confab_chat::message_log::{LogError, MemoryMessageLog, MessageLog};
use confab_chat::EventsConfig;
use confab_pipeline::chat::timeuuid_ms;
use confab_pipeline::memory::MemoryLog;
use confab_pipeline::{ChatMessage, Polled, Source};
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

on_every_backend!(
    a_sent_message_is_201_stamped_by_the_service_and_reaches_history,
    a_body_claiming_another_sender_is_ignored,
    only_members_may_post,
    message_bodies_must_follow_the_rules,
    a_retry_with_the_same_client_message_id_returns_the_same_message,
    after_the_retention_a_retry_is_sent_again_under_the_same_message_id,
    concurrent_retries_of_one_client_message_id_make_one_message,
    when_the_log_is_down_sends_are_503_and_a_retry_sends_the_same_record,
    a_burst_above_the_limit_gets_429s_and_the_accepted_ones_are_all_in_history,
);

/// Everything the chat's history holds, after the embedded aggregator wrote every open group.
async fn flushed_history(app: &TestApp, chat: Uuid) -> Vec<ChatMessage> {
    app.state.shutdown().await;
    app.state
        .history()
        .page(&chat.to_string(), None, 10_000)
        .await
        .expect("history")
}

async fn pair(app: &TestApp) -> (TestUser, TestUser, Uuid) {
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    (ann, bob, chat)
}

async fn a_sent_message_is_201_stamped_by_the_service_and_reaches_history(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob, chat) = pair(&app).await;
    let before_ms = now_ms();
    let message = app.say_ok(&ann, chat, "hello bob").await;
    let object = message.as_object().expect("object");
    assert_eq!(object.len(), 7, "the seed's message fields: {message}");
    assert_eq!(message["chat_id"], chat.to_string());
    assert_eq!(message["from_user"], ann.id.to_string());
    assert_eq!(message["to_user"], bob.id.to_string());
    assert_eq!(message["body"], "hello bob");
    let id: Uuid = message["message_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    assert_eq!(id.get_version_num(), 4);
    let time: Uuid = message["time"]
        .as_str()
        .expect("time")
        .parse()
        .expect("uuid");
    let ms = timeuuid_ms(&time).expect("a version-1 TimeUUID");
    assert!(ms >= before_ms && ms <= now_ms(), "stamped now");
    assert_eq!(message["time_iso"], confab_pipeline::chat::iso_from_ms(ms));

    let reply = app.say_ok(&bob, chat, "hi ann").await;
    app.wait_for_history(&ann, chat, 2).await;
    let page = app
        .get(&format!("/api/v1/chats/{chat}/messages"), Some(&bob.token))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(
        page["messages"],
        json!([reply, message]),
        "newest first, as sent"
    );
}

async fn a_body_claiming_another_sender_is_ignored(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob, chat) = pair(&app).await;
    let forged_time = confab_pipeline::chat::timeuuid_from_ms(1_000, 0, [1; 6]);
    let response = app
        .say(
            &ann,
            chat,
            json!({
                "body": "it was bob",
                "from_user": bob.id,
                "to_user": ann.id,
                "chat_id": Uuid::now_v7(),
                "message_id": "chosen-by-client",
                "time": forged_time,
                "time_iso": "1970-01-01T00:00:01.000Z",
            }),
        )
        .await;
    let message = response.assert_status(StatusCode::CREATED);
    assert_eq!(message["from_user"], ann.id.to_string());
    assert_eq!(message["to_user"], bob.id.to_string());
    assert_eq!(message["chat_id"], chat.to_string());
    assert_ne!(message["message_id"], "chosen-by-client");
    assert_ne!(message["time"], forged_time.to_string());
    let history = flushed_history(&app, chat).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].from_user, ann.id.to_string());
}

async fn only_members_may_post(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, _bob, chat) = pair(&app).await;
    let cat = app.user("cat").await;
    let body = json!({ "body": "let me in" });
    app.say(&cat, chat, body.clone())
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    app.say(&ann, Uuid::now_v7(), body.clone())
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.json(
        Method::POST,
        "/api/v1/chats/not-a-uuid/messages",
        body.clone(),
        Some(&ann.token),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_path");
    let uri = format!("/api/v1/chats/{chat}/messages");
    let expired = sign(&SIGNING_SEED, &claims(ann.id, -7200, -3600));
    let not_yet = sign(&SIGNING_SEED, &claims(ann.id, 3600, 7200));
    for (token, code) in [
        (None, "missing_token"),
        (Some(expired.as_str()), "invalid_token"),
        (Some(not_yet.as_str()), "invalid_token"),
    ] {
        app.json(Method::POST, &uri, body.clone(), token)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, code);
    }
    assert!(
        flushed_history(&app, chat).await.is_empty(),
        "nothing was sent"
    );
}

async fn message_bodies_must_follow_the_rules(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, _bob, chat) = pair(&app).await;
    let cases = [
        (json!({ "body": "" }), "empty_message"),
        (json!({ "body": " \n\t " }), "empty_message"),
        (json!({ "body": "x".repeat(4_001) }), "message_too_long"),
        (json!({ "body": "é".repeat(4_001) }), "message_too_long"),
        (json!({ "body": "nul\u{0}inside" }), "invalid_message"),
        (json!({ "body": "escape\u{1b}[2J" }), "invalid_message"),
        (json!({ "body": "c1\u{9b}control" }), "invalid_message"),
        (json!({ "body": "\u{202E}evil.exe" }), "invalid_message"),
        (json!({ "body": "\u{2066}open isolate" }), "invalid_message"),
        (
            json!({ "body": "\u{200B}\u{200D}\u{FEFF}" }),
            "invalid_message",
        ),
        (json!({ "body": "\u{301}\u{308}" }), "invalid_message"),
        (
            json!({ "body": "ok", "client_message_id": "" }),
            "invalid_client_message_id",
        ),
        (
            json!({ "body": "ok", "client_message_id": "has space" }),
            "invalid_client_message_id",
        ),
        (
            json!({ "body": "ok", "client_message_id": "x".repeat(65) }),
            "invalid_client_message_id",
        ),
    ];
    for (body, code) in cases {
        let message = app
            .say(&ann, chat, body.clone())
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, code);
        assert!(!message.is_empty(), "{body}");
    }
    // The limit counts characters: 4,000 of them pass, multi-byte or not.
    app.say_ok(&ann, chat, &"é".repeat(4_000)).await;
    // Text of any script passes the content rules.
    for text in [
        "👩‍👩‍👧 🏳️‍🌈 👍🏽",
        "مرحبا بالعالم",
        "שָׁלוֹם, \u{2067}עולם\u{2069}!",
        "你好，世界\n二行目\tタブ",
    ] {
        app.say_ok(&ann, chat, text).await;
    }
    assert_eq!(flushed_history(&app, chat).await.len(), 5);
}

async fn a_retry_with_the_same_client_message_id_returns_the_same_message(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob, chat) = pair(&app).await;
    let send = json!({ "body": "once", "client_message_id": "c-1" });
    let first = app
        .say(&ann, chat, send.clone())
        .await
        .assert_status(StatusCode::CREATED);
    let id: Uuid = first["message_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    assert_eq!(
        id.get_version_num(),
        5,
        "derived from the sender and the client id"
    );
    for _ in 0..3 {
        let again = app
            .say(&ann, chat, send.clone())
            .await
            .assert_status(StatusCode::OK);
        assert_eq!(again, first);
    }
    // Another body, or another chat, under the same id is a client bug.
    app.say(
        &ann,
        chat,
        json!({ "body": "twice", "client_message_id": "c-1" }),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "idempotency_conflict");
    let cat = app.user("cat").await;
    let other_chat = app.chat(&ann, &cat).await;
    app.say(&ann, other_chat, send.clone())
        .await
        .assert_error(StatusCode::CONFLICT, "idempotency_conflict");
    // Client ids are per sender: bob may use the same one.
    let bobs = app
        .say(&bob, chat, send.clone())
        .await
        .assert_status(StatusCode::CREATED);
    assert_ne!(bobs["message_id"], first["message_id"]);

    let history = flushed_history(&app, chat).await;
    let ids: Vec<&str> = history.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            bobs["message_id"].as_str().expect("id"),
            first["message_id"].as_str().expect("id")
        ],
        "one message each, nothing doubled"
    );
}

async fn after_the_retention_a_retry_is_sent_again_under_the_same_message_id(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, _bob, chat) = pair(&app).await;
    let send = json!({ "body": "again", "client_message_id": "old-1" });
    let first = app
        .say(&ann, chat, send.clone())
        .await
        .assert_status(StatusCode::CREATED);
    assert_eq!(
        app.state.prune_client_messages().await.expect("prune"),
        0,
        "within the retention"
    );
    match backend {
        Backend::Sqlite | Backend::Postgres => {
            let later = chrono::Utc::now() + chrono::Duration::seconds(1);
            let pruned = app
                .state
                .chats()
                .prune_client_messages(later)
                .await
                .expect("prune");
            assert_eq!(pruned, 1);
        }
        // Cassandra expires the record by its TTL: check the TTL, then expire it by hand.
        #[cfg(feature = "cassandra")]
        Backend::Cassandra => expire_client_message(&app, ann.id, "old-1").await,
    }
    let second = app
        .say(&ann, chat, send)
        .await
        .assert_status(StatusCode::CREATED);
    // The record is gone, so the retry is produced again; its message_id is derived from the
    // client id, so clients still collapse the two copies into one message.
    assert_eq!(second["message_id"], first["message_id"], "same derived id");
    assert_ne!(second["time"], first["time"], "a new record");
}

async fn concurrent_retries_of_one_client_message_id_make_one_message(backend: Backend) {
    let app = Arc::new(TestApp::new(backend).await);
    let (ann, _bob, chat) = pair(&app).await;
    let send = json!({ "body": "racing", "client_message_id": "race-1" });
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (app, ann, send) = (app.clone(), ann.clone(), send.clone());
            tokio::spawn(async move { app.say(&ann, chat, send).await })
        })
        .collect();
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.expect("join"));
    }
    let messages: HashSet<String> = responses
        .iter()
        .map(|r| {
            assert!(
                r.status == StatusCode::CREATED || r.status == StatusCode::OK,
                "{r:?}"
            );
            r.json().to_string()
        })
        .collect();
    assert_eq!(messages.len(), 1, "every retry got the same message");
    let history = flushed_history(&app, chat).await;
    assert_eq!(history.len(), 1, "{history:?}");
}

/// A log that can be switched off, over a memory log the test reads.
struct SwitchLog {
    inner: MemoryMessageLog,
    down: AtomicBool,
}

#[async_trait]
impl MessageLog for SwitchLog {
    fn name(&self) -> &'static str {
        "switch"
    }
    async fn append(&self, key: &str, payload: Vec<u8>) -> Result<(), LogError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable("switched off by the test".into()));
        }
        self.inner.append(key, payload).await
    }
    async fn check(&self) -> Result<(), LogError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable("switched off by the test".into()));
        }
        Ok(())
    }
}

async fn records(log: &MemoryLog) -> Vec<(Vec<u8>, ChatMessage)> {
    let mut source = log.source(&Uuid::new_v4().to_string());
    let mut out = Vec::new();
    loop {
        match source
            .poll(1_000, Duration::from_millis(10))
            .await
            .expect("poll")
        {
            Polled::Records(batch) => out.extend(batch.into_iter().map(|r| {
                (
                    r.key.unwrap_or_default(),
                    ChatMessage::decode(&r.payload, usize::MAX).expect("a chat message"),
                )
            })),
            _ => return out,
        }
    }
}

async fn when_the_log_is_down_sends_are_503_and_a_retry_sends_the_same_record(backend: Backend) {
    let memory = MemoryLog::new(2);
    let log = Arc::new(SwitchLog {
        inner: MemoryMessageLog::new(memory.clone()),
        down: AtomicBool::new(true),
    });
    let app = TestApp::with(backend, |config, backends| {
        config.events = EventsConfig::None {};
        config.limits.message_burst = 1;
        config.limits.messages_per_second = 0.001;
        backends.log = Some(log.clone());
    })
    .await;
    let (ann, _bob, chat) = pair(&app).await;
    let send = json!({ "body": "are you there?", "client_message_id": "try-1" });
    for _ in 0..3 {
        let refused = app.say(&ann, chat, send.clone()).await;
        refused.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        assert_eq!(refused.retry_after(), 1);
    }
    let ready = app.get("/readyz", None).await;
    let message = ready.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(message.contains("message log"), "{message}");
    assert!(memory.is_empty(), "nothing half written reached the log");
    let chats = app
        .get("/api/v1/chats", Some(&ann.token))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(
        chats["chats"][0]["last_activity"], chats["chats"][0]["created_at"],
        "no activity recorded for a message that was not sent"
    );

    log.down.store(false, Ordering::SeqCst);
    // The failed attempts gave their rate-limit token back: the burst of 1 is still there.
    let sent = app
        .say(&ann, chat, send.clone())
        .await
        .assert_status(StatusCode::CREATED);
    let produced = records(&memory).await;
    assert_eq!(produced.len(), 1);
    let (key, record) = &produced[0];
    assert_eq!(
        key.as_slice(),
        chat.to_string().as_bytes(),
        "keyed by chat id"
    );
    assert_eq!(serde_json::to_value(record).expect("json"), sent);
    // An acknowledged message is returned, not produced again (and takes no token).
    app.say(&ann, chat, send)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(records(&memory).await.len(), 1);
    app.get("/readyz", None).await.assert_status(StatusCode::OK);
}

async fn a_burst_above_the_limit_gets_429s_and_the_accepted_ones_are_all_in_history(
    backend: Backend,
) {
    let app = TestApp::with(backend, |config, _| {
        config.limits.message_burst = 5;
        config.limits.messages_per_second = 0.5;
    })
    .await;
    let (ann, bob, chat) = pair(&app).await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..12 {
        let response = app
            .say(&ann, chat, json!({ "body": format!("spam {i}") }))
            .await;
        match response.status {
            StatusCode::CREATED => accepted.push(response.json()),
            StatusCode::TOO_MANY_REQUESTS => {
                let message =
                    response.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
                assert!(message.contains("per second"), "{message}");
                let wait = response.retry_after();
                assert!((1..=2).contains(&wait), "about one token's time: {wait}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {:?}", response.json()),
        }
    }
    assert_eq!(accepted.len(), 5, "the burst");
    assert_eq!(refused, 7);
    // The limit is per user: bob is not held back by ann's spam.
    app.say_ok(&bob, chat, "calm").await;

    let history = flushed_history(&app, chat).await;
    let stored: HashSet<String> = history.iter().map(|m| m.message_id.to_string()).collect();
    let sent: HashSet<String> = accepted
        .iter()
        .map(|m| m["message_id"].as_str().expect("id").to_owned())
        .collect();
    assert!(
        sent.is_subset(&stored),
        "every accepted message is in history"
    );
    assert_eq!(history.len(), 6, "and nothing refused is");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Checks that the Cassandra record of `client_message_id` expires after the configured
/// retention, then deletes it as its TTL would.
#[cfg(feature = "cassandra")]
async fn expire_client_message(app: &TestApp, sender: Uuid, client_message_id: &str) {
    let keyspace = app.db.keyspace.as_deref().expect("a Cassandra test");
    let config = crate::common::cassandra_store_config(keyspace);
    let session = confab_connectors::cassandra::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (ttl,): (Option<i32>,) = session
        .query_unpaged(
            format!(
                "SELECT TTL(record) FROM {keyspace}.client_messages \
                 WHERE sender = ? AND client_message_id = ?"
            ),
            (sender, client_message_id),
        )
        .await
        .expect("select the TTL")
        .into_rows_result()
        .expect("rows")
        .single_row()
        .expect("one record");
    let retention = app.state.config().client_message_retention_secs as i32;
    let ttl = ttl.expect("the record has a TTL");
    assert!(
        (retention - 60..=retention).contains(&ttl),
        "TTL {ttl} s, retention {retention} s"
    );
    session
        .query_unpaged(
            format!(
                "DELETE FROM {keyspace}.client_messages \
                 WHERE sender = ? AND client_message_id = ?"
            ),
            (sender, client_message_id),
        )
        .await
        .expect("expire the record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_writes_every_message_the_log_acknowledged() {
    // The in-process log is lost with the process: what its reader has not read when the
    // aggregator stops would never reach history, though each send was answered 201. Many
    // records appended at once leave the reader far behind when the shutdown starts.
    let app = TestApp::new(Backend::Sqlite).await;
    let (ann, bob, chat) = pair(&app).await;
    let clock = confab_chat::timeuuid::TimeUuidClock::new();
    const RECORDS: usize = 5_000;
    for i in 0..RECORDS {
        let (time, time_iso) = clock.stamp();
        let message = ChatMessage {
            message_id: Uuid::new_v4().to_string().into(),
            chat_id: chat.to_string().into(),
            from_user: ann.id.to_string().into(),
            to_user: bob.id.to_string().into(),
            body: format!("queued {i}").into(),
            time,
            time_iso: time_iso.into(),
        };
        app.state
            .log()
            .append(&message.chat_id, message.encode())
            .await
            .expect("append");
    }
    let history = flushed_history(&app, chat).await;
    assert_eq!(
        history.len(),
        RECORDS,
        "every acknowledged message is written"
    );
}
