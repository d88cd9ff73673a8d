//! What the confab HTTP services (`confab-auth`, `confab-chat`) share, so it is written once:
//!
//! - [`http`]: the layers every service router gets (JSON 404/405 fallbacks, body limit, a
//!   panic answered as a JSON 500, request spans without query strings) and the shutdown signal.
//! - [`extract`]: axum's `Json`, `Form`, `Query` and `Path` with rejections in the services' JSON
//!   error shape ([`confab_token::ErrorBody`]) and axum's 4xx statuses.
//! - [`sql`]: the SQL pool setup (PostgreSQL or SQLite from one URL) and password redaction.
//! - [`openapi`]: the Bearer security scheme of the OpenAPI documents.
//! - [`server`]: the HTTP server with its connection limits, timeouts and security headers,
//!   and a lean path for events streams (`streaming`: no connection buffers while a stream
//!   waits).
//! - `test_support` (feature `test-support`): scratch databases and oneshot request helpers for
//!   the services' integration tests.
//!
//! What it deliberately does not hold: each service's `ApiError` (the variants and their
//! `Retry-After` rules differ), its store queries and error classification, its health checks
//! and its configuration. Both services' JSON error shape comes from `confab-token`.
#![warn(missing_docs)]

pub mod extract;
pub mod http;
pub mod openapi;
pub mod server;
pub mod sql;
mod streaming;
#[cfg(feature = "test-support")]
pub mod test_support;
