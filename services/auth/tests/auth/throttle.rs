//! Failed-login throttling per (username, client address) and per client address, the bounded
//! table, and the sign-up limit.

use crate::common::{on_both_backends, Backend, TestApp, PASSWORD};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use std::net::SocketAddr;

on_both_backends!(
    guessing_a_password_from_one_address_never_locks_the_owner_out,
    a_full_throttle_table_forgets_old_keys_instead_of_refusing_the_owner,
    failures_from_one_address_are_limited_across_usernames,
    a_successful_login_clears_the_usernames_failures,
    signups_are_rate_limited_per_address,
    the_proxy_header_names_the_client_only_when_configured,
);

fn retry_after(response: &crate::common::TestResponse) -> u64 {
    response.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds")
}

async fn guessing_a_password_from_one_address_never_locks_the_owner_out(backend: Backend) {
    let app = TestApp::with_config(backend, |config| {
        config.throttle.login_failures_per_username_and_address = 5;
        config.throttle.login_window_secs = 900;
    })
    .await;
    app.create_user("kate").await;
    let attacker = "198.51.100.7:1000";
    for _ in 0..5 {
        app.login_from(attacker, "kate", "wrong password here")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let refused = app
        .login_from(attacker, "kate", "wrong password here")
        .await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    let wait = retry_after(&refused);
    assert!((1..=900).contains(&wait), "{wait}");
    // The guessing address waits even with the right password: that is what stops guessing.
    app.login_from(attacker, "kate", PASSWORD)
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    // The owner, from their own address, logs in at once, again and again.
    for _ in 0..3 {
        assert_eq!(
            app.login_from("192.0.2.44:2000", "kate", PASSWORD)
                .await
                .status,
            StatusCode::OK
        );
    }
}

async fn a_full_throttle_table_forgets_old_keys_instead_of_refusing_the_owner(backend: Backend) {
    let app = TestApp::with_config(backend, |config| {
        config.throttle.max_tracked_keys = 8;
    })
    .await;
    app.create_user("ravi").await;
    // Junk usernames from many addresses fill both tables many times over.
    for i in 0..40 {
        app.login_from(
            &format!("203.0.113.{i}:1"),
            &format!("junk{i}"),
            "wrong password here",
        )
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    assert_eq!(
        app.login_from("192.0.2.45:2000", "ravi", PASSWORD)
            .await
            .status,
        StatusCode::OK,
        "a new key is admitted (an old one forgotten), never refused"
    );
}

async fn failures_from_one_address_are_limited_across_usernames(backend: Backend) {
    let app = TestApp::with_config(backend, |config| {
        config.throttle.login_failures_per_address = 4;
    })
    .await;
    app.create_user("mia").await;
    let attacker = "203.0.113.5:4444";
    for i in 0..4 {
        app.login_from(attacker, &format!("victim{i}"), "wrong password here")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let refused = app
        .login_from(attacker, "victim9", "wrong password here")
        .await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    assert!(retry_after(&refused) >= 1);
    // The same address with a good password is refused too; another address is not.
    app.login_from(attacker, "mia", PASSWORD)
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    assert_eq!(
        app.login_from("203.0.113.6:4444", "mia", PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
}

async fn a_successful_login_clears_the_usernames_failures(backend: Backend) {
    let app = TestApp::with_config(backend, |config| {
        config.throttle.login_failures_per_username_and_address = 3;
    })
    .await;
    app.create_user("noah").await;
    for _ in 0..2 {
        app.login("noah", "wrong password here")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    assert_eq!(app.login("noah", PASSWORD).await.status, StatusCode::OK);
    for _ in 0..3 {
        app.login("noah", "wrong password here")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    app.login("noah", "wrong password here")
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
}

async fn signups_are_rate_limited_per_address(backend: Backend) {
    let app = TestApp::with_config(backend, |config| {
        config.throttle.signups_per_address = 2;
        config.throttle.signup_window_secs = 3600;
    })
    .await;
    assert_eq!(
        app.signup("olga", PASSWORD).await.status,
        StatusCode::CREATED
    );
    // A refused attempt counts too, or probing names would be free.
    app.signup("x", PASSWORD)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_username");
    let refused = app.signup("pete", PASSWORD).await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    let wait = retry_after(&refused);
    assert!((3500..=3600).contains(&wait), "{wait}");

    let mut from_elsewhere = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/users")
        .header("content-type", "application/json")
        .body(Body::from(
            serde_json::json!({"username": "pete", "password": PASSWORD}).to_string(),
        ))
        .expect("request");
    let addr: SocketAddr = "192.0.2.200:1".parse().expect("addr");
    from_elsewhere.extensions_mut().insert(ConnectInfo(addr));
    assert_eq!(app.send(from_elsewhere).await.status, StatusCode::CREATED);
}

async fn the_proxy_header_names_the_client_only_when_configured(backend: Backend) {
    let forwarded_login = |forwarded: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/login")
            .header("content-type", "application/json")
            .header("x-forwarded-for", forwarded)
            .body(Body::from(
                serde_json::json!({"username": "quinn", "password": "wrong password"}).to_string(),
            ))
            .expect("request")
    };

    // Behind a proxy: the last x-forwarded-for entry is the client.
    let app = TestApp::with_config(backend, |config| {
        config.client_address_header = Some("x-forwarded-for".into());
        config.throttle.login_failures_per_address = 1;
        config.throttle.login_failures_per_username_and_address = 100;
    })
    .await;
    app.send(forwarded_login("1.1.1.1, 10.0.0.1"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    app.send(forwarded_login("9.9.9.9, 10.0.0.1"))
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    app.send(forwarded_login("1.1.1.1, 10.0.0.2"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");

    // Not configured: the header is ignored, the peer address counts.
    let direct = TestApp::with_config(backend, |config| {
        config.throttle.login_failures_per_address = 1;
        config.throttle.login_failures_per_username_and_address = 100;
    })
    .await;
    direct
        .send(forwarded_login("10.0.0.1"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    direct
        .send(forwarded_login("10.0.0.2"))
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
}
