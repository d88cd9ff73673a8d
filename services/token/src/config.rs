//! How a service tells the verifier which tokens to accept.
//!
//! Exactly one key source must be given and it must fit the pinned algorithm: `jwks_file` or
//! `public_key_pem_file` for EdDSA, `hs256_secret` for HS256. [`TokenVerifier::from_config`]
//! checks this and says which field to fix.
//!
//! [`TokenVerifier::from_config`]: crate::TokenVerifier::from_config

use crate::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The issuer the auth service writes into `iss` unless configured otherwise.
pub const DEFAULT_ISSUER: &str = "confab-auth";
/// The audience the auth service writes into `aud` unless configured otherwise.
pub const DEFAULT_AUDIENCE: &str = "confab";
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Longest `exp - iat` a verifier accepts unless configured otherwise, in seconds.
pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 3600;

/// The one signature algorithm a deployment uses. Tokens naming another are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Algorithm {
    /// Ed25519 signatures (RFC 8037): verifiers need only the public key.
    #[default]
    EdDSA,
    /// HMAC-SHA256 with a shared secret of at least 256 bits: every verifier can also sign.
    HS256,
}

impl Algorithm {
    /// The matching `jsonwebtoken` algorithm.
    pub fn to_jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
        }
    }
}

/// Configuration of a [`TokenVerifier`](crate::TokenVerifier), e.g. the `[auth]` table of the chat
/// service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifierConfig {
    /// The only algorithm accepted (`"EdDSA"` or `"HS256"`).
    #[serde(default)]
    pub algorithm: Algorithm,
    /// EdDSA: a JWKS document (as served by the auth service at `/.well-known/jwks.json`) holding
    /// the Ed25519 public keys, each with its `kid`.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// EdDSA: one Ed25519 public key in PEM (`-----BEGIN PUBLIC KEY-----`); its `kid` is its RFC
    /// 7638 thumbprint, as the auth service computes it.
    #[serde(default)]
    pub public_key_pem_file: Option<PathBuf>,
    /// HS256: the shared secret, at least 32 bytes of random data (e.g. `openssl rand -base64 32`);
    /// never a human-chosen password.
    #[serde(default)]
    pub hs256_secret: Option<Secret>,
    /// Expected `iss` claim.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// Expected `aud` claim.
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: u64,
    /// Longest lifetime (`exp - iat`) of an accepted token, in seconds: a token minted with a
    /// longer one (a leaked signing key, a misconfigured issuer) is refused.
    #[serde(default = "default_max_lifetime_secs")]
    pub max_lifetime_secs: u64,
    /// The auth service's list of revoked sessions
    /// (`http://<auth>/api/v1/auth/revocations`), polled every second by a service that runs
    /// apart from the auth service, so logout and password changes reach it (its open event
    /// streams end). Unset: tokens of a revoked session are accepted here until they expire
    /// (minutes). `confab up` shares the auth service's list in-process and needs none.
    #[serde(default)]
    pub revocations_url: Option<String>,
}

fn default_max_lifetime_secs() -> u64 {
    DEFAULT_MAX_LIFETIME_SECS
}

fn default_issuer() -> String {
    DEFAULT_ISSUER.to_owned()
}

fn default_audience() -> String {
    DEFAULT_AUDIENCE.to_owned()
}

fn default_leeway_secs() -> u64 {
    DEFAULT_LEEWAY_SECS
}
