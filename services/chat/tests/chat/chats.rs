//! `POST /api/v1/chats` and `GET /api/v1/chats`: creation, idempotency (also concurrent), the
//! peer rules, the hourly limit, listing by activity, and who may call them.

use crate::common::{claims, on_every_backend, sign, Backend, TestApp, SIGNING_SEED};
use axum::http::{Method, StatusCode};
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;
use uuid::Uuid;

on_every_backend!(
    a_new_chat_is_201_and_the_same_pair_gets_200_with_that_chat,
    concurrent_creations_for_one_pair_yield_one_chat,
    the_peer_must_exist_and_differ_from_the_caller,
    creating_needs_a_valid_token,
    new_chats_per_hour_are_limited_and_repeats_do_not_count,
    the_list_shows_the_callers_chats_most_recently_active_first,
    the_list_pages_with_a_cursor,
);

async fn a_new_chat_is_201_and_the_same_pair_gets_200_with_that_chat(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let created = app.start_chat(&ann, bob.id).await;
    let chat = created.assert_status(StatusCode::CREATED);
    let chat_id = chat["chat_id"].as_str().expect("chat_id").to_owned();
    assert_eq!(
        created.headers["location"],
        format!("/api/v1/chats/{chat_id}/messages").as_str()
    );
    let members = chat["members"].as_array().expect("members");
    let names: HashSet<&str> = members
        .iter()
        .map(|m| m["username"].as_str().expect("username"))
        .collect();
    assert_eq!(names, HashSet::from(["ann", "bob"]));
    let ids: Vec<Uuid> = members
        .iter()
        .map(|m| m["id"].as_str().and_then(|id| id.parse().ok()).expect("id"))
        .collect();
    assert!(ids[0] < ids[1], "members are ordered by id");
    assert!(chat["created_at"].is_string() && chat["last_activity"].is_string());

    // The same pair, from either side, gets the same chat.
    for (caller, peer) in [(&ann, bob.id), (&bob, ann.id)] {
        let again = app
            .start_chat(caller, peer)
            .await
            .assert_status(StatusCode::OK);
        assert_eq!(again, chat);
    }
}

async fn concurrent_creations_for_one_pair_yield_one_chat(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::new(backend).await);
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    // Separate tasks, so the requests really run in parallel on the runtime's threads.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (app, ann, bob) = (app.clone(), ann.clone(), bob.clone());
            tokio::spawn(async move {
                if i % 2 == 0 {
                    app.start_chat(&ann, bob.id).await
                } else {
                    app.start_chat(&bob, ann.id).await
                }
            })
        })
        .collect();
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.expect("join"));
    }
    let created = responses
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "exactly one request creates the chat");
    let ids: HashSet<String> = responses
        .iter()
        .map(|r| {
            assert!(r.status.is_success(), "{r:?}");
            r.json()["chat_id"].as_str().expect("id").to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "everyone gets the same chat");
    let listed = app
        .get("/api/v1/chats", Some(&ann.token))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(listed["chats"].as_array().map(Vec::len), Some(1));
}

async fn the_peer_must_exist_and_differ_from_the_caller(backend: Backend) {
    let app = TestApp::new(backend).await;
    let ann = app.user("ann").await;
    app.start_chat(&ann, Uuid::now_v7())
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    let message = app
        .start_chat(&ann, ann.id)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_peer");
    assert!(message.contains("yourself"), "{message}");
    // A valid token for a user the database does not know (deleted, or another deployment).
    let ghost = sign(&SIGNING_SEED, &claims(Uuid::now_v7(), 0, 600));
    let response = app
        .json(
            Method::POST,
            "/api/v1/chats",
            serde_json::json!({ "peer_id": ann.id }),
            Some(&ghost),
        )
        .await;
    response.assert_error(StatusCode::FORBIDDEN, "forbidden");
}

