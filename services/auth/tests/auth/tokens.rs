//! Tokens presented to the protected endpoints: only valid ones get through, everything else
//! is 401 `invalid_token`. Also the HS256 mode.

use crate::common::{
    claims, on_both_backends, sign_eddsa, sign_hs256, signing_kid, Backend, TestApp, PASSWORD,
    SIGNING_SEED,
};
use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use confab_token::{Algorithm, Secret};

on_both_backends!(
    only_valid_tokens_open_protected_endpoints,
    hs256_mode_signs_verifies_and_publishes_no_key,
);

async fn only_valid_tokens_open_protected_endpoints(backend: Backend) {
    let app = TestApp::new(backend).await;
    let id = app.create_user("ivan").await;
    let kid = signing_kid();
    let uri = format!("/api/v1/users/{id}");

    // A token we sign ourselves with the service's key is accepted: the forgeries below differ
    // from it in one respect each.
    let valid = sign_eddsa(&SIGNING_SEED, Some(&kid), &claims(id, 0, 600));
    assert_eq!(app.get(&uri, Some(&valid)).await.status, StatusCode::OK);

    let public_key = {
        let jwk = confab_token::ed25519_public_jwk_from_seed(&SIGNING_SEED).expect("jwk");
        match jwk.algorithm {
            confab_token::jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) => {
                URL_SAFE_NO_PAD.decode(p.x).expect("b64")
            }
            _ => unreachable!("Ed25519"),
        }
    };
    let none_token = {
        let header =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#));
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(id, 0, 600)).expect("json"));
        format!("{header}.{payload}.")
    };
    let tampered = {
        let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).expect("b64")).expect("json");
        payload["username"] = "root".into();
        parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
        parts.join(".")
    };
    let mut wrong_issuer = claims(id, 0, 600);
    wrong_issuer.iss = "evil".into();

    let cases = [
        (
            "expired",
            sign_eddsa(&SIGNING_SEED, Some(&kid), &claims(id, -7200, -3600)),
        ),
        (
            "not yet valid",
            sign_eddsa(&SIGNING_SEED, Some(&kid), &claims(id, 3600, 7200)),
        ),
        (
            "wrong signature",
            sign_eddsa(&[7; 32], Some(&kid), &claims(id, 0, 600)),
        ),
        ("tampered payload", tampered),
        ("alg none", none_token),
        (
            "HS256 keyed with the public key",
            sign_hs256(&public_key, Some(&kid), &claims(id, 0, 600)),
        ),
        (
            "unknown kid",
            sign_eddsa(
                &SIGNING_SEED,
                Some("someone-elses-key"),
                &claims(id, 0, 600),
            ),
        ),
        (
            "no kid",
            sign_eddsa(&SIGNING_SEED, None, &claims(id, 0, 600)),
        ),
        (
            "wrong issuer",
            sign_eddsa(&SIGNING_SEED, Some(&kid), &wrong_issuer),
        ),
        ("garbage", "definitely.not.a-jwt".to_owned()),
        ("empty segments", "..".to_owned()),
    ];
    for (what, token) in cases {
        let response = app.get(&uri, Some(&token)).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{what}");
        response.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
}

async fn hs256_mode_signs_verifies_and_publishes_no_key(backend: Backend) {
    let secret = "an-hs256-secret-of-at-least-32-bytes!";
    let app = TestApp::with_config(backend, |config| {
        config.jwt.algorithm = Algorithm::HS256;
        config.jwt.ed25519_private_key_file = None;
        config.jwt.hs256_secret = Some(Secret::new(secret));
    })
    .await;
    let id = app.create_user("judy").await;
    let login = app.login("judy", PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK);
    let token = login.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let header = confab_token::jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.alg, confab_token::jsonwebtoken::Algorithm::HS256);
    let uri = format!("/api/v1/users/{id}");
    assert_eq!(app.get(&uri, Some(&token)).await.status, StatusCode::OK);

    let jwks = app.get("/.well-known/jwks.json", None).await.json();
    assert_eq!(
        jwks,
        serde_json::json!({"keys": []}),
        "a shared secret is never published"
    );

    let kid = confab_token::hs256_key_id(secret.as_bytes()).expect("kid");
    let eddsa = sign_eddsa(&SIGNING_SEED, Some(&kid), &claims(id, 0, 600));
    app.get(&uri, Some(&eddsa))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    let other_secret = sign_hs256(
        b"another-secret-of-at-least-32-bytes!!",
        Some(&kid),
        &claims(id, 0, 600),
    );
    app.get(&uri, Some(&other_secret))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    let expired = sign_hs256(secret.as_bytes(), Some(&kid), &claims(id, -7200, -3600));
    app.get(&uri, Some(&expired))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
}
