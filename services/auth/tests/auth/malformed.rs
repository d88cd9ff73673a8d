//! Malformed requests always get a 4xx JSON `{error, message}`, never a 5xx or a panic.

use crate::common::{on_both_backends, Backend, TestApp, TestResponse};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

on_both_backends!(
    bad_bodies_get_json_4xx_with_the_right_status,
    huge_bodies_are_413,
    unknown_routes_and_methods_are_json_404_and_405,
    no_junk_body_ever_gets_a_5xx,
);

fn post(uri: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut request = Request::builder().method(Method::POST).uri(uri);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.body(body.into()).expect("request")
}

const JSON: Option<&str> = Some("application/json");

async fn bad_bodies_get_json_4xx_with_the_right_status(backend: Backend) {
    let app = TestApp::new(backend).await;
    for uri in ["/api/v1/users", "/api/v1/login"] {
        let cases: [(Option<&str>, &str, StatusCode, &str); 9] = [
            (JSON, "{not json", StatusCode::BAD_REQUEST, "invalid_json"),
            (JSON, "", StatusCode::BAD_REQUEST, "invalid_json"),
            (
                JSON,
                r#"{"username": 5, "password": "long enough pw"}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
            ),
            (
                JSON,
                r#"{"username": "sam"}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
            ),
            (
                JSON,
                r#"{"username": "sam", "password": "long enough pw", "admin": true}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
            ),
            (JSON, "[]", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            (
                JSON,
                "null",
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
            ),
            (
                None,
                r#"{"username": "sam", "password": "long enough pw"}"#,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            (
                Some("text/plain"),
                r#"{"username": "sam", "password": "long enough pw"}"#,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
        ];
        for (content_type, body, status, code) in cases {
            let response = app.send(post(uri, content_type, body)).await;
            let message = response.assert_error(status, code);
            if code == "invalid_body" && body.contains("admin") {
                assert!(
                    message.contains("admin"),
                    "names the unknown field: {message}"
                );
            }
        }
        let binary = app
            .send(post(uri, JSON, vec![0xff, 0xfe, 0x00, 0x80]))
            .await;
        binary.assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    }
    // A wrong-typed field in a form is a 4xx JSON error too.
    let form = app
        .send(post(
            "/api/v1/login",
            Some("application/x-www-form-urlencoded"),
            "username=a&username=b&password=c",
        ))
        .await;
    assert!(form.status.is_client_error(), "{:?}", form.status);
    assert_eq!(form.json().as_object().map(|o| o.len()), Some(2));
}

async fn huge_bodies_are_413(backend: Backend) {
    let app = TestApp::new(backend).await;
    let huge = format!(
        r#"{{"username": "tom", "password": "{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    for uri in ["/api/v1/users", "/api/v1/login"] {
        app.send(post(uri, JSON, huge.clone()))
            .await
            .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    }
    app.send(post(
        "/api/v1/login",
        Some("application/x-www-form-urlencoded"),
        format!("username=tom&password={}", "x".repeat(1024 * 1024)),
    ))
    .await
    .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

async fn unknown_routes_and_methods_are_json_404_and_405(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.get("/nope", None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/login", None)
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let delete = Request::builder()
        .method(Method::DELETE)
        .uri("/api/v1/users")
        .body(Body::empty())
        .expect("request");
    app.send(delete)
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

async fn no_junk_body_ever_gets_a_5xx(backend: Backend) {
    let app = TestApp::new(backend).await;
    let junk: Vec<Vec<u8>> = vec![
        b"{}".to_vec(),
        b"{\"username\": null, \"password\": null}".to_vec(),
        b"{\"username\": [\"a\"], \"password\": {\"b\": 1}}".to_vec(),
        b"{\"username\": \"\\u0000\\u0000\\u0000\", \"password\": \"\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\"}".to_vec(),
        b"{\"username\": \"abc\", \"password\": \"abc\", \"username\": \"def\"}".to_vec(),
        b"{\"username\": 1e999, \"password\": true}".to_vec(),
        "{\"username\": \"😀😀😀\", \"password\": \"😀😀😀😀😀😀😀😀😀😀😀😀\"}".as_bytes().to_vec(),
        b"\"just a string\"".to_vec(),
        b"12345".to_vec(),
        [b'['; 2000].to_vec(),
        b"{\"username\": \"aaa\", \"password\": \"".iter().copied().chain(std::iter::repeat_n(b'a', 15_000)).chain(*b"\"}").collect(),
    ];
    for uri in ["/api/v1/users", "/api/v1/login"] {
        for (i, body) in junk.iter().enumerate() {
            for content_type in [
                JSON,
                Some("application/x-www-form-urlencoded"),
                Some("application/json; charset=utf-8"),
            ] {
                let response: TestResponse = app.send(post(uri, content_type, body.clone())).await;
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
}
