//! The claims the auth service puts in an access token, and that verifiers read back.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The payload of a confab access token.
///
/// `sub` and `user_id` carry the same id: `sub` is the registered JWT claim, `user_id` is the name
/// the original system's services read. Unknown extra claims are ignored so that the issuer can
/// add claims without breaking older verifiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user's id, as a string.
    pub sub: String,
    /// The user's id (same value as `sub`).
    pub user_id: Uuid,
    /// The user's name at the time the token was issued.
    pub username: String,
    /// Issuer, e.g. `confab-auth`.
    pub iss: String,
    /// Audience, e.g. `confab`.
    pub aud: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Not valid before, seconds since the Unix epoch.
    pub nbf: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
    /// Unique token id, so that a denylist can name one token.
    pub jti: Uuid,
    /// The login session the token belongs to: logout, a password change or a reused refresh
    /// token revokes it ([`Revocations`](crate::Revocations)). Absent in tokens minted outside a
    /// session (tests, other issuers); those cannot be revoked before they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
}
