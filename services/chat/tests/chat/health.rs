//! `/healthz`, `/readyz` and `/openapi.json`.

use crate::common::{on_every_backend, Backend, TestApp};
use axum::http::StatusCode;

on_every_backend!(
    health_and_readiness_name_the_backends,
    the_openapi_document_lists_every_endpoint
);

async fn health_and_readiness_name_the_backends(backend: Backend) {
    let app = TestApp::new(backend).await;
    let health = app
        .get("/healthz", None)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(health, serde_json::json!({ "status": "ok" }));
    let ready = app.get("/readyz", None).await.assert_status(StatusCode::OK);
    let (database, store) = match backend {
        Backend::Sqlite => ("sqlite", "sql"),
        Backend::Postgres => ("postgres", "sql"),
        #[cfg(feature = "cassandra")]
        Backend::Cassandra => ("postgres", "cassandra"),
    };
    assert_eq!(
        ready,
        serde_json::json!({
            "status": "ready",
            "database": database,
            "store": store,
            "log": "memory",
            "history": "sql",
            "events": "in_process",
        })
    );
    // The embedded aggregator is part of readiness: once it stops, the service is not ready.
    app.state.shutdown().await;
    assert_eq!(app.state.embedded_running().await, None);
    app.state.store().close().await;
    let down = app.get("/readyz", None).await;
    let message = down.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(message.contains("database"), "{message}");
    assert_eq!(down.retry_after(), 1);
}

async fn the_openapi_document_lists_every_endpoint(backend: Backend) {
    let app = TestApp::new(backend).await;
    let doc = app
        .get("/openapi.json", None)
        .await
        .assert_status(StatusCode::OK);
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/api/v1/chats", &["get", "post"][..]),
        ("/api/v1/chats/{chat_id}/messages", &["get", "post"]),
        ("/chat/{chat_id}", &["get"]),
        ("/api/v1/blocks", &["get", "post"]),
        ("/api/v1/blocks/{user_id}", &["delete"]),
        ("/api/v1/chats/{chat_id}/events", &["get"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/openapi.json", &["get"]),
    ] {
        for method in methods {
            assert!(paths[path][method].is_object(), "{method} {path}");
        }
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    for schema in [
        "ChatView",
        "MessageView",
        "MessagePage",
        "GroupEvent",
        "ErrorBody",
        "NewBlock",
        "BlockView",
        "BlockList",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}
