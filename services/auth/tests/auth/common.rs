//! The test harness: a fresh database per test (SQLite file or PostgreSQL schema), the app built
//! on it, and request helpers.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use confab_auth::{app, AppState, Config};
use confab_token::jsonwebtoken::{self, EncodingKey, Header};
use confab_token::{Claims, Secret};
use http_body_util::BodyExt;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tower::ServiceExt;
use uuid::Uuid;

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

/// A database made for one test; dropped with it.
pub(crate) struct TestDb {
    pub(crate) url: String,
    dir: tempfile::TempDir,
    pg_schema: Option<String>,
}

fn postgres_admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://confab:confab@127.0.0.1:5432/confab".to_owned())
}

impl TestDb {
    pub(crate) async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("auth.db").display());
                TestDb {
                    url,
                    dir,
                    pg_schema: None,
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let schema = format!("auth_test_{}", Uuid::new_v4().simple());
                let pool = connect_admin(&admin).await;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&pool)
                    .await
                    .expect("create the test schema");
                pool.close().await;
                let separator = if admin.contains('?') { '&' } else { '?' };
                let url = format!("{admin}{separator}options[search_path]={schema}");
                TestDb {
                    url,
                    dir,
                    pg_schema: Some(schema),
                }
            }
        }
    }

    /// A scratch directory that lives as long as the database.
    pub(crate) fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

async fn connect_admin(url: &str) -> sqlx::PgPool {
    let attempt = tokio::time::timeout(
        Duration::from_secs(10),
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url),
    )
    .await;
    match attempt {
        Ok(Ok(pool)) => pool,
        Ok(Err(err)) => panic!(
            "cannot reach PostgreSQL at {url} ({err}): start it with `scripts/infra up postgres` \
             and export DATABASE_URL as printed by `scripts/infra env`"
        ),
        Err(_) => panic!(
            "PostgreSQL at {url} did not answer within 10 s: start it with \
             `scripts/infra up postgres`"
        ),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(schema) = self.pg_schema.take() else {
            return;
        };
        // Drop runs inside the test's runtime (or during a panic): clean up on a thread of
        // our own so a failed test leaves no schema behind either.
        let admin = postgres_admin_url();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS {schema} CASCADE"
                    )))
                    .execute(&pool)
                    .await;
                    pool.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A PEM file with the [`SIGNING_SEED`] key.
pub(crate) fn write_signing_key(dir: &std::path::Path) -> PathBuf {
    use base64::Engine;
    let path = dir.join("signing.pem");
    let der = confab_token::ed25519_pkcs8_from_seed(&SIGNING_SEED);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    );
    std::fs::write(&path, pem).expect("write key");
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

/// A response, body collected.
#[derive(Debug)]
pub(crate) struct TestResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl TestResponse {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "body is not JSON ({err}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts the status and the `{error, message}` shape with this code.
    #[track_caller]
    pub(crate) fn assert_error(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "errors are JSON"
        );
        let body = self.json();
        let object = body.as_object().expect("error body is an object");
        assert_eq!(object.len(), 2, "exactly error and message: {body}");
        assert_eq!(body["error"], code, "{body}");
        let message = body["message"].as_str().expect("message is a string");
        assert!(!message.is_empty());
        message.to_owned()
    }
}

impl TestApp {
    pub(crate) async fn new(backend: Backend) -> Self {
        Self::with_config(backend, |_| {}).await
    }

    pub(crate) async fn with_config(backend: Backend, change: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new(backend).await;
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
    pub(crate) async fn send(&self, mut request: Request<Body>) -> TestResponse {
        if request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_none()
        {
            let addr: SocketAddr = CLIENT.parse().expect("addr");
            request.extensions_mut().insert(ConnectInfo(addr));
        }
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        TestResponse {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn json(
        &self,
        method: Method,
        uri: &str,
        body: Value,
        token: Option<&str>,
    ) -> TestResponse {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        self.send(request.body(Body::from(body.to_string())).expect("request"))
            .await
    }

    pub(crate) async fn get(&self, uri: &str, token: Option<&str>) -> TestResponse {
        let mut request = Request::builder().uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        self.send(request.body(Body::empty()).expect("request"))
            .await
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

/// Claims like the service issues, valid from `nbf` to `exp` (seconds from now).
pub(crate) fn claims(user_id: Uuid, nbf_in: i64, exp_in: i64) -> Claims {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    Claims {
        sub: user_id.to_string(),
        user_id,
        username: "someone".into(),
        iss: confab_token::DEFAULT_ISSUER.into(),
        aud: confab_token::DEFAULT_AUDIENCE.into(),
        iat: (now.min(now + nbf_in)) as u64,
        nbf: (now + nbf_in) as u64,
        exp: (now + exp_in) as u64,
        jti: Uuid::new_v4(),
    }
}

/// Signs claims with an Ed25519 seed under `kid`.
pub(crate) fn sign_eddsa(seed: &[u8; 32], kid: Option<&str>, claims: &Claims) -> String {
    // Before any direct use of jsonwebtoken: see confab_token::install_crypto_provider.
    confab_token::install_crypto_provider();
    let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = kid.map(str::to_owned);
    let key = EncodingKey::from_ed_der(&confab_token::ed25519_pkcs8_from_seed(seed));
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

/// Signs claims with HS256 under `kid`.
pub(crate) fn sign_hs256(secret: &[u8], kid: Option<&str>, claims: &Claims) -> String {
    // Before any direct use of jsonwebtoken: see confab_token::install_crypto_provider.
    confab_token::install_crypto_provider();
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("sign")
}
