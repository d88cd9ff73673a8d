//! Errors of token verification and key loading, and the JSON error body the services share.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The JSON body of every error response of the confab services:
/// `{ "error": "<stable code>", "message": "<what went wrong and how to fix it>" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// A stable, machine-readable code, e.g. `invalid_token`.
    pub error: String,
    /// A human-readable explanation.
    pub message: String,
}

impl ErrorBody {
    /// Builds a body from a code and a message.
    pub fn new(error: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            message: message.into(),
        }
    }
}

/// Why a token was refused. Every variant means 401 for an HTTP caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three base64url parts with a JSON header, or an unknown algorithm name such as `none`.
    #[error("the token is malformed")]
    Malformed,
    /// The header names an algorithm other than the pinned one.
    #[error("the token is signed with {found}, but only {expected} is accepted")]
    AlgorithmNotAllowed {
        /// The algorithm in the token header.
        found: String,
        /// The pinned algorithm.
        expected: String,
    },
    /// The header has no `kid`.
    #[error("the token header has no key id (kid)")]
    MissingKeyId,
    /// No key with this `kid` is known.
    #[error("the token's key id {kid:?} is not a known key")]
    UnknownKeyId {
        /// The `kid` in the token header.
        kid: String,
    },
    /// The header lists critical extensions, none of which this verifier understands.
    #[error("the token uses critical header extensions, which are not supported")]
    UnsupportedCritical,
    /// The signature does not match the content and key.
    #[error("the token signature is invalid")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The token's session was revoked (logout, password change, a reused refresh token).
    #[error("the token was revoked: log in again")]
    Revoked,
    /// `iat` is in the future, or `exp - iat` is longer than the verifier allows.
    #[error("the token's lifetime is not acceptable: {0}")]
    Lifetime(String),
    /// A required claim is missing or wrong (`iss`, `aud`, `sub`, ...).
    #[error("the token claims are invalid: {0}")]
    InvalidClaims(String),
}

impl TokenError {
    pub(crate) fn from_jwt(err: &jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind;
        match err.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidIssuer => TokenError::InvalidClaims("unexpected issuer (iss)".into()),
            ErrorKind::InvalidAudience => {
                TokenError::InvalidClaims("unexpected audience (aud)".into())
            }
            ErrorKind::InvalidSubject => {
                TokenError::InvalidClaims("unexpected subject (sub)".into())
            }
            ErrorKind::MissingRequiredClaim(claim) => {
                TokenError::InvalidClaims(format!("missing claim {claim}"))
            }
            ErrorKind::InvalidClaimFormat(claim) => {
                TokenError::InvalidClaims(format!("claim {claim} has the wrong format"))
            }
            // The payload decoded but does not fit `Claims` (wrong type, missing field).
            ErrorKind::Json(_) => TokenError::InvalidClaims("the claims do not match".into()),
            _ => TokenError::Malformed,
        }
    }
}

/// Why a verifier (or signer) could not be built from its keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key file could not be read.
    #[error("cannot read key file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key material is not what the configured algorithm needs.
    #[error("invalid key {what}: {reason}")]
    Invalid {
        /// Which key (a file name or a config field).
        what: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The configuration names no key, several, or one that does not fit the algorithm.
    #[error("token verifier configuration: {0}")]
    Config(String),
}
