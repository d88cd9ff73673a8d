//! Sign-up modes (`[signup] mode`), invite codes, and the common-password check (issue 24).

use crate::common::{on_both_backends, Backend, TestApp, PASSWORD};
use axum::http::{Method, StatusCode};
use confab_auth::{FirstUser, SignupMode};
use confab_token::Secret;
use serde_json::json;

on_both_backends!(
    closed_signup_refuses_with_a_clear_error_and_still_seeds_the_first_user,
    invite_signup_works_with_a_valid_code_and_refuses_reuse,
    invites_are_capped_per_user_and_expire,
    invites_are_refused_when_the_mode_is_not_invite,
    a_common_or_trivial_password_is_refused_at_sign_up,
    a_common_password_is_refused_at_password_change,
);

async fn signup_with(
    app: &TestApp,
    username: &str,
    invite: Option<&str>,
) -> crate::common::TestResponse {
    let mut body = json!({ "username": username, "password": PASSWORD });
    if let Some(code) = invite {
        body["invite"] = json!(code);
    }
    app.json(Method::POST, "/api/v1/users", body, None).await
}

async fn new_invite(app: &TestApp, token: &str) -> crate::common::TestResponse {
    app.json(Method::POST, "/api/v1/invites", json!({}), Some(token))
        .await
}

fn seeded(config: &mut confab_auth::Config, mode: SignupMode) {
    config.signup.mode = mode;
    config.first_user = Some(FirstUser {
        username: "admin".into(),
        password: Secret::new(PASSWORD),
    });
}

async fn admin_token(app: &TestApp) -> String {
    let response = app.login("admin", PASSWORD).await;
    response.assert_status(StatusCode::OK)["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

async fn closed_signup_refuses_with_a_clear_error_and_still_seeds_the_first_user(backend: Backend) {
    let app = TestApp::with_config(backend, |c| seeded(c, SignupMode::Closed)).await;
    let message = app
        .signup("newcomer", PASSWORD)
        .await
        .assert_error(StatusCode::FORBIDDEN, "signup_closed");
    assert!(message.contains("closed"), "{message}");
    // An invite does not open a closed server.
    signup_with(&app, "newcomer", Some("anything"))
        .await
        .assert_error(StatusCode::FORBIDDEN, "signup_closed");
    // The seeded first user exists and logs in.
    admin_token(&app).await;
}

async fn invite_signup_works_with_a_valid_code_and_refuses_reuse(backend: Backend) {
    let app = TestApp::with_config(backend, |c| seeded(c, SignupMode::Invite)).await;
    let token = admin_token(&app).await;
    signup_with(&app, "nocode", None)
        .await
        .assert_error(StatusCode::FORBIDDEN, "invite_required");
    signup_with(&app, "nocode", Some("made-up-code"))
        .await
        .assert_error(StatusCode::FORBIDDEN, "invalid_invite");

    let invite = new_invite(&app, &token)
        .await
        .assert_status(StatusCode::CREATED);
    let code = invite["code"].as_str().expect("code").to_owned();
    assert_eq!(code.len(), 43, "256 bits, base64url: {code}");
    let expires_at: chrono::DateTime<chrono::Utc> = invite["expires_at"]
        .as_str()
        .expect("expires_at")
        .parse()
        .expect("RFC 3339");
    assert!(expires_at > chrono::Utc::now() + chrono::Duration::days(6));

    // A failed sign-up (a weak password) leaves the code unused.
    app.json(
        Method::POST,
        "/api/v1/users",
        json!({ "username": "guest", "password": "aaaaaaaaaaaa", "invite": code }),
        None,
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_password");
    signup_with(&app, "guest", Some(&code))
        .await
        .assert_status(StatusCode::CREATED);
    app.login("guest", PASSWORD)
        .await
        .assert_status(StatusCode::OK);
    // Used once, never again.
    signup_with(&app, "second-guest", Some(&code))
        .await
        .assert_error(StatusCode::FORBIDDEN, "invalid_invite");
    // Only the hash is stored.
    let stored: Vec<Vec<u8>> = match app.state.store() {
        confab_auth::store::Store::Postgres(pool) => {
            sqlx::query_scalar("SELECT code_hash FROM invites")
                .fetch_all(pool)
                .await
        }
        confab_auth::store::Store::Sqlite(pool) => {
            sqlx::query_scalar("SELECT code_hash FROM invites")
                .fetch_all(pool)
                .await
        }
    }
    .expect("read invites");
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], code.as_bytes());
    assert_eq!(stored[0].len(), 32);
}

async fn invites_are_capped_per_user_and_expire(backend: Backend) {
    let app = TestApp::with_config(backend, |c| {
        seeded(c, SignupMode::Invite);
        c.signup.max_unused_invites_per_user = 2;
        c.signup.invite_expiry_secs = 1;
    })
    .await;
    let token = admin_token(&app).await;
    let first = new_invite(&app, &token)
        .await
        .assert_status(StatusCode::CREATED);
    new_invite(&app, &token)
        .await
        .assert_status(StatusCode::CREATED);
    new_invite(&app, &token)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "too_many_invites");
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    // Expired: the code no longer works, and no longer counts against the cap.
    signup_with(&app, "late", first["code"].as_str())
        .await
        .assert_error(StatusCode::FORBIDDEN, "invalid_invite");
    new_invite(&app, &token)
        .await
        .assert_status(StatusCode::CREATED);
    app.json(Method::POST, "/api/v1/invites", json!({}), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing_token");
}

async fn invites_are_refused_when_the_mode_is_not_invite(backend: Backend) {
    let app = TestApp::new(backend).await;
    let token = app.token("opener").await;
    new_invite(&app, &token)
        .await
        .assert_error(StatusCode::FORBIDDEN, "invites_disabled");
    // Open sign-up ignores an invite field.
    signup_with(&app, "walkin", Some("whatever"))
        .await
        .assert_status(StatusCode::CREATED);
}

async fn a_common_or_trivial_password_is_refused_at_sign_up(backend: Backend) {
    let app = TestApp::new(backend).await;
    for weak in [
        "aaaaaaaaaaaa",
        "password1234",
        "qwertyuiop123",
        "123456789012",
        "iloveyou2024",
        "carol-carol-carol",
    ] {
        let message = app
            .signup("carol", weak)
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_password");
        assert!(message.contains("too easy to guess"), "{weak}: {message}");
        assert!(
            !message.contains(weak),
            "the password is not echoed: {message}"
        );
    }
    app.signup("carol", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
}

async fn a_common_password_is_refused_at_password_change(backend: Backend) {
    let app = TestApp::new(backend).await;
    let token = app.token("dave").await;
    for weak in ["password1234", "dave-dave-dave"] {
        let message = app
            .json(
                Method::POST,
                "/api/v1/users/me/password",
                json!({ "current_password": PASSWORD, "new_password": weak }),
                Some(&token),
            )
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_password");
        assert!(message.contains("too easy to guess"), "{weak}: {message}");
    }
    // Nothing changed: the old password still logs in.
    app.login("dave", PASSWORD)
        .await
        .assert_status(StatusCode::OK);
}
