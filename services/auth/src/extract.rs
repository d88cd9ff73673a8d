//! Extractors whose rejections are JSON [`ApiError`]s, and the client address used for
//! throttling.
//!
//! axum's own `Json`, `Form`, `Query` and `Path` answer malformed input with plain-text bodies;
//! these wrappers keep axum's statuses (400 bad syntax, 422 wrong types or missing/unknown
//! fields, 415 wrong content type, 413 body too large) and put the explanation in the
//! services' JSON error shape.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::StatusCode;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// `axum::Json` with JSON rejections.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::Form` with JSON rejections.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Form), rejection(ApiError))]
pub struct ApiForm<T>(pub T);

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

/// The code for a body rejection, from its status.
fn body_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        _ => "bad_request",
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = match &rejection {
            JsonRejection::JsonSyntaxError(_) => "invalid_json",
            _ => body_code(status),
        };
        bad_request(status, code, rejection.body_text())
    }
}

impl From<FormRejection> for ApiError {
    fn from(rejection: FormRejection) -> Self {
        let status = rejection.status();
        bad_request(status, body_code(status), rejection.body_text())
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

/// The client's address as used for throttling: the peer's IP, or the configured proxy header.
/// IPv6 addresses are reduced to their /64 network, the block a single host usually controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// The throttling key: the IP (IPv6: its /64), or `unknown` without connection info.
    pub fn key(&self) -> String {
        match self.0 {
            Some(IpAddr::V4(ip)) => ip.to_string(),
            Some(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let network = u128::from(ip) & !((1u128 << 64) - 1);
                    format!("{}/64", Ipv6Addr::from(network))
                }
            },
            None => "unknown".to_owned(),
        }
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(header) = state.client_address_header() {
            // Only the last entry was written by our proxy; earlier ones come from the client.
            let forwarded = parts
                .headers
                .get_all(header)
                .iter()
                .next_back()
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.rsplit(',').next())
                .and_then(|last| last.trim().parse::<IpAddr>().ok());
            if forwarded.is_some() {
                return Ok(ClientAddr(forwarded));
            }
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(ClientAddr(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_grouped_by_their_64_network() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(ClientAddr(Some(a)).key(), ClientAddr(Some(b)).key());
        assert_ne!(ClientAddr(Some(a)).key(), ClientAddr(Some(c)).key());
        assert_eq!(ClientAddr(Some(a)).key(), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().expect("ip");
        assert_eq!(ClientAddr(Some(mapped)).key(), "10.1.2.3");
        assert_eq!(ClientAddr(None).key(), "unknown");
    }
}
