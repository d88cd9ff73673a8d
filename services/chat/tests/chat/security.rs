//! Security (issue 9, the services' part), through the real routers of both services:
//!
//! - the authorization matrix: every endpoint that takes a token, of the chat and the auth
//!   service, times {no token, malformed, expired, signed by another key, a valid token of a user
//!   who is not in the chat, a member's token}, with the expected status and JSON error each time;
//! - injection: message bodies and passwords carrying SQL, CQL, HTML and script payloads are
//!   stored and returned byte for byte (as JSON, never as HTML), and usernames carrying them are
//!   refused with a 4xx by the auth service's rules;
//! - no secret in the logs: a whole flow (sign up, a failed and a good login, chats, sends,
//!   history, the events stream with the token in its query) logged at DEBUG by both services
//!   shows no password, no JWT and no database password.

use crate::common::{claims, on_every_backend, sign, Backend, TestApp, TestUser, SIGNING_SEED};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use confab_token::Secret;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

on_every_backend!(
    every_endpoint_answers_each_kind_of_caller_as_expected,
    injection_payloads_are_stored_and_returned_verbatim,
);

/// The auth service on the chat test's database and signing key (the chat test harness writes
/// the key, so tokens of either service verify at the other).
pub(crate) async fn auth_router(app: &TestApp) -> Router {
    let mut config = confab_auth::Config {
        database_url: Secret::new(app.db.url.clone()),
        max_db_connections: 2,
        ..confab_auth::Config::default()
    };
    config.jwt.ed25519_private_key_file = Some(app.db.dir().join("signing.pem"));
    config.throttle.signups_per_address = 1_000;
    let state = confab_auth::AppState::build(&config)
        .await
        .expect("build the auth service");
    confab_auth::app(state)
}

/// Sends a request and reads the body unless it is an event stream (which never ends).
async fn call(router: &Router, request: Request<Body>) -> (StatusCode, Option<Value>) {
    let mut request = request;
    let addr: std::net::SocketAddr = "127.0.0.1:50000".parse().expect("addr");
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if content_type.starts_with("text/event-stream") {
        return (status, None);
    }
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert!(
        content_type.starts_with("application/json"),
        "{status} is {content_type:?}: {}",
        String::from_utf8_lossy(&body)
    );
    let json = serde_json::from_slice(&body).expect("JSON");
    (status, Some(json))
}

/// One endpoint: how to build its request, and what a non-member and a member get.
struct Endpoint {
    method: Method,
    uri: String,
    body: Option<Value>,
    non_member: StatusCode,
    member: StatusCode,
}

fn request(endpoint: &Endpoint, token: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(endpoint.method.clone())
        .uri(&endpoint.uri);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    match &endpoint.body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    }
    .expect("request")
}

