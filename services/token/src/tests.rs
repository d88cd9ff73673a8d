//! Verification tests: every way a token can be wrong is refused, a good one is accepted.

use crate::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{EncodingKey, Header};
use std::sync::Arc;
use tower::ServiceExt;
use uuid::Uuid;

const SEED_A: [u8; 32] = [11; 32];
const SEED_B: [u8; 32] = [22; 32];
const HS_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-only";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn claims_at(iat: u64, nbf: u64, exp: u64) -> Claims {
    let id = Uuid::new_v4();
    Claims {
        sub: id.to_string(),
        user_id: id,
        username: "alice".into(),
        iss: DEFAULT_ISSUER.into(),
        aud: DEFAULT_AUDIENCE.into(),
        iat,
        nbf,
        exp,
        jti: Uuid::new_v4(),
        sid: None,
    }
}

fn good_claims() -> Claims {
    let t = now();
    claims_at(t, t, t + 600)
}

fn kid_of(seed: &[u8; 32]) -> String {
    ed25519_public_jwk_from_seed(seed)
        .expect("jwk")
        .common
        .key_id
        .expect("kid")
}

fn sign_ed(seed: &[u8; 32], kid: Option<String>, claims: &impl serde::Serialize) -> String {
    install_crypto_provider();
    let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = kid;
    let key = EncodingKey::from_ed_der(&ed25519_pkcs8_from_seed(seed));
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

fn sign_hs(secret: &[u8], kid: Option<String>, claims: &Claims) -> String {
    install_crypto_provider();
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = kid;
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("sign")
}

fn ed_verifier() -> TokenVerifier {
    let jwks = JwkSet {
        keys: vec![ed25519_public_jwk_from_seed(&SEED_A).expect("jwk")],
    };
    TokenVerifier::from_jwks(&jwks, Expectations::default()).expect("verifier")
}

fn public_key_bytes(seed: &[u8; 32]) -> Vec<u8> {
    let jwk = ed25519_public_jwk_from_seed(seed).expect("jwk");
    match jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) => URL_SAFE_NO_PAD.decode(p.x).expect("b64"),
        _ => unreachable!("Ed25519 keys are OKP"),
    }
}

fn public_key_pem(seed: &[u8; 32]) -> String {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend(public_key_bytes(seed));
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    )
}

#[test]
fn a_valid_eddsa_token_is_accepted() {
    let claims = good_claims();
    let token = sign_ed(&SEED_A, Some(kid_of(&SEED_A)), &claims);
    assert_eq!(ed_verifier().verify(&token), Ok(claims));
}

#[test]
fn an_expired_token_is_refused() {
    let t = now();
    let token = sign_ed(
        &SEED_A,
        Some(kid_of(&SEED_A)),
        &claims_at(t - 7200, t - 7200, t - 3600),
    );
    assert_eq!(ed_verifier().verify(&token), Err(TokenError::Expired));
}

#[test]
fn expiry_within_the_leeway_is_tolerated() {
    let t = now();
    let token = sign_ed(
        &SEED_A,
        Some(kid_of(&SEED_A)),
        &claims_at(t - 600, t - 600, t - 5),
    );
    assert!(ed_verifier().verify(&token).is_ok());
}

#[test]
fn a_token_not_yet_valid_is_refused() {
    let t = now();
    let token = sign_ed(
        &SEED_A,
        Some(kid_of(&SEED_A)),
        &claims_at(t, t + 3600, t + 7200),
    );
    assert_eq!(ed_verifier().verify(&token), Err(TokenError::NotYetValid));
}

#[test]
fn a_signature_by_another_key_under_our_kid_is_refused() {
    let token = sign_ed(&SEED_B, Some(kid_of(&SEED_A)), &good_claims());
    assert_eq!(ed_verifier().verify(&token), Err(TokenError::BadSignature));
}

