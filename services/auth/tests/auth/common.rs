//! The test harness: a fresh database per test (SQLite file or PostgreSQL schema), the app built
//! on it, and request helpers.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use confab_auth::{app, AppState, Config};
use confab_service_kit::test_support::{get_request, json_request, send, write_ed25519_pem};
use confab_token::jsonwebtoken::{self, EncodingKey, Header};
use confab_token::{Claims, Secret};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use uuid::Uuid;

pub(crate) use confab_service_kit::test_support::{claims, sign_eddsa, TestDb, TestResponse};

/// A password that satisfies the default rules.
pub(crate) const PASSWORD: &str = "correct horse battery staple";
/// The Ed25519 seed the test service signs with, so tests can forge tokens with the real key.
pub(crate) const SIGNING_SEED: [u8; 32] = [42; 32];
/// The address oneshot requests come from unless a test says otherwise.
pub(crate) const CLIENT: &str = "192.0.2.10:50000";

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed `async fn(Backend)` once on SQLite and once on PostgreSQL.
macro_rules! on_both_backends {
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
        }
    )*};
}
pub(crate) use on_both_backends;

/// A fresh database of this backend for one test; dropped with it.
pub(crate) async fn test_db(backend: Backend) -> TestDb {
    match backend {
        Backend::Sqlite => TestDb::sqlite("auth.db"),
        Backend::Postgres => TestDb::postgres("auth_test").await,
    }
}

/// A PEM file with the [`SIGNING_SEED`] key.
pub(crate) fn write_signing_key(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("signing.pem");
    write_ed25519_pem(&path, &SIGNING_SEED);
    path
}

/// The configuration tests start from: the test database, a known signing key, a sign-up limit
/// high enough not to interfere, a small pool.
pub(crate) fn test_config(db: &TestDb) -> Config {
    let mut config = Config {
        database_url: Secret::new(db.url.clone()),
        max_db_connections: 5,
        ..Config::default()
    };
    config.jwt.ed25519_private_key_file = Some(write_signing_key(&db.dir()));
    config.throttle.signups_per_address = 1_000;
    config
}

/// The app on a fresh database.
pub(crate) struct TestApp {
    pub(crate) state: AppState,
    pub(crate) router: Router,
    /// Keeps the database alive as long as the app.
    _db: TestDb,
}

impl TestApp {
    pub(crate) async fn new(backend: Backend) -> Self {
        Self::with_config(backend, |_| {}).await
    }

    pub(crate) async fn with_config(backend: Backend, change: impl FnOnce(&mut Config)) -> Self {
        let db = test_db(backend).await;
        let mut config = test_config(&db);
        change(&mut config);
        let state = AppState::build(&config).await.expect("build the app");
        Self::from_state(state, db)
    }

    /// Ends the app but keeps its database, e.g. to start the service again on it.
    pub(crate) fn into_db(self) -> TestDb {
        self._db
    }

    pub(crate) fn from_state(state: AppState, db: TestDb) -> Self {
        TestApp {
            router: app(state.clone()),
            state,
            _db: db,
        }
    }

    /// Sends a request as coming from [`CLIENT`] unless it carries its own `ConnectInfo`.
    pub(crate) async fn send(&self, request: Request<Body>) -> TestResponse {
        send(&self.router, request, CLIENT).await
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

    pub(crate) async fn signup(&self, username: &str, password: &str) -> TestResponse {
        self.json(
            Method::POST,
            "/api/v1/users",
            serde_json::json!({"username": username, "password": password}),
            None,
        )
        .await
    }

    pub(crate) async fn login(&self, username: &str, password: &str) -> TestResponse {
        self.json(
            Method::POST,
            "/api/v1/login",
            serde_json::json!({"username": username, "password": password}),
            None,
        )
        .await
    }

    pub(crate) async fn login_from(
        &self,
        client: &str,
        username: &str,
        password: &str,
    ) -> TestResponse {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/login")
            .header("content-type", "application/json")
            .body(Body::from(
                serde_json::json!({"username": username, "password": password}).to_string(),
            ))
            .expect("request");
        let addr: SocketAddr = client.parse().expect("addr");
        request.extensions_mut().insert(ConnectInfo(addr));
        self.send(request).await
    }

    /// Signs `username` up with [`PASSWORD`] and returns its id.
    pub(crate) async fn create_user(&self, username: &str) -> Uuid {
        let response = self.signup(username, PASSWORD).await;
        assert_eq!(
            response.status,
            StatusCode::CREATED,
            "{:?}",
            response.json()
        );
        response.json()["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("id")
    }

    /// Signs up and logs in; returns the access token.
    pub(crate) async fn token(&self, username: &str) -> String {
        self.create_user(username).await;
        let response = self.login(username, PASSWORD).await;
        assert_eq!(response.status, StatusCode::OK);
        response.json()["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }
}

/// The `kid` the test service signs with.
pub(crate) fn signing_kid() -> String {
    confab_token::ed25519_public_jwk_from_seed(&SIGNING_SEED)
        .expect("jwk")
        .common
        .key_id
        .expect("kid")
}

/// Signs claims with HS256 under `kid`.
pub(crate) fn sign_hs256(secret: &[u8], kid: Option<&str>, claims: &Claims) -> String {
    // Before any direct use of jsonwebtoken: see confab_token::install_crypto_provider.
    confab_token::install_crypto_provider();
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("sign")
}
