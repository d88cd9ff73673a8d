//! Read positions and unread counts: `PUT /api/v1/chats/{chat_id}/read`, the chat list's
//! `unread`, `read_up_to` and `last_message`, the `read` event, and history pages that include
//! messages whose group is not written yet.

use crate::common::{on_every_backend, Backend, EventStream, SseEvent, TestApp, TestUser};
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

on_every_backend!(
    unread_counts_follow_the_other_members_messages_and_clear_when_read,
    a_read_position_only_moves_forward,
    marking_read_is_for_members_and_real_message_times,
);

async fn chat_entry(app: &TestApp, user: &TestUser, chat: Uuid) -> Value {
    let list = app
        .get("/api/v1/chats", Some(&user.token))
        .await
        .assert_status(StatusCode::OK);
    list["chats"]
        .as_array()
        .expect("chats")
        .iter()
        .find(|c| c["chat_id"] == chat.to_string())
        .cloned()
        .expect("the chat is listed")
}

async fn mark(app: &TestApp, user: &TestUser, chat: Uuid, time: &Value) -> (StatusCode, Value) {
    let response = app
        .json(
            Method::PUT,
            &format!("/api/v1/chats/{chat}/read"),
            json!({ "time": time }),
            Some(&user.token),
        )
        .await;
    (response.status, response.json())
}

async fn unread_counts_follow_the_other_members_messages_and_clear_when_read(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let first = app.say_ok(&ann, chat, "one").await;
    app.say_ok(&ann, chat, "two").await;
    let third = app.say_ok(&ann, chat, "three").await;

    // Counted at once, whether or not their group is written yet.
    let entry = chat_entry(&app, &bob, chat).await;
    assert_eq!(entry["unread"], 3, "{entry}");
    assert_eq!(entry["unread_capped"], false);
    assert_eq!(entry["last_message"]["message_id"], third["message_id"]);
    assert!(entry.get("read_up_to").is_none(), "never marked: {entry}");
    // The sender has nothing unread in it.
    assert_eq!(chat_entry(&app, &ann, chat).await["unread"], 0);

    let (status, state) = mark(&app, &bob, chat, &first["time"]).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["read_up_to"], first["time"]);
    assert_eq!(state["unread"], 2);
    let entry = chat_entry(&app, &bob, chat).await;
    assert_eq!(entry["unread"], 2);
    assert_eq!(entry["read_up_to"], first["time"]);

    let (_, state) = mark(&app, &bob, chat, &third["time"]).await;
    assert_eq!(state["unread"], 0);
    assert_eq!(chat_entry(&app, &bob, chat).await["unread"], 0);

    // A reply reads the chat: what came before bob's own message is not unread.
    app.say_ok(&ann, chat, "four").await;
    assert_eq!(chat_entry(&app, &bob, chat).await["unread"], 1);
    app.say_ok(&bob, chat, "answer").await;
    assert_eq!(chat_entry(&app, &bob, chat).await["unread"], 0);
    app.say_ok(&ann, chat, "five").await;
    assert_eq!(chat_entry(&app, &bob, chat).await["unread"], 1);
}

async fn a_read_position_only_moves_forward(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let old = app.say_ok(&ann, chat, "old").await;
    let new = app.say_ok(&ann, chat, "new").await;
    let (status, state) = mark(&app, &bob, chat, &new["time"]).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["read_up_to"], new["time"]);
    // A stale device marks an older message: the newer position stays.
    let (status, state) = mark(&app, &bob, chat, &old["time"]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state["read_up_to"], new["time"], "{state}");
    assert_eq!(state["unread"], 0);
    assert_eq!(
        chat_entry(&app, &bob, chat).await["read_up_to"],
        new["time"]
    );
    // Each member has a position of their own.
    assert!(chat_entry(&app, &ann, chat)
        .await
        .get("read_up_to")
        .is_none());
}