#[test]
fn a_tampered_payload_is_refused() {
    let token = sign_ed(&SEED_A, Some(kid_of(&SEED_A)), &good_claims());
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    payload["username"] = "mallory".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    );
    assert_eq!(ed_verifier().verify(&forged), Err(TokenError::BadSignature));
}

#[test]
fn alg_none_is_refused() {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"x"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&good_claims()).expect("json"));
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        assert_eq!(ed_verifier().verify(&token), Err(TokenError::Malformed));
    }
}

#[test]
fn an_hs256_token_keyed_with_the_public_key_is_refused() {
    // The classic algorithm-confusion forgery: HMAC keyed with the verifier's public key.
    let public = public_key_bytes(&SEED_A);
    let mut secret = public.clone();
    secret.extend(&public); // HS256 keys must be >= 32 bytes for jsonwebtoken; still "public".
    for key in [&public[..], &secret[..]] {
        let token = sign_hs(key, Some(kid_of(&SEED_A)), &good_claims());
        assert!(matches!(
            ed_verifier().verify(&token),
            Err(TokenError::AlgorithmNotAllowed { .. })
        ));
    }
}

#[test]
fn an_eddsa_token_is_refused_by_an_hs256_verifier() {
    let verifier = TokenVerifier::hs256(HS_SECRET, Expectations::default()).expect("verifier");
    let token = sign_ed(
        &SEED_A,
        Some(hs256_key_id(HS_SECRET).expect("kid")),
        &good_claims(),
    );
    assert!(matches!(
        verifier.verify(&token),
        Err(TokenError::AlgorithmNotAllowed { .. })
    ));
}

#[test]
fn a_valid_hs256_token_is_accepted_and_a_wrong_secret_refused() {
    let verifier = TokenVerifier::hs256(HS_SECRET, Expectations::default()).expect("verifier");
    let kid = hs256_key_id(HS_SECRET).expect("kid");
    let claims = good_claims();
    assert_eq!(
        verifier.verify(&sign_hs(HS_SECRET, Some(kid.clone()), &claims)),
        Ok(claims.clone())
    );
    let other = b"another-secret-that-is-long-enough-32";
    assert_eq!(
        verifier.verify(&sign_hs(other, Some(kid), &claims)),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn an_unknown_or_missing_kid_is_refused() {
    let claims = good_claims();
    assert_eq!(
        ed_verifier().verify(&sign_ed(&SEED_A, Some("nope".into()), &claims)),
        Err(TokenError::UnknownKeyId { kid: "nope".into() })
    );
    assert_eq!(
        ed_verifier().verify(&sign_ed(&SEED_A, None, &claims)),
        Err(TokenError::MissingKeyId)
    );
}

#[test]
fn garbage_is_refused() {
    let verifier = ed_verifier();
    for token in ["", "abc", "a.b.c", "....", "🦀.🦀.🦀", &"x".repeat(20_000)] {
        assert_eq!(
            verifier.verify(token),
            Err(TokenError::Malformed),
            "{token:?}"
        );
    }
}

#[test]
fn wrong_issuer_audience_or_mismatched_sub_is_refused() {
    let kid = Some(kid_of(&SEED_A));
    let mut claims = good_claims();
    claims.iss = "someone-else".into();
    assert!(matches!(
        ed_verifier().verify(&sign_ed(&SEED_A, kid.clone(), &claims)),
        Err(TokenError::InvalidClaims(_))
    ));
    let mut claims = good_claims();
    claims.aud = "another-app".into();
    assert!(matches!(
        ed_verifier().verify(&sign_ed(&SEED_A, kid.clone(), &claims)),
        Err(TokenError::InvalidClaims(_))
    ));
    let mut claims = good_claims();
    claims.sub = Uuid::new_v4().to_string();
    assert!(matches!(
        ed_verifier().verify(&sign_ed(&SEED_A, kid.clone(), &claims)),
        Err(TokenError::InvalidClaims(_))
    ));
    let missing_exp =
        serde_json::json!({"sub": "x", "iss": DEFAULT_ISSUER, "aud": DEFAULT_AUDIENCE});
    assert!(matches!(
        ed_verifier().verify(&sign_ed(&SEED_A, kid, &missing_exp)),
        Err(TokenError::InvalidClaims(_))
    ));
}

#[test]
fn critical_header_extensions_are_refused() {
    let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid_of(&SEED_A));
    header.crit = Some(vec!["exp".into()]);
    install_crypto_provider();
    let key = EncodingKey::from_ed_der(&ed25519_pkcs8_from_seed(&SEED_A));
    let token = jsonwebtoken::encode(&header, &good_claims(), &key).expect("sign");
    assert_eq!(
        ed_verifier().verify(&token),
        Err(TokenError::UnsupportedCritical)
    );
}

fn config(toml_like: serde_json::Value) -> Result<VerifierConfig, serde_json::Error> {
    serde_json::from_value(toml_like)
}

#[test]
fn config_with_a_public_key_pem_or_a_jwks_file_verifies_our_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = dir.path().join("public.pem");
    std::fs::write(&pem, public_key_pem(&SEED_A)).expect("write");
    let jwks = dir.path().join("jwks.json");
    let set = JwkSet {
        keys: vec![ed25519_public_jwk_from_seed(&SEED_A).expect("jwk")],
    };
    std::fs::write(&jwks, serde_json::to_vec(&set).expect("json")).expect("write");
    let token = sign_ed(&SEED_A, Some(kid_of(&SEED_A)), &good_claims());

    for cfg in [
        serde_json::json!({"algorithm": "EdDSA", "public_key_pem_file": pem}),
        serde_json::json!({"jwks_file": jwks}),
    ] {
        let verifier = TokenVerifier::from_config(&config(cfg).expect("config")).expect("build");
        assert!(verifier.verify(&token).is_ok());
    }
}

