//! `POST /api/v1/login`: JSON and OAuth2 form, and the same 401 for every wrong credential.

use crate::common::{on_both_backends, Backend, TestApp, PASSWORD};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use confab_token::jsonwebtoken::jwk::JwkSet;
use confab_token::{Expectations, TokenVerifier};

on_both_backends!(
    json_login_returns_a_bearer_token_that_verifies_with_the_published_jwks,
    oauth2_form_login_works_and_other_grants_are_refused,
    wrong_password_and_unknown_user_get_the_same_401_after_the_same_work,
);

async fn json_login_returns_a_bearer_token_that_verifies_with_the_published_jwks(backend: Backend) {
    let app = TestApp::new(backend).await;
    let id = app.create_user("frank").await;
    let response = app.login("frank", PASSWORD).await;
    assert_eq!(response.status, StatusCode::OK);
    let body = response.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600, "access tokens are short-lived");
    assert!(body["refresh_token"]
        .as_str()
        .is_some_and(|t| t.len() >= 43));
    assert_eq!(body["refresh_expires_in"], 30 * 24 * 3600);
    assert_eq!(
        response.headers["cache-control"], "no-store",
        "a token response is never cached"
    );
    assert_eq!(body["id"], id.to_string());
    assert_eq!(body["username"], "frank");
    let token = body["access_token"].as_str().expect("token");

    // What another service would do: fetch the JWKS and verify with the public key only.
    let jwks: JwkSet =
        serde_json::from_slice(&app.get("/.well-known/jwks.json", None).await.body).expect("JWKS");
    let verifier = TokenVerifier::from_jwks(&jwks, Expectations::default()).expect("verifier");
    let claims = verifier.verify(token).expect("the token verifies");
    assert_eq!(claims.user_id, id);
    assert_eq!(claims.sub, id.to_string());
    assert_eq!(claims.username, "frank");
    assert_eq!(claims.exp - claims.iat, 600);
    assert!(claims.sid.is_some(), "the token names its session");

    let header = confab_token::jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.alg, confab_token::jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.kid, jwks.keys[0].common.key_id);

    // And the token opens the protected endpoints.
    let me = app.get(&format!("/api/v1/users/{id}"), Some(token)).await;
    assert_eq!(me.status, StatusCode::OK);
}

async fn oauth2_form_login_works_and_other_grants_are_refused(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create_user("grace").await;
    let form = |body: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/login")
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(Body::from(body.to_owned()))
            .expect("request")
    };
    let password = PASSWORD.replace(' ', "+");
    let ok = app
        .send(form(&format!(
            "grant_type=password&username=grace&password={password}&scope=&client_id=web&extra=ignored"
        )))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.json());
    assert_eq!(ok.json()["token_type"], "Bearer");

    let bare = app
        .send(form(&format!("username=grace&password={password}")))
        .await;
    assert_eq!(bare.status, StatusCode::OK);

    app.send(form(&format!(
        "grant_type=client_credentials&username=grace&password={password}"
    )))
    .await
    .assert_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");

    let missing = app.send(form("username=grace")).await;
    assert!(missing.status.is_client_error());
    assert_eq!(missing.json().as_object().map(|o| o.len()), Some(2));

    app.send(form("username=grace&password=wrong+password+here"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

async fn wrong_password_and_unknown_user_get_the_same_401_after_the_same_work(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create_user("heidi").await;

    let before = app.state.passwords().verifications();
    let wrong_password = app.login("heidi", "not the password at all").await;
    let unknown_user = app.login("nobody-here", "not the password at all").await;
    let impossible_user = app.login("x", "not the password at all").await;
    let after = app.state.passwords().verifications();

    let a = wrong_password.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let b = unknown_user.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let c = impossible_user.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(a, b);
    assert_eq!(b, c);
    assert_eq!(
        wrong_password.body, unknown_user.body,
        "byte-identical bodies"
    );
    // Each attempt ran one argon2id verification, whether the user exists or not: similar
    // timing by construction rather than by a flaky stopwatch.
    assert_eq!(after - before, 3);
}
