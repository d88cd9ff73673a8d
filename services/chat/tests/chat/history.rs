//! History pages (`GET /api/v1/chats/{chat_id}/messages` and the seed's `GET /chat/{chat_id}`)
//! over the SQL history the embedded aggregator writes, and the SQL history sink itself.

use crate::common::{claims, on_every_backend, sign, Backend, TestApp, SIGNING_SEED};
use axum::http::StatusCode;
use confab_chat::history::{History, SqlHistory, SqlHistorySink};
use confab_pipeline::chat::{iso_from_ms, timeuuid_from_ms};
use confab_pipeline::{group_id, ChatMessage, CompletionReason, Group, Sink};
use serde_json::Value;
use std::collections::HashSet;
use uuid::Uuid;

on_every_backend!(
    ninety_five_messages_walk_page_by_page_newest_first_on_both_routes,
    malformed_time_or_quantity_is_422_and_the_maximum_is_configurable,
    only_members_may_read,
    an_empty_chat_and_a_cursor_before_everything_give_empty_pages,
    the_sql_history_sink_is_idempotent_and_pages_by_time,
);

async fn ninety_five_messages_walk_page_by_page_newest_first_on_both_routes(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let mut sent = Vec::new();
    for i in 0..95 {
        let sender = if i % 3 == 0 { &bob } else { &ann };
        sent.push(app.say_ok(sender, chat, &format!("message {i}")).await);
    }
    app.wait_for_history(&ann, chat, 95).await;
    let newest_first: Vec<Value> = sent.into_iter().rev().collect();

    let rest = format!("/api/v1/chats/{chat}/messages");
    let seed = format!("/chat/{chat}");
    let (by_ten, pages) = app.walk_history(&ann, &rest, Some(10)).await;
    assert_eq!(pages, 10, "nine full pages and one of five");
    assert_eq!(by_ten, newest_first, "all 95, exactly once, newest first");
    let (by_default, pages) = app.walk_history(&bob, &rest, None).await;
    assert_eq!(pages, 10, "the default page is 10 messages");
    assert_eq!(by_default, newest_first);
    let (seed_pages, _) = app.walk_history(&ann, &seed, Some(10)).await;
    assert_eq!(seed_pages, newest_first, "the seed route agrees");
    let (big, pages) = app.walk_history(&ann, &seed, Some(100)).await;
    assert_eq!((pages, big), (1, newest_first.clone()));

    // The same page from both routes, mid-history.
    let cursor = newest_first[42]["time"].as_str().expect("time");
    let a = app
        .get(
            &format!("{rest}?time={cursor}&quantity=7"),
            Some(&ann.token),
        )
        .await
        .assert_status(StatusCode::OK);
    let b = app
        .get(
            &format!("{seed}?quantity=7&time={cursor}"),
            Some(&ann.token),
        )
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(a, b);
    assert_eq!(
        a["messages"].as_array().expect("messages").as_slice(),
        &newest_first[43..50],
        "strictly older than the cursor"
    );
    assert_eq!(a["next_cursor"], newest_first[49]["time"]);
}

async fn malformed_time_or_quantity_is_422_and_the_maximum_is_configurable(backend: Backend) {
    let app = TestApp::with(backend, |config, _| config.max_page_quantity = 20).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let v4 = Uuid::new_v4();
    let v7 = Uuid::now_v7();
    for route in [
        format!("/api/v1/chats/{chat}/messages"),
        format!("/chat/{chat}"),
    ] {
        for (query, code) in [
            ("time=yesterday", "invalid_time"),
            ("time=", "invalid_time"),
            (&format!("time={v4}") as &str, "invalid_time"),
            (&format!("time={v7}"), "invalid_time"),
            ("quantity=0", "invalid_quantity"),
            ("quantity=21", "invalid_quantity"),
            ("quantity=-3", "invalid_quantity"),
            ("quantity=ten", "invalid_quantity"),
            ("quantity=", "invalid_quantity"),
        ] {
            let message = app
                .get(&format!("{route}?{query}"), Some(&ann.token))
                .await
                .assert_error(StatusCode::UNPROCESSABLE_ENTITY, code);
            if code == "invalid_quantity" {
                assert!(message.contains("20"), "names the maximum: {message}");
            }
        }
        app.get(&format!("{route}?quantity=20"), Some(&ann.token))
            .await
            .assert_status(StatusCode::OK);
        app.get(&format!("{route}?page=2"), Some(&ann.token))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_query");
    }
}

