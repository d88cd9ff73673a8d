//! `GET /api/v1/chats/{chat_id}/events`: server-sent events of completed groups, fed by the
//! embedded aggregator's broadcast sink (and by a sender an embedding program hands over).

use crate::common::{claims, on_every_backend, sign, Backend, TestApp, SIGNING_SEED};
use axum::http::StatusCode;
use confab_chat::feed::{ChatGroup, InProcessFeed};
use confab_chat::EventsConfig;
use confab_pipeline::chat::{iso_from_ms, timeuuid_from_ms};
use confab_pipeline::{ChatMessage, CompletionReason, Group};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

on_every_backend!(
    a_member_receives_the_chats_groups_over_sse,
    a_token_in_the_url_is_refused_even_beside_a_valid_header,
    only_members_may_listen,
    a_feed_given_by_the_embedding_program_is_streamed,
    without_a_feed_the_endpoint_is_503,
);

const WAIT: Duration = Duration::from_secs(20);

async fn a_member_receives_the_chats_groups_over_sse(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob, cat) = (
        app.user("ann").await,
        app.user("bob").await,
        app.user("cat").await,
    );
    let chat = app.chat(&ann, &bob).await;
    let other = app.chat(&ann, &cat).await;
    let mut events = app.events(chat, &bob.token, false).await;
    assert_eq!(events.status, StatusCode::OK);
    assert_eq!(events.headers["content-type"], "text/event-stream");
    let ready = events.next(WAIT).await.expect("ready");
    assert_eq!(ready.event, "ready");
    assert_eq!(ready.data["chat_id"], chat.to_string());

    let mut sent = HashSet::new();
    for i in 0..3 {
        let message = app.say_ok(&ann, chat, &format!("live {i}")).await;
        sent.insert(message["message_id"].as_str().expect("id").to_owned());
        app.say_ok(&cat, other, "elsewhere").await;
    }
    let mut received = HashSet::new();
    while received.len() < sent.len() {
        let group = events
            .next_group(WAIT)
            .await
            .unwrap_or_else(|| panic!("only {received:?} of {sent:?} arrived"));
        assert_eq!(group.data["chat_id"], chat.to_string());
        assert_eq!(group.id.as_deref(), group.data["group_id"].as_str());
        for message in group.data["messages"].as_array().expect("messages") {
            assert_eq!(message["chat_id"], chat.to_string(), "only this chat");
            received.insert(message["message_id"].as_str().expect("id").to_owned());
        }
    }
    assert_eq!(received, sent);
}

async fn a_token_in_the_url_is_refused_even_beside_a_valid_header(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let in_url = app.events(chat, &ann.token, true).await;
    assert_eq!(in_url.status, StatusCode::UNAUTHORIZED);
    let both = app
        .get(
            &format!("/api/v1/chats/{chat}/events?access_token={}", ann.token),
            Some(&ann.token),
        )
        .await;
    both.assert_error(StatusCode::UNAUTHORIZED, "token_in_url");
    app.get(&format!("/api/v1/events?access_token={}", ann.token), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token_in_url");
    // The header alone works.
    let mut events = app.events(chat, &ann.token, false).await;
    assert_eq!(events.status, StatusCode::OK);
    assert_eq!(events.next(WAIT).await.expect("ready").event, "ready");
    let message = app.say_ok(&bob, chat, "via the header").await;
    let group = events.next_group(WAIT).await.expect("a group");
    assert_eq!(group.data["messages"][0], message);

    let expired = sign(&SIGNING_SEED, &claims(ann.id, -7200, -3600));
    for token in [expired.as_str(), "garbage"] {
        let refused = app.events(chat, token, false).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    }
}

async fn only_members_may_listen(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob, cat) = (
        app.user("ann").await,
        app.user("bob").await,
        app.user("cat").await,
    );
    let chat = app.chat(&ann, &bob).await;
    let uri = format!("/api/v1/chats/{chat}/events");
    app.get(&uri, Some(&cat.token))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    app.get(&uri, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing_token");
    app.get(&format!("{uri}?access_token="), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token_in_url");
    app.get(
        &format!("/api/v1/chats/{}/events", Uuid::now_v7()),
        Some(&ann.token),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/chats/nope/events", Some(&ann.token))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_path");
}

/// A group of `chat` whose messages go from `from` to `to` (a group is routed to the people in it).
fn chat_group(chat: Uuid, from: Uuid, to: Uuid, bodies: &[&str]) -> ChatGroup {
    let records: Vec<ChatMessage> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| ChatMessage {
            message_id: Uuid::new_v4().to_string().into(),
            chat_id: chat.to_string().into(),
            from_user: from.to_string().into(),
            to_user: to.to_string().into(),
            body: (*body).to_owned().into(),
            time: timeuuid_from_ms(1_000 + i as u64, 0, [2; 6]),
            time_iso: iso_from_ms(1_000 + i as u64).into(),
        })
        .collect();
    Group {
        id: Uuid::new_v4(),
        key: chat.to_string(),
        first_time_ms: 1_000,
        last_time_ms: 1_000 + records.len() as u64,
        bytes: 0,
        reason: CompletionReason::MaxMessages,
        records,
    }
}

async fn a_feed_given_by_the_embedding_program_is_streamed(backend: Backend) {
    let (sender, _) = tokio::sync::broadcast::channel::<Arc<ChatGroup>>(16);
    let feed = Arc::new(InProcessFeed::from_sender(sender.clone()));
    let app = TestApp::with(backend, |_, backends| backends.feed = Some(feed)).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let mut events = app.events(chat, &bob.token, false).await;
    assert_eq!(events.next(WAIT).await.expect("ready").event, "ready");
    sender
        .send(Arc::new(chat_group(
            Uuid::now_v7(),
            ann.id,
            bob.id,
            &["not ours"],
        )))
        .expect("subscribed");
    let ours = chat_group(chat, ann.id, bob.id, &["one", "two"]);
    sender.send(Arc::new(ours.clone())).expect("subscribed");
    let group = events.next_group(WAIT).await.expect("a group");
    assert_eq!(group.data["group_id"], ours.id.to_string());
    assert_eq!(group.data["reason"], "max_messages");
    let bodies: Vec<&str> = group.data["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    assert_eq!(bodies, ["one", "two"]);
}

async fn without_a_feed_the_endpoint_is_503(backend: Backend) {
    let app = TestApp::with(backend, |config, _| config.events = EventsConfig::None {}).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let refused = app
        .get(&format!("/api/v1/chats/{chat}/events"), Some(&ann.token))
        .await;
    refused.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(refused.retry_after(), 1);
}