async fn every_endpoint_answers_each_kind_of_caller_as_expected(backend: Backend) {
    let app = TestApp::new(backend).await;
    let auth = auth_router(&app).await;
    let (ann, bob, cat) = (
        app.user("ann").await,
        app.user("bob").await,
        app.user("cat").await,
    );
    let chat = app.chat(&ann, &bob).await;
    app.say_ok(&bob, chat, "hello").await;
    let expired = sign(&SIGNING_SEED, &claims(ann.id, -7200, -3600));
    let not_yet = sign(&SIGNING_SEED, &claims(ann.id, 3600, 7200));
    let foreign = sign(&[9; 32], &claims(ann.id, 0, 600));
    let tampered = {
        // Ann's real token with cat's id swapped into the payload: the signature no longer fits.
        let parts: Vec<&str> = ann.token.split('.').collect();
        let other: Vec<&str> = cat.token.split('.').collect();
        format!("{}.{}.{}", parts[0], other[1], parts[2])
    };
    let chat_endpoints = |member: &TestUser| {
        let peer = if member.id == ann.id { bob.id } else { ann.id };
        vec![
            // Starting a chat and listing one's chats need no membership.
            Endpoint {
                method: Method::POST,
                uri: "/api/v1/chats".into(),
                body: Some(json!({ "peer_id": peer })),
                non_member: StatusCode::CREATED,
                member: StatusCode::OK,
            },
            Endpoint {
                method: Method::GET,
                uri: "/api/v1/chats".into(),
                body: None,
                non_member: StatusCode::OK,
                member: StatusCode::OK,
            },
            Endpoint {
                method: Method::POST,
                uri: format!("/api/v1/chats/{chat}/messages"),
                body: Some(json!({ "body": "matrix" })),
                non_member: StatusCode::FORBIDDEN,
                member: StatusCode::CREATED,
            },
            Endpoint {
                method: Method::GET,
                uri: format!("/api/v1/chats/{chat}/messages"),
                body: None,
                non_member: StatusCode::FORBIDDEN,
                member: StatusCode::OK,
            },
            Endpoint {
                method: Method::GET,
                uri: format!("/chat/{chat}?quantity=5"),
                body: None,
                non_member: StatusCode::FORBIDDEN,
                member: StatusCode::OK,
            },
            Endpoint {
                method: Method::GET,
                uri: format!("/api/v1/chats/{chat}/events"),
                body: None,
                non_member: StatusCode::FORBIDDEN,
                member: StatusCode::OK,
            },
        ]
    };
    let auth_endpoints = vec![
        Endpoint {
            method: Method::GET,
            uri: "/api/v1/users".into(),
            body: None,
            non_member: StatusCode::OK,
            member: StatusCode::OK,
        },
        Endpoint {
            method: Method::GET,
            uri: format!("/api/v1/users/{}", bob.id),
            body: None,
            non_member: StatusCode::OK,
            member: StatusCode::OK,
        },
    ];
    let refused: [(&str, Option<&str>, &str); 6] = [
        ("no token", None, "missing_token"),
        ("malformed", Some("not-a-jwt"), "invalid_token"),
        ("expired", Some(&expired), "invalid_token"),
        ("not yet valid", Some(&not_yet), "invalid_token"),
        ("another key", Some(&foreign), "invalid_token"),
        ("tampered", Some(&tampered), "invalid_token"),
    ];
    let mut checked = 0;
    for (service, router, endpoints) in [
        ("chat", &app.router, chat_endpoints(&ann)),
        ("auth", &auth, auth_endpoints),
    ] {
        for endpoint in &endpoints {
            let what = format!("{service}: {} {}", endpoint.method, endpoint.uri);
            for (kind, token, code) in refused {
                let (status, body) = call(router, request(endpoint, token)).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}, {kind}");
                let body = body.expect("a JSON error");
                assert_eq!(body["error"], code, "{what}, {kind}: {body}");
                checked += 1;
            }
            let (status, body) = call(router, request(endpoint, Some(&cat.token))).await;
            assert_eq!(
                status, endpoint.non_member,
                "{what}, another user: {body:?}"
            );
            if status == StatusCode::FORBIDDEN {
                assert_eq!(body.expect("a JSON error")["error"], "forbidden", "{what}");
            }
            let (status, body) = call(router, request(endpoint, Some(&ann.token))).await;
            assert_eq!(status, endpoint.member, "{what}, a member: {body:?}");
            checked += 2;
        }
    }
    assert_eq!(checked, 8 * 8, "every endpoint, every kind of caller");
    // Nothing a refused caller sent reached the chat: only bob's and ann's own messages.
    app.wait_for_history(&ann, chat, 2).await;
    let page = app
        .get(&format!("/api/v1/chats/{chat}/messages"), Some(&ann.token))
        .await
        .assert_status(StatusCode::OK);
    let bodies: Vec<&str> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    assert_eq!(bodies, ["matrix", "hello"]);
}

/// Payloads that break a query or a page that splices text instead of binding or escaping it.
const PAYLOADS: &[&str] = &[
    "'; DROP TABLE chats; --",
    "' OR '1'='1",
    "\"; DROP TABLE users; --",
    "1); DELETE FROM client_messages WHERE (1=1",
    "'); DROP KEYSPACE confab; --",
    "' ALLOW FILTERING; --",
    "$1 ? :name %s {ks}",
    "<script>alert('x')</script>",
    "<img src=x onerror=alert(1)>",
    "</textarea>\"><svg/onload=alert(1)>",
    "{{7*7}} ${7*7} #{7*7}",
    "\\x00 \\u0000 %00 \\' \\\"",
    "Robert'); DROP TABLE students;-- 😀 ñ 中文",
];

