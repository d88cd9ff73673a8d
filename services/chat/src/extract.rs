//! The extractors whose rejections are JSON errors (the services share them:
//! [`confab_service_kit::extract`]; a rejection becomes an [`ApiError`]), the chat id from the
//! path, and the caller of the events stream.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use confab_token::{AuthRejection, CurrentUser};
use uuid::Uuid;

pub use confab_service_kit::extract::{ApiJson, ApiPath, ApiQuery};

/// A chat id from the path: a UUID, or 400 `invalid_path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatIdPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for ChatIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ApiPath(raw) = ApiPath::<String>::from_request_parts(parts, state).await?;
        Uuid::parse_str(&raw)
            .map(ChatIdPath)
            .map_err(|_| ApiError::BadRequest {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_path",
                message: format!("{raw:?} is not a chat id (a UUID)"),
            })
    }
}

/// The caller of a per-chat events stream, from `Authorization: Bearer` only. An
/// `access_token` query parameter is refused (401 `token_in_url`) even next to a valid header: a
/// token in a URL ends up in proxy and CDN logs. Browsers read the stream with `fetch`, which
/// sends the header (the web client does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamUser(pub CurrentUser);

/// Why [`StreamUser`] refused a request: always 401.
#[derive(Debug)]
pub enum StreamRejection {
    /// The same refusals as [`CurrentUser`].
    Auth(AuthRejection),
    /// The URL carries an `access_token`.
    TokenInUrl,
}

impl IntoResponse for StreamRejection {
    fn into_response(self) -> Response {
        match self {
            StreamRejection::Auth(rejection) => rejection.into_response(),
            StreamRejection::TokenInUrl => {
                let mut response = (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(confab_token::ErrorBody::new(
                        "token_in_url",
                        "access tokens are not accepted in URLs (they end up in logs): send \
                         Authorization: Bearer <token>, e.g. with fetch() instead of EventSource",
                    )),
                )
                    .into_response();
                response.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer error=\"invalid_request\""),
                );
                response
            }
        }
    }
}

impl FromRequestParts<AppState> for StreamUser {
    type Rejection = StreamRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let in_url = parts.uri.query().is_some_and(|query| {
            query
                .split('&')
                .any(|pair| pair.split('=').next() == Some("access_token"))
        });
        if in_url {
            return Err(StreamRejection::TokenInUrl);
        }
        CurrentUser::from_request_parts(parts, state)
            .await
            .map(StreamUser)
            .map_err(StreamRejection::Auth)
    }
}
