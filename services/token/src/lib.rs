//! Token validation shared by the services.
//!
//! The auth service signs JSON Web Tokens; every other service (chat first) checks them with this
//! crate, so the rules live in one place:
//!
//! - **The algorithm is pinned** by configuration ([`Algorithm::EdDSA`] or [`Algorithm::HS256`]).
//!   A token whose header names any other algorithm, `none` included, is refused before a key is
//!   touched, so a public Ed25519 key can never be replayed as an HMAC secret (algorithm
//!   confusion).
//! - **The key is chosen by `kid`** among the keys this verifier was given (a JWKS, a public key,
//!   or an HS256 secret of at least 256 bits). Keys named inside the token (`jwk`, `jku`, `x5u`)
//!   are never used, and a token with `crit` extensions is refused.
//! - **Time claims are checked** with a small leeway for clock skew: `exp` (expired), `nbf` (not
//!   yet valid), `iat` (not in the future, and `exp - iat` at most the configured lifetime);
//!   `iss`, `aud` and `sub` must be present and match.
//! - **Revoked sessions are refused** ([`Revocations`]): a token's `sid` names its login session,
//!   which logout, a password change or a reused refresh token revokes.
//! - **A token is parsed and its signature checked once**: the verifier remembers the tokens it
//!   accepted (by SHA-256, bounded), and checks their time claims and revocation on every use;
//!   replacing the keys forgets them.
//! - [`CurrentUser`] is an axum extractor: a handler that takes it only runs with a valid
//!   `Authorization: Bearer` token; otherwise the caller gets 401 with the services' JSON error
//!   shape ([`ErrorBody`]) and a `WWW-Authenticate` header.
//!
//! What it does not do: fetch a JWKS over HTTP (give the verifier the JWKS document or the public
//! key in configuration; a token naming an unknown `kid` makes it re-read the JWKS file, at most
//! once every [`KEY_REFRESH_INTERVAL`]).
//!
//! Crypto: `jsonwebtoken` with its pure-Rust backend, installed explicitly (see
//! [`install_crypto_provider`]) so that binaries which also link an `aws_lc_rs` user still work.
#![warn(missing_docs)]

mod cache;
mod claims;
mod config;
mod crypto;
mod error;
mod extract;
pub mod generations;
mod keys;
mod revocation;
mod secret;
mod verifier;

pub use claims::Claims;
pub use config::{
    Algorithm, VerifierConfig, DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEFAULT_LEEWAY_SECS,
    DEFAULT_MAX_LIFETIME_SECS,
};
pub use crypto::install_crypto_provider;
pub use error::{ErrorBody, KeyError, TokenError};
pub use extract::{AuthRejection, CurrentUser};
pub use keys::{
    ed25519_pkcs8_from_seed, ed25519_public_jwk_from_seed, hs256_key_id, publishable_jwk,
    MIN_HS256_SECRET_BYTES,
};
pub use revocation::{Revocations, Revoked};
pub use secret::Secret;
pub use verifier::{Expectations, TokenVerifier, KEY_REFRESH_INTERVAL};

/// The `jsonwebtoken` crate this one is built on, re-exported so the signer (the auth service)
/// and tests use the very same version.
pub use jsonwebtoken;

#[cfg(test)]
mod tests;