async fn injection_payloads_are_stored_and_returned_verbatim(backend: Backend) {
    let app = TestApp::new(backend).await;
    let auth = auth_router(&app).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let mut sent = 0;
    for payload in PAYLOADS {
        let answer = app.say_ok(&ann, chat, payload).await;
        assert_eq!(answer["body"], *payload, "the send answers it verbatim");
        sent += 1;
        // As an idempotency key too (its rules: printable ASCII without spaces, at most 64).
        let key = payload.replace(' ', "");
        if key.is_ascii() && key.len() <= 64 {
            let send = json!({ "body": payload, "client_message_id": key });
            let keyed = app
                .say(&bob, chat, send.clone())
                .await
                .assert_status(StatusCode::CREATED);
            sent += 1;
            // A retry finds the same record: the key was stored and matched verbatim.
            let again = app
                .say(&bob, chat, send)
                .await
                .assert_status(StatusCode::OK);
            assert_eq!(again["message_id"], keyed["message_id"], "{key}");
        }
    }
    app.wait_for_history(&ann, chat, sent).await;
    let (history, _) = app
        .walk_history(&ann, &format!("/chat/{chat}"), Some(100))
        .await;
    assert_eq!(history.len(), sent, "each message once");
    let from_ann: Vec<&str> = history
        .iter()
        .rev()
        .filter(|m| m["from_user"] == ann.id.to_string())
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    assert_eq!(
        from_ann, PAYLOADS,
        "stored and returned byte for byte, in order"
    );

    // The tables are all still there: the store answers for both users.
    for user in [&ann, &bob] {
        let listed = app
            .get("/api/v1/chats", Some(&user.token))
            .await
            .assert_status(StatusCode::OK);
        assert_eq!(listed["chats"].as_array().map(Vec::len), Some(1));
    }

    // Usernames: the auth service's rules refuse every payload with a JSON 4xx...
    for payload in PAYLOADS {
        let signup = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/users")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({ "username": payload, "password": "a long enough password" }).to_string(),
            ))
            .expect("request");
        let (status, body) = call(&auth, signup).await;
        assert!(status.is_client_error(), "{payload}: {status} {body:?}");
    }
    // ...while a password carrying one is only hashed: signing up and logging in with it work.
    let password = "'; DROP TABLE users; -- <script>alert(1)</script>";
    let signup = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/users")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({ "username": "dora", "password": password }).to_string(),
        ))
        .expect("request");
    let (status, body) = call(&auth, signup).await;
    assert_eq!(status, StatusCode::CREATED, "{body:?}");
    let login = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/login")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({ "username": "dora", "password": password }).to_string(),
        ))
        .expect("request");
    let (status, body) = call(&auth, login).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert!(body.expect("token")["access_token"].is_string());
}

/// Everything the process logs, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

/// Runs on PostgreSQL so that the database URL holds a password too. The subscriber is the
/// process's global one (the only test that sets one), so it also sees what the embedded
/// aggregator's threads and the other tests running meanwhile log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_token_or_database_password_reaches_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");

    let app = TestApp::new(Backend::Postgres).await;
    let auth = auth_router(&app).await;
    let password = "correct horse battery staple 7f3a";
    let mut tokens = Vec::new();
    for name in ["erin", "finn"] {
        let signup = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/users")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({ "username": name, "password": password }).to_string(),
            ))
            .expect("request");
        assert_eq!(call(&auth, signup).await.0, StatusCode::CREATED);
        let wrong = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "username={name}&password=wrong-{}",
                password.replace(' ', "+")
            )))
            .expect("request");
        assert_eq!(call(&auth, wrong).await.0, StatusCode::UNAUTHORIZED);
        let login = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/login")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({ "username": name, "password": password }).to_string(),
            ))
            .expect("request");
        let (status, body) = call(&auth, login).await;
        assert_eq!(status, StatusCode::OK);
        let body = body.expect("token");
        tokens.push(TestUser {
            id: body["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("user_id"),
            token: body["access_token"].as_str().expect("token").to_owned(),
        });
    }
    let (erin, finn) = (&tokens[0], &tokens[1]);
    let chat = app.chat(erin, finn).await;
    let mut events = app.events(chat, &erin.token, false).await;
    assert_eq!(events.status, StatusCode::OK);
    app.say_ok(finn, chat, "hi erin").await;
    assert!(
        events.next_group(Duration::from_secs(20)).await.is_some(),
        "the group arrives on the stream"
    );
    app.wait_for_history(erin, chat, 1).await;
    // A token in the query and a bad one in the header: refused, and not echoed into the logs.
    let leaked = format!("{}x", finn.token);
    let in_url = app.events(chat, &finn.token, true).await;
    assert_eq!(in_url.status, StatusCode::UNAUTHORIZED);
    let bad = app.events(chat, &leaked, false).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    app.get("/api/v1/chats", Some(&leaked))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    drop(events);
    app.state.shutdown().await;

    let logs = captured.text();
    assert!(
        logs.contains("Started a chat.") && logs.contains("Created a user."),
        "the capture works: {} bytes",
        logs.len()
    );
    assert!(
        logs.contains("/api/v1/login"),
        "requests are logged with their path"
    );
    let database_password = app
        .db
        .url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| format!(":{password}@"))
        .expect("the test database URL has a password");
    let mut secrets = vec![
        password.to_owned(),
        password.replace(' ', "+"),
        database_password,
    ];
    for user in &tokens {
        let signature = user.token.rsplit('.').next().expect("signature").to_owned();
        secrets.push(user.token.clone());
        secrets.push(signature);
    }
    secrets.push(leaked);
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret is in the logs: {secret:?}"
        );
    }
}
