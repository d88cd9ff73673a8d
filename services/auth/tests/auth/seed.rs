//! The first user seeded from configuration, and start-up failures that name their cause.

use crate::common::{on_both_backends, test_config, test_db, Backend, TestApp};
use axum::http::StatusCode;
use confab_auth::{AppState, FirstUser, StartError};
use confab_token::Secret;

on_both_backends!(
    the_first_user_is_seeded_once_and_never_overwritten,
    an_invalid_first_user_stops_the_start,
    migrations_apply_alone_and_twice,
);

async fn the_first_user_is_seeded_once_and_never_overwritten(backend: Backend) {
    let db = test_db(backend).await;
    let mut config = test_config(&db);
    config.first_user = Some(FirstUser {
        username: "Admin".into(),
        password: Secret::new("the first admin password"),
    });
    let state = AppState::build(&config).await.expect("build");
    let app = TestApp::from_state(state, db);
    let login = app.login("admin", "the first admin password").await;
    assert_eq!(login.status, StatusCode::OK);
    let id = login.json()["id"].clone();

    // Start again with another configured password: the stored user is left alone.
    config.first_user = Some(FirstUser {
        username: "admin".into(),
        password: Secret::new("a different password now"),
    });
    let again = AppState::build(&config).await.expect("rebuild");
    let app2 = TestApp::from_state(again, app.into_db());
    let login = app2.login("admin", "the first admin password").await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.json()["id"], id);
    app2.login("admin", "a different password now")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

async fn an_invalid_first_user_stops_the_start(backend: Backend) {
    let db = test_db(backend).await;
    let mut config = test_config(&db);
    config.first_user = Some(FirstUser {
        username: "admin".into(),
        password: Secret::new("short"),
    });
    let err = AppState::build(&config).await.expect_err("refused");
    assert!(matches!(err, StartError::Seed { .. }), "{err}");
    assert!(err.to_string().contains("at least 12"), "{err}");
    assert!(
        !err.to_string().contains("short\""),
        "the password is not echoed: {err}"
    );
}

async fn migrations_apply_alone_and_twice(backend: Backend) {
    let db = test_db(backend).await;
    let config = test_config(&db);
    confab_auth::migrate(&config).await.expect("migrate");
    confab_auth::migrate(&config)
        .await
        .expect("migrating again is a no-op");
    AppState::build(&config)
        .await
        .expect("start on a migrated database");
}

#[tokio::test]
async fn an_unreachable_database_is_named_with_the_fix() {
    // Port 9 (discard) on loopback: nothing listens there.
    let config = confab_auth::Config {
        database_url: Secret::new("postgres://confab:hunter2@127.0.0.1:9/confab"),
        ..confab_auth::Config::default()
    };
    let err = AppState::build(&config).await.expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:9"), "{text}");
    assert!(text.contains("scripts/infra up postgres"), "{text}");
    assert!(
        !text.contains("hunter2"),
        "the password is not shown: {text}"
    );
}

#[tokio::test]
async fn an_unsupported_database_url_is_refused() {
    let config = confab_auth::Config {
        database_url: Secret::new("mysql://localhost/confab"),
        ..confab_auth::Config::default()
    };
    let err = AppState::build(&config).await.expect_err("refused");
    assert!(err.to_string().contains("postgres://"), "{err}");
}

#[tokio::test]
async fn a_weak_argon2_setting_is_refused_at_start() {
    let mut config = confab_auth::Config::default();
    config.passwords.argon2_memory_kib = 4096;
    let err = AppState::build(&config).await.expect_err("refused");
    assert!(err.to_string().contains("OWASP"), "{err}");
}
