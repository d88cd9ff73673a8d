//! `/openapi.json` of `confab up`: one OpenAPI document for everything it serves on its one
//! port, the auth and chat services' documents merged with `confab up`'s own endpoints. Built
//! from the same annotations as the services' own documents, so it cannot drift from them; the
//! API reference page (`/docs/`, web/docs) reads it.

use axum::http::header::CACHE_CONTROL;
use axum::response::IntoResponse;
use axum::Json;
use std::sync::OnceLock;
use utoipa::OpenApi;

/// `confab up`'s own endpoints.
#[derive(OpenApi)]
#[openapi(
    paths(super::stats, super::realtime::serve, serve),
    components(schemas(super::Stats, super::realtime::ClientConfig, super::realtime::FirestoreClient)),
    tags(
        (name = "web", description = "What the web client reads besides the services: its realtime settings, the aggregator's figures"),
    )
)]
struct UpDoc;

/// The merged document.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    // On a path both describe the first document wins: confab up's own (/openapi.json), then
    // the chat service's, which answers /readyz here.
    let mut doc = UpDoc::openapi();
    doc.merge(confab_chat::ApiDoc::openapi());
    doc.merge(confab_auth::ApiDoc::openapi());
    // The reference page lists the tags in this order: a newcomer's path through the API.
    const ORDER: [&str; 8] = [
        "users", "auth", "chats", "messages", "events", "web", "health", "meta",
    ];
    if let Some(tags) = doc.tags.as_mut() {
        tags.sort_by_key(|tag| {
            ORDER
                .iter()
                .position(|name| *name == tag.name)
                .unwrap_or(ORDER.len())
        });
        tags.dedup_by(|a, b| a.name == b.name);
    }
    doc.info.title = "confab".to_owned();
    doc.info.description = Some(
        "Everything `confab up` serves on one port: sign-up, login and users (auth), chats, \
         messages, history and realtime events (chat), and the web client's settings. Endpoints \
         marked with a lock take `Authorization: Bearer <access_token>` from POST /api/v1/login."
            .to_owned(),
    );
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// This OpenAPI document (everything `confab up` serves).
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn serve() -> impl IntoResponse {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    let doc = DOC.get_or_init(|| serde_json::to_value(document()).unwrap_or_default());
    ([(CACHE_CONTROL, "no-cache")], Json(doc.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_covers_auth_chat_and_up() {
        let doc = serde_json::to_value(document()).expect("json");
        let paths = doc["paths"].as_object().expect("paths");
        for path in [
            "/api/v1/users",
            "/api/v1/users/{id}",
            "/api/v1/login",
            "/.well-known/jwks.json",
            "/api/v1/chats",
            "/api/v1/events",
            "/chat/{chat_id}",
            "/api/v1/config",
            "/api/v1/stats",
            "/openapi.json",
            "/healthz",
            "/readyz",
        ] {
            assert!(
                paths.contains_key(path),
                "{path} missing: {:?}",
                paths.keys()
            );
        }
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for schema in [
            "UserPage",
            "ChatView",
            "MessagePage",
            "Stats",
            "ClientConfig",
            "ErrorBody",
        ] {
            assert!(schemas.contains_key(schema), "{schema}");
        }
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        // confab up sends /readyz to the chat service, and /openapi.json is its own.
        let text = |path: &str| {
            let get = &doc["paths"][path]["get"];
            format!("{} {}", get["summary"], get["description"])
        };
        assert!(
            text("/readyz").contains("chat store"),
            "{}",
            text("/readyz")
        );
        assert!(
            text("/openapi.json").contains("everything"),
            "{}",
            text("/openapi.json")
        );
        let tags: Vec<&str> = doc["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert_eq!(tags[..3], ["users", "auth", "chats"], "{tags:?}");
        // The user search is documented.
        let params = doc["paths"]["/api/v1/users"]["get"]["parameters"]
            .as_array()
            .expect("parameters");
        assert!(params.iter().any(|p| p["name"] == "q"), "{params:?}");
    }
}