#[test]
fn config_with_an_hs256_secret_verifies_hs256_tokens() {
    let cfg = config(serde_json::json!({
        "algorithm": "HS256",
        "hs256_secret": std::str::from_utf8(HS_SECRET).expect("utf8"),
        "leeway_secs": 5
    }))
    .expect("config");
    assert!(
        !format!("{cfg:?}").contains("0123456789"),
        "secret leaked in Debug"
    );
    let verifier = TokenVerifier::from_config(&cfg).expect("build");
    let token = sign_hs(
        HS_SECRET,
        Some(hs256_key_id(HS_SECRET).expect("kid")),
        &good_claims(),
    );
    assert!(verifier.verify(&token).is_ok());
}

#[test]
fn bad_configs_are_refused_with_a_reason() {
    assert!(config(serde_json::json!({"algorithm": "none"})).is_err());
    assert!(config(serde_json::json!({"algorithm": "RS256"})).is_err());
    assert!(config(serde_json::json!({"hs256_secret": "x", "surprise": 1})).is_err());
    let cases = [
        serde_json::json!({}),
        serde_json::json!({"algorithm": "HS256", "hs256_secret": "too-short"}),
        serde_json::json!({"algorithm": "HS256", "public_key_pem_file": "/nonexistent"}),
        serde_json::json!({"algorithm": "EdDSA", "hs256_secret": "0123456789abcdef0123456789abcdef"}),
        serde_json::json!({"algorithm": "EdDSA", "jwks_file": "/nonexistent/jwks.json"}),
        serde_json::json!({"hs256_secret": "0123456789abcdef0123456789abcdef", "jwks_file": "/x"}),
    ];
    for case in cases {
        let cfg = config(case.clone()).expect("parses");
        let err = TokenVerifier::from_config(&cfg).expect_err("must be refused");
        assert!(!err.to_string().is_empty(), "{case}");
    }
}

