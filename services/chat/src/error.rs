//! [`ApiError`]: every error the HTTP API answers with, as JSON `{ "error", "message" }` (the
//! shape the auth service uses, [`ErrorBody`]).
//!
//! Caller mistakes are 4xx with a stable code; a backend that cannot be reached (the database,
//! the message log, the history store) is 503 with `Retry-After`; anything else is 500 and
//! logged, with no internals in the body.

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_token::ErrorBody;

/// The `Retry-After` sent with every 503: backends that are down usually come back within
/// seconds, and clients back off further on repeats.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;

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
    /// The request is well-formed but breaks a rule (422), e.g. `empty_message`,
    /// `message_too_long`, `invalid_time`, `invalid_quantity`, `invalid_peer`.
    #[error("{message}")]
    Invalid {
        /// Stable code naming the rule.
        code: &'static str,
        /// The rule and the offending value.
        message: String,
    },
    /// The caller is not a member of the chat (403).
    #[error("{0}")]
    Forbidden(String),
    /// One of the two people blocks the other (403 `blocked`). The message is the same
    /// whichever side blocked, so a blocked person learns only that they cannot write.
    #[error("you cannot start a chat with or send messages to this person")]
    Blocked,
    /// No such resource (404).
    #[error("{0}")]
    NotFound(String),
    /// The method is not served at this path (405).
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    /// A `client_message_id` was reused for a different message (409).
    #[error("{0}")]
    Conflict(String),
    /// A spam control refused the request (429).
    #[error("{message}")]
    TooManyRequests {
        /// Seconds until a new attempt can succeed.
        retry_after_secs: u64,
        /// Which limit was hit.
        message: String,
    },
    /// A backend is unavailable (503, `Retry-After: 1`); retrying later can help.
    #[error("{0} is unavailable; try again shortly")]
    Unavailable(&'static str),
    /// `/readyz`: a backend does not answer (503), with which and why.
    #[error("not ready: {0}")]
    NotReady(String),
    /// A bug or an unexpected backend answer (500); details are logged, not returned.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// A 422 naming the broken rule.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { status, .. } => *status,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Forbidden(_) | ApiError::Blocked => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable `error` code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } | ApiError::Invalid { code, .. } => code,
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Blocked => "blocked",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "idempotency_conflict",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Unavailable(_) | ApiError::NotReady(_) => "unavailable",
            ApiError::Internal => "internal",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::Unavailable(_) | ApiError::NotReady(_) => Some(UNAVAILABLE_RETRY_AFTER_SECS),
            _ => None,
        }
    }
}

confab_service_kit::api_error_from_rejection!(ApiError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody::new(self.code(), self.to_string());
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_retry_after_and_the_right_status() {
        let unavailable = ApiError::Unavailable("the message log").into_response();
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.headers()[RETRY_AFTER], "1");
        let limited = ApiError::TooManyRequests {
            retry_after_secs: 0,
            message: "slow down".into(),
        }
        .into_response();
        assert_eq!(limited.headers()[RETRY_AFTER], "1", "at least one second");
        let invalid = ApiError::invalid("empty_message", "the body is empty").into_response();
        assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(invalid.headers().get(RETRY_AFTER).is_none());
    }
}