async fn only_members_may_read(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob, cat) = (
        app.user("ann").await,
        app.user("bob").await,
        app.user("cat").await,
    );
    let chat = app.chat(&ann, &bob).await;
    app.say_ok(&ann, chat, "private").await;
    let expired = sign(&SIGNING_SEED, &claims(ann.id, -7200, -3600));
    for route in [
        format!("/api/v1/chats/{chat}/messages"),
        format!("/chat/{chat}"),
    ] {
        app.get(&route, Some(&cat.token))
            .await
            .assert_error(StatusCode::FORBIDDEN, "forbidden");
        app.get(&route, None)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "missing_token");
        app.get(&route, Some(&expired))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
        app.get(&route, Some(&bob.token))
            .await
            .assert_status(StatusCode::OK);
    }
    let unknown = Uuid::now_v7();
    for route in [
        format!("/api/v1/chats/{unknown}/messages"),
        format!("/chat/{unknown}"),
    ] {
        app.get(&route, Some(&ann.token))
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    for route in ["/api/v1/chats/xyz/messages", "/chat/xyz"] {
        app.get(route, Some(&ann.token))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_path");
    }
}

async fn an_empty_chat_and_a_cursor_before_everything_give_empty_pages(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let empty = app
        .get(&format!("/chat/{chat}"), Some(&ann.token))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(empty, serde_json::json!({ "messages": [] }));
    app.say_ok(&ann, chat, "first").await;
    app.wait_for_history(&ann, chat, 1).await;
    let ancient = timeuuid_from_ms(1_000, 0, [0; 6]);
    let before = app
        .get(&format!("/chat/{chat}?time={ancient}"), Some(&ann.token))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(before, serde_json::json!({ "messages": [] }));
    let exact = app
        .get(&format!("/chat/{chat}?quantity=1"), Some(&ann.token))
        .await
        .assert_status(StatusCode::OK);
    assert!(exact.get("next_cursor").is_none(), "no older page: {exact}");
}

fn message(chat: &str, i: u64, ms: u64, counter: u16) -> ChatMessage {
    ChatMessage {
        message_id: format!("m{i}").into(),
        chat_id: chat.to_owned().into(),
        from_user: "u1".into(),
        to_user: "u2".into(),
        body: format!("body {i}").into(),
        time: timeuuid_from_ms(ms, counter, [3; 6]),
        time_iso: iso_from_ms(ms).into(),
    }
}

fn group(records: Vec<ChatMessage>) -> Group<String, ChatMessage> {
    Group {
        id: group_id(&records[0].chat_id, &records[0].message_id),
        key: records[0].chat_id.to_string(),
        first_time_ms: 0,
        last_time_ms: 0,
        bytes: 0,
        reason: CompletionReason::MaxMessages,
        records,
    }
}

async fn the_sql_history_sink_is_idempotent_and_pages_by_time(backend: Backend) {
    let app = TestApp::new(backend).await;
    let store = app.state.store().clone();
    let sink = SqlHistorySink::new(store.clone());
    let history = SqlHistory::new(store);
    // Several messages in one millisecond (sub-ms counters), across two groups, one with a NUL.
    let messages: Vec<ChatMessage> = (0..30)
        .map(|i| message("c-sink", i, 1_700_000_000_000 + i / 4, (i % 4) as u16))
        .collect();
    let mut with_nul = message("c-sink", 99, 1_700_000_000_100, 0);
    with_nul.body = "a\0b".into();
    let groups = vec![
        group(messages[..17].to_vec()),
        group(messages[17..].to_vec()),
        group(vec![with_nul]),
    ];
    sink.write(&groups).await.expect("write");
    sink.write(&groups).await.expect("a replay is harmless");
    sink.write(&groups[1..2])
        .await
        .expect("so is a partial one");

    let all = history.page("c-sink", None, 1_000).await.expect("page");
    assert_eq!(all.len(), 31, "each message once");
    assert_eq!(all[0].body, "a\u{fffd}b", "NUL replaced, newest first");
    let expected: Vec<&str> = messages
        .iter()
        .rev()
        .map(|m| m.message_id.as_str())
        .collect();
    let got: Vec<&str> = all[1..].iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(
        got, expected,
        "ordered by TimeUUID time, sub-millisecond included"
    );

    let mut walked = Vec::new();
    let mut before = None;
    loop {
        let page = history.page("c-sink", before, 4).await.expect("page");
        walked.extend(page.iter().map(|m| m.message_id.clone()));
        if page.len() < 4 {
            break;
        }
        before = page.last().map(|m| m.time);
    }
    assert_eq!(walked.len(), 31);
    assert_eq!(walked.iter().collect::<HashSet<_>>().len(), 31);
    assert!(history
        .page("another-chat", None, 10)
        .await
        .expect("page")
        .is_empty());
    history.check().await.expect("the store answers");
}