#[test]
fn a_jwks_with_a_non_ed25519_key_is_refused() {
    let jwks: JwkSet = serde_json::from_value(serde_json::json!({"keys": [
        {"kty": "oct", "k": URL_SAFE_NO_PAD.encode(HS_SECRET), "kid": "k1"}
    ]}))
    .expect("jwks");
    assert!(TokenVerifier::from_jwks(&jwks, Expectations::default()).is_err());
    let empty = JwkSet { keys: vec![] };
    assert!(TokenVerifier::from_jwks(&empty, Expectations::default()).is_err());
}

async fn whoami(user: CurrentUser) -> String {
    user.username
}

async fn call(
    verifier: Arc<TokenVerifier>,
    authorization: Option<&str>,
) -> (StatusCode, String, Option<String>) {
    let app = Router::new().route("/me", get(whoami)).with_state(verifier);
    let mut request = Request::builder().uri("/me");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = app
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        String::from_utf8(body.to_vec()).expect("utf8"),
        challenge,
    )
}

#[tokio::test]
async fn the_extractor_accepts_a_valid_bearer_token() {
    let token = sign_ed(&SEED_A, Some(kid_of(&SEED_A)), &good_claims());
    let (status, body, _) = call(Arc::new(ed_verifier()), Some(&format!("bearer {token}"))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "alice"));
}

#[tokio::test]
async fn the_extractor_answers_401_json_with_a_challenge() {
    let verifier = Arc::new(ed_verifier());
    let expired = {
        let t = now();
        sign_ed(
            &SEED_A,
            Some(kid_of(&SEED_A)),
            &claims_at(t - 7200, t - 7200, t - 3600),
        )
    };
    let cases = [
        (None, "missing_token"),
        (Some("Basic dXNlcjpwYXNz".to_owned()), "invalid_token"),
        (Some("Bearer".to_owned()), "invalid_token"),
        (Some("Bearer   ".to_owned()), "invalid_token"),
        (Some("Bearer not-a-token".to_owned()), "invalid_token"),
        (Some(format!("Bearer {expired}")), "invalid_token"),
    ];
    for (authorization, code) in cases {
        let (status, body, challenge) = call(verifier.clone(), authorization.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        let body: ErrorBody = serde_json::from_str(&body).expect("JSON error body");
        assert_eq!(body.error, code, "{authorization:?}");
        assert!(!body.message.is_empty());
        assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));
    }
}

/// Publishes the public keys of `seeds` as the JWKS file at `path`.
fn write_jwks(path: &std::path::Path, seeds: &[&[u8; 32]]) {
    let set = JwkSet {
        keys: seeds
            .iter()
            .map(|seed| ed25519_public_jwk_from_seed(seed).expect("jwk"))
            .collect(),
    };
    std::fs::write(path, serde_json::to_vec(&set).expect("json")).expect("write");
}

#[test]
fn an_unknown_kid_rereads_the_jwks_file_at_most_once_per_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    let write = |seeds: &[&[u8; 32]]| write_jwks(&path, seeds);
    write(&[&SEED_A]);
    let verifier = TokenVerifier::from_config(
        &config(serde_json::json!({"jwks_file": path})).expect("config"),
    )
    .expect("build");
    // The issuer rotates to a new key and publishes it: the first token under it is accepted.
    write(&[&SEED_A, &SEED_B]);
    let token_b = sign_ed(&SEED_B, Some(kid_of(&SEED_B)), &good_claims());
    assert!(verifier.verify(&token_b).is_ok());
    // Junk kids right after cannot make it read the file again.
    let seed_c = [7_u8; 32];
    write(&[&SEED_A, &SEED_B, &seed_c]);
    let token_c = sign_ed(&seed_c, Some(kid_of(&seed_c)), &good_claims());
    assert!(matches!(
        verifier.verify(&token_c),
        Err(TokenError::UnknownKeyId { .. })
    ));
}

