//! Blocking a person (issue 24): neither side can start a chat or write to the other while a
//! block stands, both get the same 403 `blocked`, and unblocking restores writing at once.

use crate::common::{on_every_backend, Backend, TestApp, TestUser};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;
use uuid::Uuid;

on_every_backend!(
    a_blocked_person_cannot_start_a_chat_or_send_and_unblocking_restores_it,
    the_blocker_cannot_write_either_and_both_see_the_same_answer,
    blocks_are_listed_only_to_their_owner_and_checked,
);

trait NoContent {
    fn assert_no_content(&self);
}

impl NoContent for crate::common::TestResponse {
    #[track_caller]
    fn assert_no_content(&self) {
        assert_eq!(
            self.status,
            StatusCode::NO_CONTENT,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
    }
}

async fn block(app: &TestApp, by: &TestUser, whom: Uuid) -> crate::common::TestResponse {
    app.json(
        Method::POST,
        "/api/v1/blocks",
        json!({ "user_id": whom }),
        Some(&by.token),
    )
    .await
}

async fn unblock(app: &TestApp, by: &TestUser, whom: Uuid) -> crate::common::TestResponse {
    let request = Request::builder()
        .method(Method::DELETE)
        .uri(format!("/api/v1/blocks/{whom}"))
        .header("authorization", format!("Bearer {}", by.token))
        .body(Body::empty())
        .expect("request");
    app.send(request).await
}

async fn a_blocked_person_cannot_start_a_chat_or_send_and_unblocking_restores_it(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob, cat) = (
        app.user("ann").await,
        app.user("bob").await,
        app.user("cat").await,
    );
    let chat = app.chat(&ann, &bob).await;
    app.say_ok(&bob, chat, "hello before the block").await;

    let made = block(&app, &ann, bob.id)
        .await
        .assert_status(StatusCode::CREATED);
    assert_eq!(made["user_id"], bob.id.to_string());
    assert_eq!(made["username"], "bob");
    // Blocking again is idempotent.
    let again = block(&app, &ann, bob.id)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(again["created_at"], made["created_at"]);

    // Bob can neither write in the existing chat nor get it (or a new one) from POST /chats.
    let sent = app
        .say(&bob, chat, json!({ "body": "are you there?" }))
        .await
        .assert_error(StatusCode::FORBIDDEN, "blocked");
    let started = app
        .start_chat(&bob, ann.id)
        .await
        .assert_error(StatusCode::FORBIDDEN, "blocked");
    assert_eq!(sent, started, "one message for every refusal");
    let typing = app
        .json(
            Method::POST,
            &format!("/api/v1/chats/{chat}/typing"),
            json!({}),
            Some(&bob.token),
        )
        .await;
    assert_ne!(
        typing.status,
        StatusCode::NO_CONTENT,
        "no typing notices either"
    );
    // Bob can still talk to others, and read the old history.
    let other = app.chat(&bob, &cat).await;
    app.say_ok(&bob, other, "hi cat").await;
    app.get(&format!("/api/v1/chats/{chat}/messages"), Some(&bob.token))
        .await
        .assert_status(StatusCode::OK);

    unblock(&app, &ann, bob.id).await.assert_no_content();
    app.say_ok(&bob, chat, "thanks for unblocking").await;
    app.start_chat(&bob, ann.id)
        .await
        .assert_status(StatusCode::OK);
    // Unblocking twice is fine.
    unblock(&app, &ann, bob.id).await.assert_no_content();
}

async fn the_blocker_cannot_write_either_and_both_see_the_same_answer(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    block(&app, &bob, ann.id)
        .await
        .assert_status(StatusCode::CREATED);
    let blocker_sees = app
        .say(&bob, chat, json!({ "body": "one last word" }))
        .await
        .assert_error(StatusCode::FORBIDDEN, "blocked");
    let blocked_sees = app
        .say(&ann, chat, json!({ "body": "why?" }))
        .await
        .assert_error(StatusCode::FORBIDDEN, "blocked");
    assert_eq!(blocker_sees, blocked_sees);
    assert!(
        !blocked_sees.contains("block"),
        "the message does not say who blocked whom: {blocked_sees}"
    );
    app.start_chat(&bob, ann.id)
        .await
        .assert_error(StatusCode::FORBIDDEN, "blocked");
    // Each side unblocks only its own block: ann blocking too needs both to lift theirs.
    block(&app, &ann, bob.id)
        .await
        .assert_status(StatusCode::CREATED);
    unblock(&app, &bob, ann.id).await.assert_no_content();
    app.say(&bob, chat, json!({ "body": "still?" }))
        .await
        .assert_error(StatusCode::FORBIDDEN, "blocked");
    unblock(&app, &ann, bob.id).await.assert_no_content();
    app.say_ok(&bob, chat, "all clear").await;
}

async fn blocks_are_listed_only_to_their_owner_and_checked(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob, cat) = (
        app.user("ann").await,
        app.user("bob").await,
        app.user("cat").await,
    );
    block(&app, &ann, bob.id)
        .await
        .assert_status(StatusCode::CREATED);
    block(&app, &ann, cat.id)
        .await
        .assert_status(StatusCode::CREATED);
    let mine = app
        .get("/api/v1/blocks", Some(&ann.token))
        .await
        .assert_status(StatusCode::OK);
    let ids: Vec<&str> = mine["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .map(|b| b["user_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 2, "{mine}");
    assert!(ids.contains(&bob.id.to_string().as_str()));
    let bobs = app
        .get("/api/v1/blocks", Some(&bob.token))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(bobs["blocks"], json!([]), "bob does not see who blocks him");

    block(&app, &ann, ann.id)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_user");
    block(&app, &ann, Uuid::now_v7())
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.json(
        Method::POST,
        "/api/v1/blocks",
        json!({ "user": bob.id }),
        Some(&ann.token),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    app.get("/api/v1/blocks", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing_token");
    let request = Request::builder()
        .method(Method::DELETE)
        .uri("/api/v1/blocks/not-a-uuid")
        .header("authorization", format!("Bearer {}", ann.token))
        .body(Body::empty())
        .expect("request");
    let response = app.send(request).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
}
