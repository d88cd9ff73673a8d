//! `POST /api/v1/auth/firebase-token`: signed-in callers get a token for their own uid; without
//! a token it is 401, and a service without `[firebase]` says so with 503, never a panic.

use crate::common::{on_both_backends, Backend, TestApp};
use axum::http::{Method, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use confab_auth::FirebaseConfig;

const PATH: &str = "/api/v1/auth/firebase-token";

on_both_backends!(
    the_emulator_token_names_the_callers_user_id,
    an_unconfigured_service_answers_503_and_anonymous_callers_401,
);

async fn the_emulator_token_names_the_callers_user_id(backend: Backend) {
    let app = TestApp::with_config(backend, |config| {
        config.firebase = Some(FirebaseConfig::Emulator {
            project_id: "confab-test".into(),
            expiry_secs: 900,
        });
    })
    .await;
    let token = app.token("fiona").await;
    let id = app.get("/api/v1/users?limit=1", Some(&token)).await.json()["users"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let response = app
        .json(Method::POST, PATH, serde_json::json!({}), Some(&token))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.json());
    let body = response.json();
    assert_eq!(body["emulator"], true);
    assert_eq!(body["uid"], id.as_str());
    assert_eq!(body["project_id"], "confab-test");
    assert_eq!(body["expires_in"], 900);
    let payload = body["token"]
        .as_str()
        .and_then(|t| t.split('.').nth(1))
        .expect("a JWT");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json");
    assert_eq!(claims["sub"], id.as_str(), "the uid firestore.rules checks");

    // A body is not needed: the token alone says who asks.
    let bare = app
        .send(
            axum::http::Request::post(PATH)
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(bare.status, StatusCode::OK);
}

async fn an_unconfigured_service_answers_503_and_anonymous_callers_401(backend: Backend) {
    let app = TestApp::new(backend).await;
    let token = app.token("gus").await;
    let response = app
        .json(Method::POST, PATH, serde_json::json!({}), Some(&token))
        .await;
    let message = response.assert_error(StatusCode::SERVICE_UNAVAILABLE, "firebase_not_configured");
    assert!(message.contains("[firebase]"), "{message}");
    assert!(
        response.headers.get("retry-after").is_none(),
        "retrying cannot help until it is configured"
    );

    let anonymous = app
        .json(Method::POST, PATH, serde_json::json!({}), None)
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json()["error"], "missing_token");
    let forged = app
        .json(
            Method::POST,
            PATH,
            serde_json::json!({}),
            Some("not.a.token"),
        )
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get(PATH, Some(&token)).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}
