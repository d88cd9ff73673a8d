//! `/healthz`, `/readyz`, `/openapi.json`, `/.well-known/jwks.json`.

use crate::common::{on_both_backends, signing_kid, Backend, TestApp};
use axum::http::StatusCode;

on_both_backends!(
    healthz_and_readyz_answer_200,
    readyz_is_503_when_the_database_is_gone,
    openapi_describes_every_endpoint,
    jwks_publishes_the_signing_key,
);

async fn healthz_and_readyz_answer_200(backend: Backend) {
    let app = TestApp::new(backend).await;
    let health = app.get("/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(
        ready.json(),
        serde_json::json!({"status": "ready", "database": expected})
    );
}

async fn readyz_is_503_when_the_database_is_gone(backend: Backend) {
    let app = TestApp::new(backend).await;
    let token = app.token("rita").await;
    app.state.store().close().await;
    let ready = app.get("/readyz", None).await;
    ready.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(ready.headers.contains_key("retry-after"));
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
    // Requests that need the database say 503 too, never 500.
    app.get("/api/v1/users", Some(&token))
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    app.login("rita", crate::common::PASSWORD)
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}

async fn openapi_describes_every_endpoint(backend: Backend) {
    let app = TestApp::new(backend).await;
    let response = app.get("/openapi.json", None).await;
    assert_eq!(response.status, StatusCode::OK);
    let doc = response.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let served = [
        ("post", "/api/v1/users"),
        ("get", "/api/v1/users"),
        ("get", "/api/v1/users/{id}"),
        ("post", "/api/v1/login"),
        ("post", "/api/v1/invites"),
        ("post", "/api/v1/auth/refresh"),
        ("post", "/api/v1/auth/logout"),
        ("get", "/api/v1/auth/revocations"),
        ("post", "/api/v1/users/me/password"),
        ("post", "/api/v1/auth/firebase-token"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/openapi.json"),
        ("get", "/.well-known/jwks.json"),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    let documented: usize = paths
        .values()
        .map(|item| item.as_object().map_or(0, |m| m.len()))
        .sum();
    assert_eq!(
        documented,
        served.len(),
        "no undocumented extras: {:?}",
        paths.keys()
    );
    for (method, path) in served {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        assert!(
            operation["responses"]
                .as_object()
                .is_some_and(|r| !r.is_empty()),
            "{method} {path} has no responses"
        );
        // Each documented endpoint answers something other than 404/405.
        if method == "get" && !path.contains('{') && path != "/api/v1/users" {
            assert_eq!(app.get(path, None).await.status, StatusCode::OK, "{path}");
        }
    }
    for path in ["/api/v1/users", "/api/v1/users/{id}"] {
        assert!(
            doc["paths"][path]["get"]["security"].is_array(),
            "{path} needs bearer"
        );
    }
    let login = &doc["paths"]["/api/v1/login"]["post"];
    assert!(login["requestBody"]["content"]["application/json"].is_object());
    assert!(login["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object());
    for status in ["200", "401", "429"] {
        assert!(login["responses"][status].is_object(), "login {status}");
    }
    let signup = &doc["paths"]["/api/v1/users"]["post"];
    for status in ["201", "409", "422", "429"] {
        assert!(signup["responses"][status].is_object(), "sign-up {status}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for schema in [
        "ErrorBody",
        "UserView",
        "UserPage",
        "TokenResponse",
        "NewUser",
        "LoginRequest",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}

async fn jwks_publishes_the_signing_key(backend: Backend) {
    let app = TestApp::new(backend).await;
    let response = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.headers.contains_key("cache-control"));
    let jwks = response.json();
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kid"], signing_kid());
    assert!(key.get("d").is_none(), "no private part");
}
