//! The test harness: a fresh database per test (SQLite file or PostgreSQL schema) holding the
//! auth service's users, with the chats in that database or (the Cassandra backend) in a fresh
//! keyspace, tokens signed with the auth service's own signer, the chat app built on it (by
//! default in embedded mode with a fast window policy), and request helpers.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use confab_auth::keys::Signer;
use confab_auth::JwtConfig;
use confab_chat::{app, AppState, Backends, Config};
use confab_pipeline::WindowPolicy;
pub(crate) use confab_service_kit::test_support::get_request;
use confab_service_kit::test_support::{json_request, send, write_ed25519_pem};
use confab_token::{Claims, Secret};
use http_body_util::BodyExt;
use serde_json::Value;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;
use uuid::Uuid;

pub(crate) use confab_service_kit::test_support::{claims, sign_eddsa, TestResponse};

/// The Ed25519 seed the test auth service signs with.
pub(crate) const SIGNING_SEED: [u8; 32] = [7; 32];

/// Which stores a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// Everything in SQLite.
    Sqlite,
    /// Everything in PostgreSQL.
    Postgres,
    /// Users (and the SQL history) in PostgreSQL, chats and client message ids in Cassandra.
    #[cfg(feature = "cassandra")]
    Cassandra,
}

/// Runs each listed `async fn(Backend)` once per backend: SQLite, PostgreSQL and (with the
/// `cassandra` feature) the Cassandra chat store.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
            #[cfg(feature = "cassandra")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cassandra() {
                super::$name($crate::common::Backend::Cassandra).await
            }
        }
    )*};
}
pub(crate) use on_every_backend;

/// A database made for one test, with the auth service's `users` table; dropped with it.
pub(crate) struct TestDb {
    sql: confab_service_kit::test_support::TestDb,
    /// The keyspace of the Cassandra chat store, created when the app starts.
    #[cfg_attr(not(feature = "cassandra"), allow(dead_code))]
    pub(crate) keyspace: Option<String>,
}

/// The SQL database's `url` and `dir()`.
impl Deref for TestDb {
    type Target = confab_service_kit::test_support::TestDb;

    fn deref(&self) -> &Self::Target {
        &self.sql
    }
}

impl TestDb {
    pub(crate) async fn new(backend: Backend) -> Self {
        use confab_service_kit::test_support::TestDb as SqlDb;
        let db = match backend {
            Backend::Sqlite => TestDb {
                sql: SqlDb::sqlite("confab.db"),
                keyspace: None,
            },
            #[cfg(feature = "cassandra")]
            Backend::Cassandra => {
                let mut db = Box::pin(TestDb::new(Backend::Postgres)).await;
                db.keyspace = Some(unique_name("chat_store_test"));
                return db;
            }
            Backend::Postgres => TestDb {
                sql: SqlDb::postgres("chat_test").await,
                keyspace: None,
            },
        };
        // The auth service owns the users table; the chat service reads it.
        let users = db.auth_store().await;
        users.migrate().await.expect("auth migrations");
        users.close().await;
        db
    }

    /// The auth service's store on this database.
    pub(crate) async fn auth_store(&self) -> confab_auth::store::Store {
        confab_auth::store::Store::connect(&Secret::new(self.url.clone()), 2)
            .await
            .expect("connect the auth store")
    }
}

/// The Cassandra chat store's settings for `keyspace`, on `CASSANDRA_NODES`.
#[cfg(feature = "cassandra")]
pub(crate) fn cassandra_store_config(
    keyspace: &str,
) -> confab_connectors::cassandra::CassandraConfig {
    use confab_connectors::cassandra::{CassandraConfig, ConsistencyLevel};
    CassandraConfig {
        nodes: confab_connectors::env_or("CASSANDRA_NODES", "127.0.0.1:9042"),
        keyspace: keyspace.to_owned(),
        consistency: ConsistencyLevel::One,
        ..CassandraConfig::default()
    }
}

/// Drops a test keyspace (on a thread of its own: this runs in `Drop`, maybe during a panic).
#[cfg(feature = "cassandra")]
fn drop_keyspace(keyspace: String) {
    confab_service_kit::test_support::cleanup_on_own_thread(async move {
        let config = cassandra_store_config(&keyspace);
        if let Ok(session) = confab_connectors::cassandra::connect(&config).await {
            let _ = session
                .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[])
                .await;
        }
    });
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // The keyspace first; the SQL database drops itself after.
        #[cfg(feature = "cassandra")]
        if let Some(keyspace) = self.keyspace.take() {
            drop_keyspace(keyspace);
        }
    }
}

/// The auth service's signer with [`SIGNING_SEED`], as the test "auth service".
pub(crate) fn signer(dir: &std::path::Path) -> Signer {
    let path = dir.join("signing.pem");
    if !path.exists() {
        write_ed25519_pem(&path, &SIGNING_SEED);
    }
    Signer::from_config(&JwtConfig {
        ed25519_private_key_file: Some(path),
        ..JwtConfig::default()
    })
    .expect("signer")
}

