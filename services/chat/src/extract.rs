//! Extractors whose rejections are JSON [`ApiError`]s, and the caller of the events stream.
//!
//! axum's own `Json`, `Query` and `Path` answer malformed input with plain-text bodies; these
//! wrappers keep axum's statuses (400 bad syntax, 422 wrong types or missing/unknown fields, 415
//! wrong content type, 413 body too large) and put the explanation in the services' JSON error
//! shape. They mirror the auth service's `extract` module; the two could move into
//! `confab-token` together.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use confab_token::{AuthRejection, CurrentUser, TokenError};
use uuid::Uuid;

/// `axum::Json` with JSON rejections.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Query` with JSON rejections.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `axum::extract::Path` with JSON rejections.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

fn bad_request(status: StatusCode, code: &'static str, message: String) -> ApiError {
    ApiError::BadRequest {
        status,
        code,
        message,
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = match (&rejection, status) {
            (JsonRejection::JsonSyntaxError(_), _) => "invalid_json",
            (_, StatusCode::PAYLOAD_TOO_LARGE) => "payload_too_large",
            (_, StatusCode::UNSUPPORTED_MEDIA_TYPE) => "unsupported_media_type",
            (_, StatusCode::UNPROCESSABLE_ENTITY) => "invalid_body",
            _ => "bad_request",
        };
        bad_request(status, code, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        bad_request(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            rejection.body_text(),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        let status = rejection.status();
        if status.is_server_error() {
            // A route/extractor mismatch is our bug, not the caller's.
            tracing::error!(rejection = %rejection.body_text(), "A path extractor does not fit its route.");
            return ApiError::Internal;
        }
        bad_request(status, "invalid_path", rejection.body_text())
    }
}

/// A chat id from the path: a UUID, or 400 `invalid_path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatIdPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for ChatIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ApiPath(raw) = ApiPath::<String>::from_request_parts(parts, state).await?;
        Uuid::parse_str(&raw).map(ChatIdPath).map_err(|_| {
            bad_request(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                format!("{raw:?} is not a chat id (a UUID)"),
            )
        })
    }
}

/// The caller of the events stream: from `Authorization: Bearer`, or, because a browser's
/// `EventSource` cannot send headers, from an `access_token` query parameter. The header wins
/// when both are present. Tokens in URLs can end up in proxy logs: prefer the header where the
/// client can send one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamUser(pub CurrentUser);

/// Why [`StreamUser`] refused a request: the same 401 as [`CurrentUser`].
#[derive(Debug)]
pub struct StreamRejection(AuthRejection);

impl IntoResponse for StreamRejection {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl FromRequestParts<AppState> for StreamUser {
    type Rejection = StreamRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(AUTHORIZATION) {
            return CurrentUser::from_request_parts(parts, state)
                .await
                .map(StreamUser)
                .map_err(StreamRejection);
        }
        let token = parts.uri.query().and_then(|query| {
            query.split('&').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                (name == "access_token").then_some(value)
            })
        });
        let Some(token) = token else {
            return Err(StreamRejection(AuthRejection::Missing));
        };
        // A JWT is base64url and dots: nothing to percent-decode in a well-formed one.
        if token.is_empty() {
            return Err(StreamRejection(AuthRejection::NotBearer));
        }
        let claims = state
            .verifier()
            .verify(token)
            .map_err(|err: TokenError| StreamRejection(AuthRejection::Invalid(err)))?;
        Ok(StreamUser(CurrentUser {
            id: claims.user_id,
            username: claims.username.clone(),
            claims,
        }))
    }
}