async fn creating_needs_a_valid_token(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let body = serde_json::json!({ "peer_id": bob.id });
    let expired = sign(&SIGNING_SEED, &claims(ann.id, -7200, -3600));
    let foreign = sign(&[9; 32], &claims(ann.id, 0, 600));
    for (token, code) in [
        (None, "missing_token"),
        (Some(expired.as_str()), "invalid_token"),
        (Some(foreign.as_str()), "invalid_token"),
        (Some("not-a-jwt"), "invalid_token"),
    ] {
        let response = app
            .json(Method::POST, "/api/v1/chats", body.clone(), token)
            .await;
        response.assert_error(StatusCode::UNAUTHORIZED, code);
        assert!(response.headers.contains_key("www-authenticate"));
        let list = app.get("/api/v1/chats", token).await;
        list.assert_error(StatusCode::UNAUTHORIZED, code);
    }
    // Nothing was created by the refused requests.
    let listed = app
        .get("/api/v1/chats", Some(&ann.token))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(listed["chats"], serde_json::json!([]));
}

async fn new_chats_per_hour_are_limited_and_repeats_do_not_count(backend: Backend) {
    let app = TestApp::with(backend, |config, _| {
        config.limits.new_chats_per_hour = 2;
    })
    .await;
    let ann = app.user("ann").await;
    let mut peers = Vec::new();
    for name in ["bob", "cat", "dan"] {
        peers.push(app.user(name).await);
    }
    app.start_chat(&ann, peers[0].id)
        .await
        .assert_status(StatusCode::CREATED);
    // Asking again for an existing chat is free.
    for _ in 0..3 {
        app.start_chat(&ann, peers[0].id)
            .await
            .assert_status(StatusCode::OK);
    }
    app.start_chat(&ann, peers[1].id)
        .await
        .assert_status(StatusCode::CREATED);
    let refused = app.start_chat(&ann, peers[2].id).await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    assert_eq!(refused.retry_after(), 1800, "one new chat every 30 minutes");
    // The limit is the caller's: dan can still start a chat with ann.
    app.start_chat(&peers[2], ann.id)
        .await
        .assert_status(StatusCode::CREATED);
}

async fn the_list_shows_the_callers_chats_most_recently_active_first(backend: Backend) {
    let app = TestApp::new(backend).await;
    let ann = app.user("ann").await;
    let (bob, cat, dan) = (
        app.user("bob").await,
        app.user("cat").await,
        app.user("dan").await,
    );
    let with_bob = app.chat(&ann, &bob).await;
    let with_cat = app.chat(&cat, &ann).await;
    let with_dan = app.chat(&ann, &dan).await;
    let _bob_cat = app.chat(&bob, &cat).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    app.say_ok(&bob, with_bob, "bump").await;

    let listed = app
        .get("/api/v1/chats", Some(&ann.token))
        .await
        .assert_status(StatusCode::OK);
    let order: Vec<String> = listed["chats"]
        .as_array()
        .expect("chats")
        .iter()
        .map(|c| c["chat_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(
        order,
        [with_bob, with_dan, with_cat].map(|id| id.to_string()),
        "bob's chat was bumped; the others by creation"
    );
    assert!(listed.get("next_cursor").is_none());
    let first = &listed["chats"][0];
    let time = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(first[field].as_str().expect("a time")).expect(field)
    };
    assert!(time("last_activity") > time("created_at"), "{first}");
}

async fn the_list_pages_with_a_cursor(backend: Backend) {
    let app = TestApp::new(backend).await;
    let ann = app.user("ann").await;
    let mut expected = Vec::new();
    for i in 0..5 {
        let peer = app.user(&format!("peer{i}")).await;
        expected.push(app.chat(&ann, &peer).await.to_string());
    }
    expected.reverse();
    let mut seen = Vec::new();
    let mut uri = "/api/v1/chats?limit=2".to_owned();
    loop {
        let page = app
            .get(&uri, Some(&ann.token))
            .await
            .assert_status(StatusCode::OK);
        let chats = page["chats"].as_array().expect("chats");
        assert!(chats.len() <= 2);
        seen.extend(
            chats
                .iter()
                .map(|c| c["chat_id"].as_str().expect("id").to_owned()),
        );
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(cursor) => uri = format!("/api/v1/chats?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    for bad in [
        "limit=0",
        "limit=201",
        "cursor=junk",
        "limit=x",
        "color=red",
    ] {
        app.get(&format!("/api/v1/chats?{bad}"), Some(&ann.token))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_query");
    }
}
