//! A chat service running apart from the auth service learns of revoked sessions from the auth
//! service's list (`[auth] revocations_url`): after a logout there, the token is refused here
//! and its open stream ends.

use crate::common::{get_request, person_events, signer, test_config, Backend, TestDb};
use axum::http::StatusCode;
use confab_chat::AppState;
use serde_json::{json, Value};
use std::time::Duration;
use tower::ServiceExt;

/// One JSON exchange with the auth service over TCP.
async fn auth_call(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client.post(format!("http://{addr}{path}")).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the auth service answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_at_the_auth_service_ends_streams_at_a_chat_service_elsewhere() {
    let db = TestDb::new(Backend::Sqlite).await;
    let _signing_key = signer(&db.dir());
    // The auth service, on its own port, signing with the key the chat service trusts.
    let auth_config = confab_auth::Config {
        database_url: confab_token::Secret::new(db.url.clone()),
        jwt: confab_auth::JwtConfig {
            ed25519_private_key_file: Some(db.dir().join("signing.pem")),
            ..confab_auth::JwtConfig::default()
        },
        ..confab_auth::Config::default()
    };
    let auth = confab_auth::AppState::build(&auth_config)
        .await
        .expect("auth");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let auth_addr = listener.local_addr().expect("addr");
    let (stop_auth, auth_stopped) = tokio::sync::oneshot::channel::<()>();
    let auth_server = tokio::spawn(confab_auth::serve_on(listener, auth, async {
        let _ = auth_stopped.await;
    }));

    let jwks = db.dir().join("jwks.json");
    let set = confab_token::jsonwebtoken::jwk::JwkSet {
        keys: vec![
            confab_token::ed25519_public_jwk_from_seed(&crate::common::SIGNING_SEED).expect("jwk"),
        ],
    };
    std::fs::write(&jwks, serde_json::to_vec(&set).expect("json")).expect("write jwks");
    let mut config = test_config(&db);
    config.auth.jwks_file = Some(jwks);
    config.auth.revocations_url = Some(format!("http://{auth_addr}/api/v1/auth/revocations"));
    let chat = AppState::build(&config).await.expect("chat");
    let router = confab_chat::app(chat.clone());

    let credentials = json!({"username": "zoe", "password": "correct horse battery"});
    let (status, _) = auth_call(auth_addr, "/api/v1/users", None, credentials.clone()).await;
    assert_eq!(status, 201);
    let (status, pair) = auth_call(auth_addr, "/api/v1/login", None, credentials).await;
    assert_eq!(status, 200, "{pair}");
    let token = pair["access_token"].as_str().expect("token").to_owned();

    let mut stream = person_events(&router, &token, None).await;
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(
        stream
            .next(Duration::from_secs(5))
            .await
            .expect("ready")
            .event,
        "ready"
    );
    let (status, _) = auth_call(auth_addr, "/api/v1/auth/logout", Some(&token), json!({})).await;
    assert_eq!(status, 204);

    // Polled every second: the stream ends with `revoked` well within three.
    let revoked = stream.next(Duration::from_secs(3)).await.expect("an event");
    assert_eq!(revoked.event, "revoked");
    assert!(
        stream.next(Duration::from_secs(1)).await.is_none(),
        "and ends"
    );
    let refused = router
        .clone()
        .oneshot(get_request("/api/v1/chats", Some(&token)))
        .await
        .expect("infallible");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let _ = stop_auth.send(());
    auth_server
        .await
        .expect("join")
        .expect("the auth service stops cleanly");
    chat.shutdown().await;
}
