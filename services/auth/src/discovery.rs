//! Documents describing the service: `/openapi.json` (every endpoint, generated from the
//! handlers' annotations so it cannot drift from the code) and `/.well-known/jwks.json` (the
//! public keys that verify our tokens).

use crate::firebase::FirebaseTokenResponse;
use crate::health::Status;
use crate::login::{LoginForm, LoginRequest, TokenResponse};
use crate::sessions::{PasswordChange, RefreshRequest, RevocationList};
use crate::signup::InviteResponse;
use crate::users::{NewUser, UserPage, UserView};
use crate::AppState;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use confab_service_kit::openapi::BearerAuth;
use confab_token::{ErrorBody, Revoked};
use utoipa::OpenApi;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/.well-known/jwks.json", get(jwks))
}

/// The OpenAPI document of the auth service.
#[derive(OpenApi)]
#[openapi(
    info(title = "confab auth", description = "Users, login and JWT access tokens."),
    paths(
        crate::users::create_user,
        crate::signup::create_invite,
        crate::users::list_users,
        crate::users::get_user,
        crate::login::login,
        crate::sessions::refresh,
        crate::sessions::logout,
        crate::sessions::change_password,
        crate::sessions::revocations,
        crate::firebase::firebase_token,
        crate::health::healthz,
        crate::health::readyz,
        openapi_json,
        jwks,
    ),
    components(schemas(
        NewUser, InviteResponse, UserView, UserPage, LoginRequest, LoginForm, TokenResponse,
        FirebaseTokenResponse, Status, ErrorBody, RefreshRequest, PasswordChange, RevocationList,
        Revoked
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "users", description = "Sign-up and the user directory"),
        (name = "auth", description = "Login, sessions (refresh, logout, password change, revocations), token keys and the Firebase token"),
        (name = "health", description = "Liveness and readiness"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// The public keys (JWKS, RFC 7517) that verify access tokens, selected by the token's `kid`.
/// Empty when tokens are HS256 (a shared secret is never published).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "JWK set", content_type = "application/json")))]
pub(crate) async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CACHE_CONTROL, "public, max-age=300")],
        Json(state.signer().jwks().clone()),
    )
}
