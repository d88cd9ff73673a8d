//! Sessions: refresh-token rotation with reuse detection, logout, password change, revocations
//! that survive a restart, and logins sent by other sites' pages.

use crate::common::{on_both_backends, test_config, Backend, TestApp, PASSWORD};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use confab_auth::AppState;
use serde_json::{json, Value};

on_both_backends!(
    a_refresh_token_works_once_and_its_reuse_revokes_the_whole_session,
    logout_revokes_its_session_and_no_other,
    a_password_change_revokes_every_session_and_starts_a_new_one,
    revoked_sessions_stay_revoked_across_a_restart,
    a_login_sent_by_another_sites_page_is_refused,
);

async fn log_in(app: &TestApp, username: &str) -> Value {
    let response = app.login(username, PASSWORD).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.json());
    response.json()
}

async fn refresh(app: &TestApp, refresh_token: &Value) -> crate::common::TestResponse {
    app.json(
        Method::POST,
        "/api/v1/auth/refresh",
        json!({ "refresh_token": refresh_token }),
        None,
    )
    .await
}

fn access(pair: &Value) -> &str {
    pair["access_token"].as_str().expect("access token")
}

/// Whether the API accepts the access token.
async fn accepted(app: &TestApp, pair: &Value) -> bool {
    let status = app.get("/api/v1/users", Some(access(pair))).await.status;
    assert!(
        status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
        "{status}"
    );
    status == StatusCode::OK
}

async fn a_refresh_token_works_once_and_its_reuse_revokes_the_whole_session(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create_user("rosa").await;
    let first = log_in(&app, "rosa").await;
    let rotated = refresh(&app, &first["refresh_token"]).await;
    assert_eq!(rotated.status, StatusCode::OK);
    assert_eq!(rotated.headers["cache-control"], "no-store");
    let second = rotated.json();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert!(accepted(&app, &second).await);

    // The first refresh token comes back: somebody holds a copy. The session is revoked.
    refresh(&app, &first["refresh_token"])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh_token_reused");
    refresh(&app, &second["refresh_token"])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    assert!(!accepted(&app, &second).await, "its access tokens too");
    assert!(!accepted(&app, &first).await);
    refresh(&app, &json!("not a token"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    // Logging in again works.
    assert!(accepted(&app, &log_in(&app, "rosa").await).await);
}

async fn logout_revokes_its_session_and_no_other(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create_user("sami").await;
    let phone = log_in(&app, "sami").await;
    let laptop = log_in(&app, "sami").await;
    let out = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/api/v1/auth/logout")
                .header("authorization", format!("Bearer {}", access(&phone)))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(
        !accepted(&app, &phone).await,
        "the logged-out token is refused"
    );
    refresh(&app, &phone["refresh_token"])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    assert!(accepted(&app, &laptop).await, "the other session goes on");
    let listed = app.get("/api/v1/auth/revocations", None).await.json();
    let sessions: Vec<&Value> = listed["revoked"]
        .as_array()
        .expect("list")
        .iter()
        .map(|r| &r["session"])
        .collect();
    assert_eq!(sessions.len(), 1, "{listed}");
}

async fn a_password_change_revokes_every_session_and_starts_a_new_one(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create_user("tara").await;
    let phone = log_in(&app, "tara").await;
    let laptop = log_in(&app, "tara").await;
    let change = |current: &str| json!({"current_password": current, "new_password": "a brand new passphrase"});
    app.json(
        Method::POST,
        "/api/v1/users/me/password",
        change("not the password"),
        Some(access(&phone)),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let changed = app
        .json(
            Method::POST,
            "/api/v1/users/me/password",
            change(PASSWORD),
            Some(access(&phone)),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.json());
    assert_eq!(changed.headers["cache-control"], "no-store");
    let fresh = changed.json();
    assert!(!accepted(&app, &phone).await);
    assert!(!accepted(&app, &laptop).await);
    refresh(&app, &laptop["refresh_token"])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    assert!(accepted(&app, &fresh).await, "the new session works");
    app.login("tara", PASSWORD)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(
        app.login("tara", "a brand new passphrase").await.status,
        StatusCode::OK
    );
}

async fn revoked_sessions_stay_revoked_across_a_restart(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create_user("uma").await;
    let pair = log_in(&app, "uma").await;
    let out = app
        .json(
            Method::POST,
            "/api/v1/auth/logout",
            json!({}),
            Some(access(&pair)),
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let db = app.into_db();
    let state = AppState::build(&test_config(&db))
        .await
        .expect("restart on the same database");
    let again = TestApp::from_state(state, db);
    assert!(
        !accepted(&again, &pair).await,
        "the revocation is read back from the database"
    );
}

async fn a_login_sent_by_another_sites_page_is_refused(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create_user("vera").await;
    let form = |headers: &[(&str, &str)]| {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/login")
            .header("host", "chat.example")
            .header("content-type", "application/x-www-form-urlencoded");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .body(Body::from(format!(
                "grant_type=password&username=vera&password={}",
                PASSWORD.replace(' ', "+")
            )))
            .expect("request")
    };
    for cross in [
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")][..],
        &[("origin", "https://evil.example")][..],
        &[("origin", "null")][..],
    ] {
        app.send(form(cross))
            .await
            .assert_error(StatusCode::FORBIDDEN, "cross_site");
    }
    for allowed in [
        &[][..],
        &[
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://chat.example"),
        ][..],
        &[("origin", "https://chat.example")][..],
    ] {
        assert_eq!(
            app.send(form(allowed)).await.status,
            StatusCode::OK,
            "API clients and our own pages log in: {allowed:?}"
        );
    }
}