/// A window policy that completes groups quickly, so tests see history and events fast.
pub(crate) fn fast_policy() -> WindowPolicy {
    WindowPolicy {
        inactivity_timeout_ms: 150,
        max_messages: 100,
        max_bytes: 256 * 1024,
        max_age_ms: 1_000,
        ..WindowPolicy::default()
    }
}

/// The configuration tests start from: the test database, the embedded mode with a fast
/// window, limits that do not interfere, a small pool.
pub(crate) fn test_config(db: &TestDb) -> Config {
    let mut config = Config {
        database_url: Secret::new(db.url.clone()),
        max_db_connections: 5,
        ..Config::default()
    };
    config.embedded.policy = fast_policy();
    config.embedded.runtime.lateness_ms = 0;
    config.embedded.runtime.poll_wait_ms = 10;
    config.embedded.runtime.commit_interval_ms = 50;
    config.limits.messages_per_second = 10_000.0;
    config.limits.message_burst = 10_000;
    config.limits.new_chats_per_hour = 10_000;
    #[cfg(feature = "cassandra")]
    if let Some(keyspace) = &db.keyspace {
        config.store = confab_chat::StoreConfig::Cassandra(cassandra_store_config(keyspace));
    }
    config
}

/// A user of the test: its id and a valid token.
#[derive(Debug, Clone)]
pub(crate) struct TestUser {
    pub(crate) id: Uuid,
    pub(crate) token: String,
}

/// The app on a fresh database.
pub(crate) struct TestApp {
    pub(crate) state: AppState,
    pub(crate) router: Router,
    pub(crate) signer: Signer,
    pub(crate) db: TestDb,
    /// The configuration the app was built from.
    pub(crate) config: Config,
}

impl TestApp {
    pub(crate) async fn new(backend: Backend) -> Self {
        Self::with(backend, |_, _| {}).await
    }

    /// The app with a changed configuration and, optionally, backends of the test's own.
    pub(crate) async fn with(
        backend: Backend,
        change: impl FnOnce(&mut Config, &mut Backends),
    ) -> Self {
        let db = TestDb::new(backend).await;
        let mut config = test_config(&db);
        let signer = signer(&db.dir());
        let mut backends = Backends {
            verifier: Some(Arc::new(signer.verifier().expect("verifier"))),
            ..Backends::default()
        };
        change(&mut config, &mut backends);
        let state = AppState::build_with(&config, backends)
            .await
            .expect("build the app");
        TestApp {
            router: app(state.clone()),
            state,
            signer,
            db,
            config,
        }
    }

    /// Sends a request through the router, as coming from a loopback client.
    pub(crate) async fn send(&self, request: Request<Body>) -> TestResponse {
        send(&self.router, request, "127.0.0.1:50000").await
    }

    pub(crate) async fn json(
        &self,
        method: Method,
        uri: &str,
        body: Value,
        token: Option<&str>,
    ) -> TestResponse {
        self.send(json_request(method, uri, &body, token)).await
    }

    pub(crate) async fn get(&self, uri: &str, token: Option<&str>) -> TestResponse {
        self.send(get_request(uri, token)).await
    }

    /// Signs `name` up (directly in the auth service's store) and returns it with a token.
    pub(crate) async fn user(&self, name: &str) -> TestUser {
        let store = self.db.auth_store().await;
        let user = store
            .insert_user(name, "$argon2id$not-a-real-hash")
            .await
            .expect("insert user");
        store.close().await;
        let token = self
            .signer
            .issue(user.id, &user.username, uuid::Uuid::now_v7())
            .expect("sign")
            .token;
        TestUser { id: user.id, token }
    }

    /// Starts the chat of `a` and `b` and returns its id.
    pub(crate) async fn chat(&self, a: &TestUser, b: &TestUser) -> Uuid {
        let response = self.start_chat(a, b.id).await;
        assert!(
            response.status == StatusCode::CREATED || response.status == StatusCode::OK,
            "{:?}",
            String::from_utf8_lossy(&response.body)
        );
        response.json()["chat_id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("chat_id")
    }

    pub(crate) async fn start_chat(&self, user: &TestUser, peer: Uuid) -> TestResponse {
        self.json(
            Method::POST,
            "/api/v1/chats",
            serde_json::json!({ "peer_id": peer }),
            Some(&user.token),
        )
        .await
    }

    /// Sends `body` as `user` to `chat`.
    pub(crate) async fn say(&self, user: &TestUser, chat: Uuid, body: Value) -> TestResponse {
        self.json(
            Method::POST,
            &format!("/api/v1/chats/{chat}/messages"),
            body,
            Some(&user.token),
        )
        .await
    }

    /// Sends a typing notice as `user` in `chat`.
    pub(crate) async fn typing(&self, user: &TestUser, chat: Uuid) -> TestResponse {
        self.json(
            Method::POST,
            &format!("/api/v1/chats/{chat}/typing"),
            Value::Null,
            Some(&user.token),
        )
        .await
    }

    /// Sends a text and asserts 201; returns the message.
    pub(crate) async fn say_ok(&self, user: &TestUser, chat: Uuid, text: &str) -> Value {
        self.say(user, chat, serde_json::json!({ "body": text }))
            .await
            .assert_status(StatusCode::CREATED)
    }

    /// Walks the chat's whole history with the given page route and quantity, newest first.
    pub(crate) async fn walk_history(
        &self,
        user: &TestUser,
        route: &str,
        quantity: Option<u32>,
    ) -> (Vec<Value>, usize) {
        let mut all = Vec::new();
        let mut pages = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut params = Vec::new();
            if let Some(time) = &cursor {
                params.push(format!("time={time}"));
            }
            if let Some(q) = quantity {
                params.push(format!("quantity={q}"));
            }
            let uri = if params.is_empty() {
                route.to_owned()
            } else {
                format!("{route}?{}", params.join("&"))
            };
            let page = self
                .get(&uri, Some(&user.token))
                .await
                .assert_status(StatusCode::OK);
            pages += 1;
            let messages = page["messages"].as_array().expect("messages").clone();
            let expected = quantity.unwrap_or(10) as usize;
            assert!(messages.len() <= expected, "page over quantity");
            all.extend(messages);
            match page.get("next_cursor").and_then(Value::as_str) {
                Some(next) => cursor = Some(next.to_owned()),
                None => return (all, pages),
            }
            assert!(pages < 1_000, "the walk does not end");
        }
    }

