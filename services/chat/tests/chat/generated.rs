//! Generated bad input (issue 9): requests built by proptest from malformed JSON, wrong types,
//! missing and extra fields, huge bodies, bad UUIDs in paths and bodies, and negative, huge or
//! non-numeric quantities and cursors, sent to every endpoint that reads input, of the chat
//! service and of the auth service (built on the same database). Every answer is a 2xx (the
//! input happened to be valid) or a 4xx JSON `{error, message}`; never a 5xx.
//!
//! A fixed number of cases per backend ([`CASES`]) keeps it fit for CI; proptest shrinks a
//! failure to a minimal request and prints it.

use crate::common::{on_every_backend, Backend, TestApp, TestUser};
use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use tower::ServiceExt;
use uuid::Uuid;

on_every_backend!(
    generated_bad_requests_never_get_a_5xx,
    generated_bad_requests_to_the_auth_service_never_get_a_5xx,
);

/// Generated requests per backend.
const CASES: u32 = 512;

/// A JSON value of any shape, with the awkward numbers and strings.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::from)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        ".{0,40}".prop_map(Value::from),
        Just(json!("00000000-0000-0000-0000-000000000000")),
        Just(json!("not-a-uuid")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,12}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A UUID-ish path or body value: valid, nil, truncated, wrong version, junk.
fn any_id(chat: Uuid) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(chat.to_string()),
        Just(chat.simple().to_string()),
        Just(Uuid::nil().to_string()),
        Just(Uuid::max().to_string()),
        Just(chat.to_string()[..20].to_owned()),
        Just(format!("{chat}0")),
        "[0-9a-zA-Z%._~-]{0,40}",
    ]
}

/// A request body: a shaped object with wrong or extra fields, any JSON, raw bytes, or huge.
fn any_body(peer: Uuid) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (any_json(), any_json(), any::<bool>(), any_json()).prop_map(
            |(body, key, extra, value)| {
                let mut object = json!({ "body": body, "client_message_id": key });
                if extra {
                    object["unexpected"] = value;
                }
                object.to_string().into_bytes()
            }
        ),
        (".{1,60}", any::<bool>()).prop_map(|(text, with_key)| {
            let object = if with_key {
                json!({ "body": text, "client_message_id": text })
            } else {
                json!({ "body": text })
            };
            object.to_string().into_bytes()
        }),
        (any_json(), any::<bool>()).prop_map(move |(value, valid_peer)| {
            let peer = if valid_peer { json!(peer) } else { value };
            json!({ "peer_id": peer }).to_string().into_bytes()
        }),
        any_json().prop_map(|value| value.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..200),
        (0usize..100_000).prop_map(|n| json!({ "body": "a".repeat(n) }).to_string().into_bytes()),
    ]
}

/// A query string for the list and history endpoints.
fn any_query() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("-1".to_owned()),
        Just("0".to_owned()),
        Just("1e3".to_owned()),
        Just("99999999999999999999".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just(Uuid::new_v4().to_string()),
        Just("00000000-0000-1000-8000-000000000000".to_owned()),
        "[0-9a-zA-Z%._~+-]{0,30}",
    ];
    prop::collection::vec(
        (
            prop_oneof![
                Just("time"),
                Just("quantity"),
                Just("limit"),
                Just("cursor"),
                Just("x")
            ],
            value,
        ),
        0..4,
    )
    .prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

#[derive(Debug, Clone)]
enum Call {
    Post {
        uri: String,
        content_type: Option<&'static str>,
        body: Vec<u8>,
    },
    Get {
        uri: String,
    },
}

fn any_call(chat: Uuid, peer: Uuid) -> impl Strategy<Value = Call> {
    let content_type = prop_oneof![
        Just(Some("application/json")),
        Just(Some("text/plain")),
        Just(None),
    ];
    prop_oneof![
        (content_type.clone(), any_body(peer)).prop_map(|(content_type, body)| Call::Post {
            uri: "/api/v1/chats".into(),
            content_type,
            body,
        }),
        (any_id(chat), content_type, any_body(peer)).prop_map(|(id, content_type, body)| {
            Call::Post {
                uri: format!("/api/v1/chats/{id}/messages"),
                content_type,
                body,
            }
        }),
        any_query().prop_map(|query| Call::Get {
            uri: format!("/api/v1/chats?{query}"),
        }),
        (any_id(chat), any_query()).prop_map(|(id, query)| Call::Get {
            uri: format!("/api/v1/chats/{id}/messages?{query}"),
        }),
        (any_id(chat), any_query()).prop_map(|(id, query)| Call::Get {
            uri: format!("/chat/{id}?{query}"),
        }),
    ]
}

