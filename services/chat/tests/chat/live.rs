//! The live lane: `GET /api/v1/events`, one stream per person for all of their chats, fed by the
//! service's own tail of the in-process log and routed by membership; resume with
//! `Last-Event-ID`; typing notices; the caps.

use crate::common::{claims, sign, Backend, EventStream, SseEvent, TestApp, SIGNING_SEED};
use axum::http::StatusCode;
use confab_chat::message_log::MemoryMessageLog;
use confab_pipeline::memory::MemoryLog;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
/// Long enough for an event that is coming to arrive; used only to show that none does.
const QUIET: Duration = Duration::from_millis(600);

/// The next event that is not a `group` (those belong to the per-chat stream).
async fn next(stream: &mut EventStream) -> SseEvent {
    stream.next(WAIT).await.expect("an event within 10 s")
}

async fn open(app: &TestApp, token: &str, last: Option<&str>) -> (EventStream, SseEvent) {
    let mut stream = app.person_events(token, last).await;
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    let mut ready = next(&mut stream).await;
    if ready.event == "reset" {
        ready = next(&mut stream).await;
    }
    assert_eq!(ready.event, "ready", "{ready:?}");
    (stream, ready)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_reaches_both_members_at_once_and_no_one_else() {
    let app = TestApp::new(Backend::Sqlite).await;
    let (ann, bob, cat) = (
        app.user("ann").await,
        app.user("bob").await,
        app.user("cat").await,
    );
    let chat = app.chat(&ann, &bob).await;
    let (mut to_bob, _) = open(&app, &bob.token, None).await;
    let (mut to_ann, _) = open(&app, &ann.token, None).await;
    let (mut to_cat, _) = open(&app, &cat.token, None).await;
    let sent = app.say_ok(&ann, chat, "live, not grouped").await;

    let received = next(&mut to_bob).await;
    assert_eq!(received.event, "message");
    assert_eq!(received.data, sent, "the message as the send answered it");
    assert!(received.id.is_some(), "a position to resume from");
    // The sender's other tabs see it too.
    assert_eq!(
        next(&mut to_ann).await.data["message_id"],
        sent["message_id"]
    );
    assert!(to_cat.next(QUIET).await.is_none(), "cat is not in the chat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_resumes_after_its_last_event_without_gaps_or_repeats() {
    let app = TestApp::new(Backend::Sqlite).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let (mut first, ready) = open(&app, &bob.token, None).await;
    assert_eq!(ready.data["resumed"], false);
    app.say_ok(&ann, chat, "one").await;
    let one = next(&mut first).await;
    assert_eq!(one.data["body"], "one");
    drop(first);

    // Sent while bob is away.
    for body in ["two", "three", "four"] {
        app.say_ok(&ann, chat, body).await;
    }
    let last = one.id.expect("id");
    let (mut resumed, ready) = open(&app, &bob.token, Some(&last)).await;
    assert_eq!(ready.data["resumed"], true);
    let mut bodies = Vec::new();
    for _ in 0..3 {
        bodies.push(next(&mut resumed).await.data["body"].clone());
    }
    assert_eq!(bodies, ["two", "three", "four"], "each once, in order");
    assert!(resumed.next(QUIET).await.is_none(), "nothing repeated");

    // A position the server cannot resume from (another instance's, or a forgotten one) is an
    // explicit reset before `ready`, never a silent gap.
    for foreign in ["1234abcd-3", "not an id"] {
        let mut stream = app.person_events(&bob.token, Some(foreign)).await;
        assert_eq!(next(&mut stream).await.event, "reset", "{foreign}");
        let ready = next(&mut stream).await;
        assert_eq!(ready.event, "ready");
        assert_eq!(ready.data["resumed"], false);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_falls_behind_its_window_gets_a_reset_then_carries_on() {
    let app = TestApp::with(Backend::Sqlite, |config, _| {
        config.realtime.window_events = 3;
    })
    .await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let (mut stream, _) = open(&app, &bob.token, None).await;
    for i in 0..8 {
        app.say_ok(&ann, chat, &format!("burst {i}")).await;
    }
    // Give the tail time to route all eight before bob reads anything.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reset = next(&mut stream).await;
    assert_eq!(reset.event, "reset");
    assert_eq!(reset.data["reason"], "lagged");
    app.say_ok(&ann, chat, "after the reset").await;
    assert_eq!(next(&mut stream).await.data["body"], "after the reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_chat_and_typing_reach_the_peer_and_typing_never_reaches_the_log() {
    // The service's log is one the test holds, to count what reaches it.
    let log = MemoryLog::new(2);
    let memory = Arc::new(MemoryMessageLog::new(log.clone()));
    let app = TestApp::with(Backend::Sqlite, |config, backends| {
        // No aggregator reads a log given by the test, so there is no group feed either.
        config.events = confab_chat::EventsConfig::None {};
        backends.log = Some(memory);
    })
    .await;
    let (ann, bob, cat) = (
        app.user("ann").await,
        app.user("bob").await,
        app.user("cat").await,
    );
    let (mut to_bob, _) = open(&app, &bob.token, None).await;
    let chat = app.chat(&ann, &bob).await;
    let started = next(&mut to_bob).await;
    assert_eq!(started.event, "chat");
    assert_eq!(started.data["chat_id"], chat.to_string());

    let typing = app.typing(&ann, chat).await;
    assert_eq!(typing.status, StatusCode::NO_CONTENT);
    let notice = next(&mut to_bob).await;
    assert_eq!(notice.event, "typing");
    assert_eq!(notice.data["user_id"], ann.id.to_string());
    assert_eq!(notice.data["chat_id"], chat.to_string());
    assert_eq!(log.len(), 0, "a typing notice is never logged");

    // Only members may say they are typing.
    let refused = app.typing(&cat, chat).await;
    refused.assert_error(StatusCode::FORBIDDEN, "forbidden");
    app.say_ok(&ann, chat, "a real message").await;
    assert_eq!(next(&mut to_bob).await.event, "message");
    assert_eq!(log.len(), 1, "only the message is in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_capped_per_person_and_take_no_token_in_the_url() {
    let app = TestApp::with(Backend::Sqlite, |config, _| {
        config.realtime.max_streams_per_user = 2;
    })
    .await;
    let ann = app.user("ann").await;
    let (_one, _) = open(&app, &ann.token, None).await;
    let (two, _) = open(&app, &ann.token, None).await;
    let third = app.get("/api/v1/events", Some(&ann.token)).await;
    third.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    drop(two);
    let (_again, _) = open(&app, &ann.token, None).await;

    // A token in the query is refused: tokens in URLs end up in proxy logs.
    let in_url = app
        .get(&format!("/api/v1/events?access_token={}", ann.token), None)
        .await;
    assert_eq!(in_url.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_when_its_token_expires() {
    let app = TestApp::new(Backend::Sqlite).await;
    let ann = app.user("ann").await;
    let short = sign(&SIGNING_SEED, &claims(ann.id, -10, 2));
    let (mut stream, _) = open(&app, &short, None).await;
    let expired = next(&mut stream).await;
    assert_eq!(expired.event, "expired");
    assert!(stream.next(WAIT).await.is_none(), "the stream ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_live_lane_off_the_person_stream_is_503() {
    let app = TestApp::with(Backend::Sqlite, |config, _| {
        config.realtime.live = false;
    })
    .await;
    let ann = app.user("ann").await;
    app.get("/api/v1/events", Some(&ann.token))
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_chats_typing_and_read_marks_reach_people_on_another_instance() {
    // Two instances on one PostgreSQL database; each has its own in-process log, so only the
    // bus between them can carry these events from one to the other.
    let app = TestApp::new(Backend::Postgres).await;
    let (_other_state, other) = app.sibling(|_| {}).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let mut ann_there = crate::common::person_events(&other, &ann.token, None).await;
    assert_eq!(next(&mut ann_there).await.event, "ready");
    // The listener subscribes as the instance starts; give it a moment to be in place.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let chat = app.chat(&bob, &ann).await;
    let started = next(&mut ann_there).await;
    assert_eq!(started.event, "chat", "{started:?}");
    assert_eq!(started.data["chat_id"], chat.to_string());

    let typing = app.typing(&bob, chat).await;
    assert_eq!(typing.status, StatusCode::NO_CONTENT);
    let notice = next(&mut ann_there).await;
    assert_eq!(notice.event, "typing");
    assert_eq!(notice.data["user_id"], bob.id.to_string());

    let sent = app.say_ok(&bob, chat, "hello").await;
    let marked = app
        .json(
            axum::http::Method::PUT,
            &format!("/api/v1/chats/{chat}/read"),
            serde_json::json!({ "time": sent["time"] }),
            Some(&ann.token),
        )
        .await;
    assert_eq!(marked.status, StatusCode::OK);
    let read = next(&mut ann_there).await;
    assert_eq!(read.event, "read", "{read:?}");
    assert_eq!(read.data["read_up_to"], sent["time"]);
    // Each event once: the instance that published it does not route its own notification.
    assert!(ann_there.next(QUIET).await.is_none(), "nothing repeated");
}
