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
    let mut doc = confab_auth::ApiDoc::openapi();
    doc.merge(confab_chat::ApiDoc::openapi());
    doc.merge(UpDoc::openapi());
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
        // The user search is documented.
        let params = doc["paths"]["/api/v1/users"]["get"]["parameters"]
            .as_array()
            .expect("parameters");
        assert!(params.iter().any(|p| p["name"] == "q"), "{params:?}");
    }
}