async fn marking_read_is_for_members_and_real_message_times(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob, cat) = (
        app.user("ann").await,
        app.user("bob").await,
        app.user("cat").await,
    );
    let chat = app.chat(&ann, &bob).await;
    let sent = app.say_ok(&ann, chat, "hi").await;
    let (status, body) = mark(&app, &cat, chat, &sent["time"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = mark(&app, &bob, Uuid::now_v7(), &sent["time"]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for junk in [json!("yesterday"), json!(Uuid::new_v4().to_string())] {
        let (status, body) = mark(&app, &bob, chat, &junk).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{junk}: {body}");
        assert_eq!(body["error"], "invalid_time", "{body}");
    }
    // A version-1 TimeUUID an hour from now would hide the messages still to come.
    let ahead_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
        + 3_600_000;
    let ahead = confab_pipeline::chat::timeuuid_from_ms(ahead_ms, 0, [1, 2, 3, 4, 5, 6]);
    let (status, body) = mark(&app, &bob, chat, &json!(ahead.to_string())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let response = app
        .json(
            Method::PUT,
            &format!("/api/v1/chats/{chat}/read"),
            json!({ "time": sent["time"], "extra": 1 }),
            Some(&bob.token),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    let response = app
        .json(
            Method::PUT,
            &format!("/api/v1/chats/{chat}/read"),
            json!({ "time": sent["time"] }),
            None,
        )
        .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
}

async fn next_event(stream: &mut EventStream) -> SseEvent {
    stream
        .next(Duration::from_secs(10))
        .await
        .expect("an event within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marking_read_tells_the_readers_other_pages_and_not_the_other_member() {
    let app = TestApp::new(Backend::Sqlite).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let mut bob_tab = app.person_events(&bob.token, None).await;
    assert_eq!(next_event(&mut bob_tab).await.event, "ready");
    let mut ann_tab = app.person_events(&ann.token, None).await;
    assert_eq!(next_event(&mut ann_tab).await.event, "ready");
    // Sent with both tabs open, so that the live lane's copy of it comes before anything else
    // (sent earlier, it could reach a tab opened meanwhile, or not).
    let sent = app.say_ok(&ann, chat, "hello").await;
    assert_eq!(next_event(&mut bob_tab).await.event, "message");
    assert_eq!(next_event(&mut ann_tab).await.event, "message");

    let (status, _) = mark(&app, &bob, chat, &sent["time"]).await;
    assert_eq!(status, StatusCode::OK);
    let read = next_event(&mut bob_tab).await;
    assert_eq!(read.event, "read");
    assert_eq!(read.data["chat_id"], chat.to_string());
    assert_eq!(read.data["read_up_to"], sent["time"]);
    assert!(
        ann_tab.next(Duration::from_millis(600)).await.is_none(),
        "no read receipts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_read_before_the_group_is_written_still_shows_the_message() {
    // Groups wait a minute: history holds nothing while the test runs.
    let app = TestApp::with(Backend::Sqlite, |config, _| {
        config.embedded.policy.inactivity_timeout_ms = 60_000;
        config.embedded.policy.max_age_ms = 60_000;
    })
    .await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let mut sent = Vec::new();
    for body in ["a", "b", "c"] {
        sent.push(app.say_ok(&ann, chat, body).await);
    }
    // The tail reads the log a moment after the send's acknowledgement.
    let mut page = Value::Null;
    for _ in 0..50 {
        page = app
            .get(&format!("/api/v1/chats/{chat}/messages"), Some(&bob.token))
            .await
            .assert_status(StatusCode::OK);
        if page["messages"].as_array().map_or(0, Vec::len) == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids: Vec<&Value> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| &m["message_id"])
        .collect();
    let expected: Vec<&Value> = sent.iter().rev().map(|m| &m["message_id"]).collect();
    assert_eq!(ids, expected, "newest first, each once: {page}");
    // Pages of one walk the same messages, each once.
    let (walked, _) = app
        .walk_history(&bob, &format!("/api/v1/chats/{chat}/messages"), Some(1))
        .await;
    let walked: Vec<&Value> = walked.iter().map(|m| &m["message_id"]).collect();
    assert_eq!(walked, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_marks_are_rate_limited_per_person() {
    let app = TestApp::new(Backend::Sqlite).await;
    let (ann, bob, cat) = (
        app.user("ann").await,
        app.user("bob").await,
        app.user("cat").await,
    );
    let chat = app.chat(&ann, &bob).await;
    let other = app.chat(&cat, &bob).await;
    let sent = app.say_ok(&ann, chat, "hi").await;
    let mut refused = None;
    for _ in 0..40 {
        let (status, body) = mark(&app, &bob, chat, &sent["time"]).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(body);
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let refused = refused.expect("a burst of marks is refused before 40");
    assert_eq!(refused["error"], "too_many_requests", "{refused}");
    // Another person is not slowed down by bob's burst.
    let theirs = app.say_ok(&bob, other, "hello cat").await;
    let (status, _) = mark(&app, &cat, other, &theirs["time"]).await;
    assert_eq!(status, StatusCode::OK);
}