fn request(call: &Call, user: &TestUser) -> Option<Request<Body>> {
    let builder = Request::builder().header("authorization", format!("Bearer {}", user.token));
    match call {
        Call::Post {
            uri,
            content_type,
            body,
        } => {
            let mut builder = builder.method(Method::POST).uri(uri.as_str());
            if let Some(content_type) = content_type {
                builder = builder.header("content-type", *content_type);
            }
            builder.body(Body::from(body.clone())).ok()
        }
        // A generated query the URI grammar refuses never reaches a server.
        Call::Get { uri } => builder.uri(uri.as_str()).body(Body::empty()).ok(),
    }
}

async fn generated_bad_requests_never_get_a_5xx(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (ann, bob) = (app.user("ann").await, app.user("bob").await);
    let chat = app.chat(&ann, &bob).await;
    let statuses = run(&app.router, &ann, any_call(chat, bob.id));
    println!("{backend:?}: chat service, statuses of {CASES} generated requests: {statuses:?}");
}

/// Sign-up, login (JSON and form) and the user endpoints' bodies, ids and queries.
fn any_auth_call(user: Uuid) -> impl Strategy<Value = Call> {
    let content_type = prop_oneof![
        Just(Some("application/json")),
        Just(Some("application/x-www-form-urlencoded")),
        Just(Some("text/plain")),
        Just(None),
    ];
    let credentials = prop_oneof![
        (any_json(), any_json(), any::<bool>()).prop_map(|(username, password, extra)| {
            let mut object = json!({ "username": username, "password": password });
            if extra {
                object["admin"] = json!(true);
            }
            object.to_string().into_bytes()
        }),
        ("[a-z0-9_.-]{0,40}", ".{0,80}").prop_map(|(username, password)| {
            json!({ "username": username, "password": password })
                .to_string()
                .into_bytes()
        }),
        "[a-z=&%+.]{0,80}".prop_map(String::into_bytes),
        any_json().prop_map(|value| value.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..200),
        (0usize..100_000).prop_map(|n| json!({ "username": "x", "password": "p".repeat(n) })
            .to_string()
            .into_bytes()),
    ];
    prop_oneof![
        (
            prop_oneof![Just("/api/v1/users"), Just("/api/v1/login")],
            content_type,
            credentials
        )
            .prop_map(|(uri, content_type, body)| Call::Post {
                uri: uri.into(),
                content_type,
                body,
            }),
        any_query().prop_map(|query| Call::Get {
            uri: format!("/api/v1/users?{query}"),
        }),
        any_id(user).prop_map(|id| Call::Get {
            uri: format!("/api/v1/users/{id}"),
        }),
    ]
}

async fn generated_bad_requests_to_the_auth_service_never_get_a_5xx(backend: Backend) {
    let app = TestApp::new(backend).await;
    let auth = crate::security::auth_router(&app).await;
    let ann = app.user("ann").await;
    let statuses = run(&auth, &ann, any_auth_call(ann.id));
    println!("{backend:?}: auth service, statuses of {CASES} generated requests: {statuses:?}");
}

/// Sends [`CASES`] generated calls as `user` and checks every answer; returns the statuses seen.
fn run(
    router: &Router,
    user: &TestUser,
    calls: impl Strategy<Value = Call>,
) -> std::collections::BTreeMap<u16, u32> {
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    let result = runner.run(&calls, |call| {
        let Some(mut request) = request(&call, user) else {
            return Ok(());
        };
        let addr: std::net::SocketAddr = "127.0.0.1:50000".parse().expect("addr");
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(addr));
        // proptest is synchronous; the app runs on this test's multi-threaded runtime.
        let (status, body) = tokio::task::block_in_place(|| {
            handle.block_on(async {
                let response = router.clone().oneshot(request).await.expect("infallible");
                let status = response.status();
                let body = http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .expect("body")
                    .to_bytes();
                (status, body)
            })
        });
        *statuses
            .lock()
            .expect("lock")
            .entry(status.as_u16())
            .or_default() += 1;
        prop_assert!(
            !status.is_server_error(),
            "{call:?}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        if status.is_client_error() {
            let body: Value = serde_json::from_slice(&body)
                .map_err(|err| TestCaseError::fail(format!("{call:?}: not JSON: {err}")))?;
            prop_assert!(
                body["error"].is_string() && body["message"].is_string(),
                "{call:?}: {body}"
            );
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    // The generator reaches past the first checks: some requests are valid, and the refusals
    // come from several rules (413, 400, 404, 415, 422, ...).
    let statuses = statuses.into_inner().expect("lock");
    assert!(
        statuses.keys().any(|s| (200..300).contains(s)),
        "{statuses:?}"
    );
    let refusals = statuses.keys().filter(|s| (400..500).contains(*s)).count();
    assert!(refusals >= 4, "{statuses:?}");
    statuses
}
