//! Helpers for the services' integration tests (feature `test-support`; a dev-dependency only).
//!
//! - [`TestDb`]: a database made for one test, SQLite in a temporary directory or a fresh
//!   PostgreSQL schema on `DATABASE_URL` (loopback default), dropped with the test, also when it
//!   panics.
//! - [`send`], [`json_request`], [`get_request`]: drive a router with `oneshot`, as a client at
//!   a given address, and collect the answer into a [`TestResponse`] with assertions on the
//!   services' JSON error shape.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tower::ServiceExt;
use uuid::Uuid;

/// The PostgreSQL server tests make their schemas on: `DATABASE_URL`, or the one
/// `scripts/infra up postgres` starts.
pub fn postgres_admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://confab:confab@127.0.0.1:5432/confab".to_owned())
}

/// A database made for one test; dropped with it.
#[derive(Debug)]
pub struct TestDb {
    /// The URL the service under test connects to.
    pub url: String,
    dir: tempfile::TempDir,
    pg_schema: Option<String>,
}

impl TestDb {
    /// A SQLite database in the file `file_name` of a fresh temporary directory.
    pub fn sqlite(file_name: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join(file_name).display());
        TestDb {
            url,
            dir,
            pg_schema: None,
        }
    }

    /// A fresh PostgreSQL schema named `<schema_prefix>_<uuid>`, which the URL selects with
    /// `options[search_path]`.
    pub async fn postgres(schema_prefix: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let admin = postgres_admin_url();
        let schema = format!("{schema_prefix}_{}", Uuid::new_v4().simple());
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

    /// A scratch directory that lives as long as the database.
    pub fn dir(&self) -> PathBuf {
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
        let admin = postgres_admin_url();
        cleanup_on_own_thread(async move {
            if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&pool)
                .await;
                pool.close().await;
            }
        });
    }
}

/// Runs a test's async clean-up to the end on a thread and runtime of its own, and waits for
/// it. For `Drop`, which runs inside the test's runtime (where it cannot block on a future) or
/// during a panic: a failed test leaves nothing behind either.
pub fn cleanup_on_own_thread(cleanup: impl std::future::Future<Output = ()> + Send + 'static) {
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(cleanup);
    });
    let _ = thread.join();
}

/// A response, body collected.
#[derive(Debug)]
pub struct TestResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
}

impl TestResponse {
    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "body is not JSON ({err}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts the status and the `{error, message}` shape with this code; returns the message.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str) -> String {
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

    /// Asserts the status; returns the body as JSON.
    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) -> Value {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()
    }

    /// The `Retry-After` header in seconds; panics without one.
    pub fn retry_after(&self) -> u64 {
        self.headers["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds")
    }
}

/// Sends a request through `router` as coming from `client` (unless it carries its own
/// `ConnectInfo`), and collects the response.
pub async fn send(router: &Router, mut request: Request<Body>, client: &str) -> TestResponse {
    if request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_none()
    {
        let addr: SocketAddr = client.parse().expect("addr");
        request.extensions_mut().insert(ConnectInfo(addr));
    }
    let response = router
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

/// A request with a JSON body and, optionally, a Bearer token.
pub fn json_request(method: Method, uri: &str, body: &Value, token: Option<&str>) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(Body::from(body.to_string())).expect("request")
}

/// A GET request with, optionally, a Bearer token.
pub fn get_request(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut request = Request::builder().uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(Body::empty()).expect("request")
}

/// Claims like the auth service issues, valid from `nbf_in` to `exp_in` seconds from now.
pub fn claims(user_id: Uuid, nbf_in: i64, exp_in: i64) -> confab_token::Claims {
    let now = confab_token::jsonwebtoken::get_current_timestamp() as i64;
    confab_token::Claims {
        sub: user_id.to_string(),
        user_id,
        username: "someone".into(),
        iss: confab_token::DEFAULT_ISSUER.into(),
        aud: confab_token::DEFAULT_AUDIENCE.into(),
        iat: (now.min(now + nbf_in)) as u64,
        nbf: (now + nbf_in) as u64,
        exp: (now + exp_in) as u64,
        jti: Uuid::new_v4(),
        sid: None,
    }
}

/// Signs claims with an Ed25519 seed under `kid`.
pub fn sign_eddsa(seed: &[u8; 32], kid: Option<&str>, claims: &confab_token::Claims) -> String {
    use confab_token::jsonwebtoken::{self, EncodingKey, Header};
    // Before any direct use of jsonwebtoken: see confab_token::install_crypto_provider.
    confab_token::install_crypto_provider();
    let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = kid.map(str::to_owned);
    let key = EncodingKey::from_ed_der(&confab_token::ed25519_pkcs8_from_seed(seed));
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

/// Writes the Ed25519 key of `seed` as a PKCS#8 PEM file at `path` (what the auth service's
/// `ed25519_private_key_file` reads).
pub fn write_ed25519_pem(path: &std::path::Path, seed: &[u8; 32]) {
    use base64::Engine;
    let der = confab_token::ed25519_pkcs8_from_seed(seed);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    );
    std::fs::write(path, pem).expect("write key");
}
