//! The extractors whose rejections are JSON errors (the services share them:
//! [`confab_service_kit::extract`]; a rejection becomes an [`ApiError`]), the chat id from the
//! path, and the caller of the events stream.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use confab_token::{AuthRejection, CurrentUser, TokenError};
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
