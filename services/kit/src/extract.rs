//! Extractors whose rejections are in the services' JSON error shape.
//!
//! axum's own `Json`, `Form`, `Query` and `Path` answer malformed input with plain-text bodies;
//! these wrappers keep axum's statuses (400 bad syntax, 422 wrong types or missing/unknown
//! fields, 415 wrong content type, 413 body too large) and answer `{ "error", "message" }`
//! ([`ErrorBody`]) with a stable code: `invalid_json`, `invalid_body`, `unsupported_media_type`,
//! `payload_too_large`, `bad_request`, `invalid_query` or `invalid_path`. A path extractor that
//! does not fit its route is the service's bug: 500 `internal`, logged.
//!
//! Each service converts a [`Rejection`] into its own `ApiError` (`From<Rejection>`, written by
//! [`api_error_from_rejection!`](crate::api_error_from_rejection)), so its own extractors can
//! build on these with `?`.

use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_token::ErrorBody;

/// `axum::Json` with JSON rejections.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(Rejection))]
pub struct ApiJson<T>(pub T);

/// `axum::Form` with JSON rejections.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Form), rejection(Rejection))]
pub struct ApiForm<T>(pub T);

/// `axum::extract::Query` with JSON rejections.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Rejection))]
pub struct ApiQuery<T>(pub T);

/// `axum::extract::Path` with JSON rejections.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Rejection))]
pub struct ApiPath<T>(pub T);

/// Why one of these extractors refused a request.
///
/// Exhaustive on purpose: each service maps every case onto its own `ApiError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The request could not be read; the status comes from axum's rejection.
    #[error("{message}")]
    BadRequest {
        /// 400, 413, 415 or 422.
        status: StatusCode,
        /// Stable code, e.g. `invalid_json`.
        code: &'static str,
        /// What was wrong.
        message: String,
    },
    /// A path extractor does not fit its route (500); logged, not explained to the caller.
    #[error("internal error")]
    Internal,
}

/// Implements `From<Rejection>` for a service's `ApiError` enum, whose variants
/// `BadRequest { status, code, message }` and `Internal` mirror [`Rejection`]'s. The match is
/// exhaustive in each service, so a new kind of rejection must be handled by both.
#[macro_export]
macro_rules! api_error_from_rejection {
    ($api_error:ty) => {
        impl From<$crate::extract::Rejection> for $api_error {
            fn from(rejection: $crate::extract::Rejection) -> Self {
                match rejection {
                    $crate::extract::Rejection::BadRequest {
                        status,
                        code,
                        message,
                    } => Self::BadRequest {
                        status,
                        code,
                        message,
                    },
                    $crate::extract::Rejection::Internal => Self::Internal,
                }
            }
        }
    };
}

impl Rejection {
    fn bad_request(status: StatusCode, code: &'static str, message: String) -> Self {
        Rejection::BadRequest {
            status,
            code,
            message,
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Rejection::BadRequest { status, code, .. } => (*status, *code),
            Rejection::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        (status, Json(ErrorBody::new(code, self.to_string()))).into_response()
    }
}

/// The code for a body rejection, from its status.
fn body_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        _ => "bad_request",
    }
}

impl From<JsonRejection> for Rejection {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = match &rejection {
            JsonRejection::JsonSyntaxError(_) => "invalid_json",
            _ => body_code(status),
        };
        Rejection::bad_request(status, code, rejection.body_text())
    }
}

impl From<FormRejection> for Rejection {
    fn from(rejection: FormRejection) -> Self {
        let status = rejection.status();
        Rejection::bad_request(status, body_code(status), rejection.body_text())
    }
}

impl From<QueryRejection> for Rejection {
    fn from(rejection: QueryRejection) -> Self {
        Rejection::bad_request(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            rejection.body_text(),
        )
    }
}

impl From<PathRejection> for Rejection {
    fn from(rejection: PathRejection) -> Self {
        let status = rejection.status();
        if status.is_server_error() {
            // A route/extractor mismatch is our bug, not the caller's.
            tracing::error!(rejection = %rejection.body_text(), "A path extractor does not fit its route.");
            return Rejection::Internal;
        }
        Rejection::bad_request(status, "invalid_path", rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_answers_the_json_error_shape_with_its_status() {
        let response = Rejection::bad_request(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "too big".into(),
        )
        .into_response();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            response.headers()[axum::http::header::CONTENT_TYPE],
            "application/json"
        );
        assert_eq!(
            Rejection::Internal.into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
