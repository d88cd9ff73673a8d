//! [`ApiError`]: every error the HTTP API answers with, as JSON `{ "error", "message" }`.
//!
//! Caller mistakes are 4xx with a stable code; a database that cannot be reached is 503 with
//! `Retry-After`; anything else is 500 and logged, with no internals in the body.

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_token::ErrorBody;

/// An error answered to an HTTP caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request could not be read (bad JSON, wrong types, missing or unknown fields, wrong
    /// content type, body too large, bad path or query). The status comes from the rejection.
    #[error("{message}")]
    BadRequest {
        /// 400, 413, 415 or 422.
        status: StatusCode,
        /// Stable code, e.g. `invalid_json`.
        code: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The username breaks a rule (422).
    #[error("{0}")]
    InvalidUsername(String),
    /// The password breaks a rule (422).
    #[error("{0}")]
    InvalidPassword(String),
    /// The username is taken (409).
    #[error("the username {0:?} is already taken")]
    UsernameTaken(String),
    /// Wrong username or password (401). Deliberately the same whether the user exists.
    #[error("wrong username or password")]
    InvalidCredentials,
    /// A refresh token or session that cannot be used (401).
    #[error("{message}")]
    Unauthorized {
        /// Stable code, e.g. `invalid_refresh_token`.
        code: &'static str,
        /// What happened and what to do.
        message: String,
    },
    /// Refused for who is asking or from where, or by a policy (403): sign-up closed, an
    /// invite missing or invalid, invites off.
    #[error("{message}")]
    Forbidden {
        /// Stable code, e.g. `cross_site`, `signup_closed`, `invite_required`, `invalid_invite`.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// Throttled (429).
    #[error("{message}")]
    TooManyRequests {
        /// Seconds until a new attempt can succeed.
        retry_after_secs: u64,
        /// Which limit was hit.
        message: String,
    },
    /// No such resource (404).
    #[error("{0}")]
    NotFound(String),
    /// The method is not served at this path (405).
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    /// The database cannot be reached (503).
    #[error("the user database is unavailable; try again shortly")]
    Unavailable,
    /// Every password hashing thread is busy and the queue is full (503 with `Retry-After`).
    #[error("too many sign-ups and logins at once; try again in a second")]
    Busy,
    /// A feature this server is not configured for (503, no `Retry-After`: retrying cannot
    /// help until its operator configures it).
    #[error("{message}")]
    NotConfigured {
        /// Stable code, e.g. `firebase_not_configured`.
        code: &'static str,
        /// What is missing and where to set it.
        message: String,
    },
    /// A bug or an unexpected backend answer (500); details are logged, not returned.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { status, .. } => *status,
            ApiError::InvalidUsername(_) | ApiError::InvalidPassword(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::UsernameTaken(_) => StatusCode::CONFLICT,
            ApiError::InvalidCredentials | ApiError::Unauthorized { .. } => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable | ApiError::Busy | ApiError::NotConfigured { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable `error` code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::InvalidUsername(_) => "invalid_username",
            ApiError::InvalidPassword(_) => "invalid_password",
            ApiError::UsernameTaken(_) => "username_taken",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::Unauthorized { code, .. } => code,
            ApiError::Forbidden { code, .. } => code,
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Unavailable => "unavailable",
            ApiError::Busy => "busy",
            ApiError::NotConfigured { code, .. } => code,
            ApiError::Internal => "internal",
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match err {
            StoreError::UsernameTaken(name) => ApiError::UsernameTaken(name),
            StoreError::InvalidInvite => crate::signup::invalid_invite(),
            StoreError::Unavailable(_) | StoreError::Connect { .. } => {
                tracing::warn!(error = %err, "The user database is unavailable.");
                ApiError::Unavailable
            }
            other => {
                tracing::error!(error = %other, "A user database query failed.");
                ApiError::Internal
            }
        }
    }
}

impl From<crate::password::PasswordError> for ApiError {
    fn from(err: crate::password::PasswordError) -> Self {
        match err {
            crate::password::PasswordError::Busy(_) => {
                tracing::warn!("Every password hashing thread is busy and the queue is full.");
                ApiError::Busy
            }
            other => {
                tracing::error!(error = %other, "Password hashing failed.");
                ApiError::Internal
            }
        }
    }
}

confab_service_kit::api_error_from_rejection!(ApiError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody::new(self.code(), self.to_string());
        let mut response = (status, Json(body)).into_response();
        let retry_after = match &self {
            ApiError::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::Unavailable | ApiError::Busy => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
