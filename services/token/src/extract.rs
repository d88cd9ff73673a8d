//! [`CurrentUser`]: the axum extractor that turns a Bearer token into the calling user.

use crate::{Claims, ErrorBody, TokenError, TokenVerifier};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;
use uuid::Uuid;

/// The user a request is made by, from a valid `Authorization: Bearer <token>` header.
///
/// Any state `S` with `Arc<TokenVerifier>: FromRef<S>` works, so each service keeps its own state
/// type. A request without a valid token never reaches the handler: it gets 401 with a JSON
/// [`ErrorBody`] (`missing_token` or `invalid_token`) and `WWW-Authenticate: Bearer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser {
    /// The user's id.
    pub id: Uuid,
    /// The user's name when the token was issued.
    pub username: String,
    /// All claims of the token.
    pub claims: Claims,
}

impl<S> FromRequestParts<S> for CurrentUser
where
    S: Send + Sync,
    Arc<TokenVerifier>: FromRef<S>,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<TokenVerifier>::from_ref(state);
        let token = bearer_token(parts)?;
        let claims = verifier.verify(token).map_err(AuthRejection::Invalid)?;
        Ok(CurrentUser {
            id: claims.user_id,
            username: claims.username.clone(),
            claims,
        })
    }
}

fn bearer_token(parts: &Parts) -> Result<&str, AuthRejection> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(AuthRejection::Missing)?;
    let value = value.to_str().map_err(|_| AuthRejection::NotBearer)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthRejection::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthRejection::NotBearer);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthRejection::NotBearer);
    }
    Ok(token)
}

/// Why [`CurrentUser`] refused a request. Always answered with 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No `Authorization` header.
    #[error("this endpoint needs an Authorization: Bearer <token> header; log in to get a token")]
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    #[error("the Authorization header must be `Bearer <token>`")]
    NotBearer,
    /// A Bearer token that failed verification.
    #[error("{0}")]
    Invalid(TokenError),
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let (code, challenge) = match &self {
            AuthRejection::Missing => ("missing_token", "Bearer"),
            AuthRejection::NotBearer => ("invalid_token", "Bearer error=\"invalid_request\""),
            AuthRejection::Invalid(_) => ("invalid_token", "Bearer error=\"invalid_token\""),
        };
        if let AuthRejection::Invalid(reason) = &self {
            tracing::debug!(%reason, "Refused a bearer token.");
        }
        let mut response = (
            StatusCode::UNAUTHORIZED,
            Json(ErrorBody::new(code, self.to_string())),
        )
            .into_response();
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        response
    }
}
