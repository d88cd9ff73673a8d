//! Malformed requests always get a 4xx JSON `{error, message}`, never a 5xx or a panic.

use crate::common::{on_every_backend, Backend, TestApp, TestResponse};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

on_every_backend!(
    bad_bodies_get_json_4xx_with_the_right_status,
    huge_bodies_are_413,
    unknown_routes_and_methods_are_json_404_and_405,
    no_junk_body_ever_gets_a_5xx,
);

const JSON: Option<&str> = Some("application/json");

fn post(
    uri: &str,
    token: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.body(body.into()).expect("request")
}

async fn bad_bodies_get_json_4xx_with_the_right_status(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let send_uri = format!("/api/v1/chats/{chat}/messages");
    let cases: [(&str, Option<&str>, &str, StatusCode, &str); 12] = [
        (
            "/api/v1/chats",
            JSON,
            "{not json",
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "/api/v1/chats",
            JSON,
            "",
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "/api/v1/chats",
            JSON,
            r#"{"peer_id": "nope"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/api/v1/chats",
            JSON,
            r#"{}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/api/v1/chats",
            JSON,
            r#"{"peer_id": null, "admin": true}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/api/v1/chats",
            None,
            r#"{"peer_id": "x"}"#,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            &send_uri,
            JSON,
            "{",
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            &send_uri,
            JSON,
            r#"{"body": 5}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            &send_uri,
            JSON,
            r#"{"text": "hi"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            &send_uri,
            JSON,
            r#"{"body": "hi", "priority": 1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            &send_uri,
            JSON,
            "[]",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            &send_uri,
            Some("text/plain"),
            r#"{"body": "hi"}"#,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ];
    for (uri, content_type, body, status, code) in cases {
        let response = app.send(post(uri, &ann.token, content_type, body)).await;
        let message = response.assert_error(status, code);
        if body.contains("priority") {
            assert!(
                message.contains("priority"),
                "names the unknown field: {message}"
            );
        }
    }
    app.send(post(
        &send_uri,
        &ann.token,
        JSON,
        vec![0xff, 0xfe, 0x00, 0x80],
    ))
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
}

async fn huge_bodies_are_413(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let huge = format!(r#"{{"body": "{}"}}"#, "x".repeat(1024 * 1024));
    app.send(post(
        &format!("/api/v1/chats/{chat}/messages"),
        &ann.token,
        JSON,
        huge.clone(),
    ))
    .await
    .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    app.send(post("/api/v1/chats", &ann.token, JSON, huge))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

async fn unknown_routes_and_methods_are_json_404_and_405(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.get("/nope", None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/chats/a/b/c", None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    for (method, uri) in [
        (Method::DELETE, "/api/v1/chats"),
        (
            Method::PUT,
            "/api/v1/chats/00000000-0000-0000-0000-000000000000/messages",
        ),
        (Method::POST, "/chat/00000000-0000-0000-0000-000000000000"),
        (Method::POST, "/readyz"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        app.send(request)
            .await
            .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
}

async fn no_junk_body_ever_gets_a_5xx(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let junk: Vec<Vec<u8>> = vec![
        b"{}".to_vec(),
        b"{\"body\": null}".to_vec(),
        b"{\"body\": [\"a\"], \"client_message_id\": {\"b\": 1}}".to_vec(),
        b"{\"body\": \"\\u0000\"}".to_vec(),
        b"{\"body\": \"a\", \"body\": \"b\"}".to_vec(),
        b"{\"body\": 1e999}".to_vec(),
        b"{\"peer_id\": \"00000000-0000-0000-0000-000000000000\"}".to_vec(),
        b"{\"body\": \"\\ud800\"}".to_vec(),
        "{\"body\": \"😀\", \"client_message_id\": \"😀\"}"
            .as_bytes()
            .to_vec(),
        b"\"just a string\"".to_vec(),
        [b'['; 2000].to_vec(),
    ];
    for uri in [
        "/api/v1/chats".to_owned(),
        format!("/api/v1/chats/{chat}/messages"),
    ] {
        for (i, body) in junk.iter().enumerate() {
            for content_type in [
                JSON,
                Some("application/json; charset=utf-8"),
                Some("application/x-www-form-urlencoded"),
            ] {
                let response: TestResponse = app
                    .send(post(&uri, &ann.token, content_type, body.clone()))
                    .await;
                assert!(
                    response.status.is_client_error(),
                    "{uri} case {i} {content_type:?}: {} {}",
                    response.status,
                    String::from_utf8_lossy(&response.body)
                );
                let body = response.json();
                assert!(
                    body["error"].is_string() && body["message"].is_string(),
                    "{body}"
                );
            }
        }
    }
    for query in [
        "time=%FF",
        "quantity=99999999999999999999",
        "time=00000000-0000-1000-8000-000000000000&quantity=1%00",
    ] {
        let response = app
            .get(&format!("/chat/{chat}?{query}"), Some(&ann.token))
            .await;
        assert!(
            response.status.is_client_error() || response.status == StatusCode::OK,
            "{query}: {}",
            response.status
        );
        assert!(!response.status.is_server_error());
    }
}