    /// Waits until the chat's latest page holds `count` messages (the pipeline wrote them).
    pub(crate) async fn wait_for_history(&self, user: &TestUser, chat: Uuid, count: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let page = self
                .get(
                    &format!("/api/v1/chats/{chat}/messages?quantity=100"),
                    Some(&user.token),
                )
                .await
                .assert_status(StatusCode::OK);
            let have = page["messages"].as_array().map_or(0, Vec::len);
            if have >= count {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "history holds {have} of {count} messages after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens the chat's events stream as `token` (or with `?access_token=` when `in_query`).
    pub(crate) async fn events(&self, chat: Uuid, token: &str, in_query: bool) -> EventStream {
        let uri = if in_query {
            format!("/api/v1/chats/{chat}/events?access_token={token}")
        } else {
            format!("/api/v1/chats/{chat}/events")
        };
        let request = get_request(&uri, (!in_query).then_some(token));
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        EventStream {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.into_body(),
            buffer: String::new(),
        }
    }
}

impl TestApp {
    /// Opens the person's events stream (`GET /api/v1/events`), resuming after `last` if given.
    pub(crate) async fn person_events(&self, token: &str, last: Option<&str>) -> EventStream {
        person_events(&self.router, token, last).await
    }

    /// Another instance of the service on the same database and configuration, changed by
    /// `change` (as a second process behind a load balancer would be).
    pub(crate) async fn sibling(&self, change: impl FnOnce(&mut Config)) -> (AppState, Router) {
        let mut config = self.config.clone();
        change(&mut config);
        let backends = Backends {
            verifier: Some(Arc::new(self.signer.verifier().expect("verifier"))),
            ..Backends::default()
        };
        let state = AppState::build_with(&config, backends)
            .await
            .expect("build the sibling");
        (state.clone(), app(state))
    }
}

/// Opens the person's events stream of the service `router`, resuming after `last` if given.
pub(crate) async fn person_events(router: &Router, token: &str, last: Option<&str>) -> EventStream {
    let mut request = get_request("/api/v1/events", Some(token));
    if let Some(last) = last {
        request
            .headers_mut()
            .insert("last-event-id", last.parse().expect("header value"));
    }
    let response = router.clone().oneshot(request).await.expect("infallible");
    EventStream {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.into_body(),
        buffer: String::new(),
    }
}

/// An open server-sent-events response.
pub(crate) struct EventStream {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    body: Body,
    buffer: String,
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub(crate) struct SseEvent {
    pub(crate) event: String,
    pub(crate) id: Option<String>,
    pub(crate) data: Value,
}

impl EventStream {
    /// The next event (comments skipped), waiting at most `timeout`.
    pub(crate) async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: "message".into(),
                    id: None,
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event.event = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("id:") {
                        event.id = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                event.data = serde_json::from_str(&data).expect("event data is JSON");
                return Some(event);
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame()).await;
            match frame {
                Ok(Some(Ok(frame))) => {
                    if let Ok(bytes) = frame.into_data() {
                        self.buffer.push_str(&String::from_utf8_lossy(&bytes));
                    }
                }
                Ok(Some(Err(err))) => panic!("event stream failed: {err}"),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Waits for the next `group` event, skipping `ready` and anything else.
    pub(crate) async fn next_group(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.next(left).await?;
            if event.event == "group" {
                return Some(event);
            }
        }
    }
}

/// Signs claims with an Ed25519 seed, under that key's `kid`.
pub(crate) fn sign(seed: &[u8; 32], claims: &Claims) -> String {
    let kid = confab_token::ed25519_public_jwk_from_seed(seed)
        .expect("jwk")
        .common
        .key_id;
    sign_eddsa(seed, kid.as_deref(), claims)
}

/// A short name unique to this run, usable as a topic or keyspace name.
#[allow(dead_code)]
pub(crate) fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::new_v4().simple())
}