#[test]
fn a_token_issued_in_the_future_or_living_too_long_is_refused() {
    let t = now();
    let verifier = ed_verifier();
    let future = sign_ed(
        &SEED_A,
        Some(kid_of(&SEED_A)),
        &claims_at(t + 600, t, t + 900),
    );
    assert!(matches!(
        verifier.verify(&future),
        Err(TokenError::Lifetime(_))
    ));
    let lifetime = crate::DEFAULT_MAX_LIFETIME_SECS;
    let long = sign_ed(
        &SEED_A,
        Some(kid_of(&SEED_A)),
        &claims_at(t, t, t + lifetime + 1),
    );
    assert!(matches!(
        verifier.verify(&long),
        Err(TokenError::Lifetime(_))
    ));
    let longest = sign_ed(
        &SEED_A,
        Some(kid_of(&SEED_A)),
        &claims_at(t, t, t + lifetime),
    );
    assert!(verifier.verify(&longest).is_ok());
}

#[test]
fn a_token_of_a_revoked_session_is_refused_and_others_are_not() {
    let revocations = std::sync::Arc::new(crate::Revocations::default());
    let verifier = ed_verifier().with_revocations(std::sync::Arc::clone(&revocations));
    let mut revoked = good_claims();
    revoked.sid = Some(Uuid::new_v4());
    let mut other = good_claims();
    other.sid = Some(Uuid::new_v4());
    let kid = Some(kid_of(&SEED_A));
    let (revoked_token, other_token) = (
        sign_ed(&SEED_A, kid.clone(), &revoked),
        sign_ed(&SEED_A, kid, &other),
    );
    assert!(verifier.verify(&revoked_token).is_ok());
    revocations.revoke(crate::Revoked {
        session: revoked.sid.unwrap_or_default(),
        user: revoked.user_id,
        until: revoked.exp,
    });
    assert_eq!(verifier.verify(&revoked_token), Err(TokenError::Revoked));
    assert_eq!(verifier.verify(&other_token).map(|c| c.sid), Ok(other.sid));
}

#[test]
fn a_remembered_token_still_expires_and_only_the_same_text_is_remembered() {
    let verifier = ed_verifier();
    let claims = good_claims();
    let token = sign_ed(&SEED_A, Some(kid_of(&SEED_A)), &claims);
    assert!(verifier.verify(&token).is_ok());
    // The second use is a remembered one: its time claims are checked against the clock.
    assert!(verifier.verify(&token).is_ok());
    let leeway = crate::DEFAULT_LEEWAY_SECS;
    assert!(verifier.verify_at(&token, claims.exp + leeway).is_ok());
    assert_eq!(
        verifier.verify_at(&token, claims.exp + leeway + 1),
        Err(TokenError::Expired)
    );
    // One character of the signature changed is another token, checked in full.
    let mut tampered = token.clone();
    let last = if tampered.ends_with('A') { "B" } else { "A" };
    tampered.replace_range(tampered.len() - 1.., last);
    assert!(matches!(
        verifier.verify(&tampered),
        Err(TokenError::BadSignature | TokenError::Malformed)
    ));
}

#[test]
fn a_remembered_token_is_refused_once_its_key_is_taken_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    let write = |seeds: &[&[u8; 32]]| write_jwks(&path, seeds);
    write(&[&SEED_A]);
    let verifier = TokenVerifier::from_config(
        &config(serde_json::json!({"jwks_file": path})).expect("config"),
    )
    .expect("build");
    let token_a = sign_ed(&SEED_A, Some(kid_of(&SEED_A)), &good_claims());
    assert!(verifier.verify(&token_a).is_ok());
    // Key A is withdrawn (a leak) and B published; the first token under B re-reads the file.
    write(&[&SEED_B]);
    let token_b = sign_ed(&SEED_B, Some(kid_of(&SEED_B)), &good_claims());
    assert!(verifier.verify(&token_b).is_ok());
    assert!(matches!(
        verifier.verify(&token_a),
        Err(TokenError::UnknownKeyId { .. })
    ));
}
