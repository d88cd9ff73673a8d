//! Who may sign up (`[signup] mode`), and invite codes (`POST /api/v1/invites`).
//!
//! - `open` (default): anybody may sign up; an `invite` field, if sent, is ignored.
//! - `invite`: sign-up needs an `invite` code that a signed-in user created, unused and
//!   unexpired: 403 `invite_required` without one, 403 `invalid_invite` for an unknown, used or
//!   expired one (one message for the three, so codes cannot be probed for their state). The
//!   code is used in the same transaction that creates the account, so it makes exactly one
//!   account even when two sign-ups race for it.
//! - `closed`: 403 `signup_closed`.
//!
//! The first user from the configuration is seeded in every mode (it does not go through the
//! HTTP sign-up). An invite code is 256 random bits (43 characters, base64url); only its
//! SHA-256 is stored, and each user may hold `max_unused_invites_per_user` unused, unexpired
//! invites at once.

use crate::config::SignupMode;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, SubsecRound, Utc};
use confab_token::{CurrentUser, ErrorBody};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// Longest `invite` accepted; real codes are 43 characters.
const MAX_INVITE_CHARS: usize = 128;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/invites", post(create_invite))
}

/// A new invite code. Shown once: the service keeps only its hash.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct InviteResponse {
    /// The code to hand to the invited person, who sends it as `invite` when signing up.
    pub code: String,
    /// When the code stops working (RFC 3339).
    pub expires_at: DateTime<Utc>,
}

// Hand-written: the code is a credential and stays out of logs.
impl std::fmt::Debug for InviteResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteResponse")
            .field("code", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The SHA-256 of an invite code, the form in which it is stored.
pub(crate) fn hash_code(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

/// Decides whether a sign-up may go ahead under the configured mode; returns the hash of the
/// invite to use with it (`invite` mode only).
pub(crate) fn admit(mode: SignupMode, invite: Option<&str>) -> Result<Option<[u8; 32]>, ApiError> {
    match mode {
        SignupMode::Open => Ok(None),
        SignupMode::Closed => Err(ApiError::Forbidden {
            code: "signup_closed",
            message: "sign-up is closed on this server; ask its operator for an account".into(),
        }),
        SignupMode::Invite => match invite {
            None => Err(ApiError::Forbidden {
                code: "invite_required",
                message: "sign-up on this server needs an invite: send the code a member gave \
                          you as \"invite\""
                    .into(),
            }),
            Some(code) if code.is_empty() || code.chars().count() > MAX_INVITE_CHARS => {
                Err(invalid_invite())
            }
            Some(code) => Ok(Some(hash_code(code))),
        },
    }
}

/// 403 `invalid_invite`: the same for an unknown, used or expired code.
pub(crate) fn invalid_invite() -> ApiError {
    ApiError::Forbidden {
        code: "invalid_invite",
        message: "this invite code is unknown, used or expired; ask for a new one".into(),
    }
}

/// Create an invite code (only in `[signup] mode = "invite"`).
#[utoipa::path(
    post,
    path = "/api/v1/invites",
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "A new single-use code; shown only this once", body = InviteResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "`invites_disabled`: the sign-up mode is not `invite`; or `forbidden`: the caller's account does not exist", body = ErrorBody),
        (status = 422, description = "`too_many_invites`: the caller holds the most unused invites allowed", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn create_invite(
    user: CurrentUser,
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<InviteResponse>), ApiError> {
    let config = state.signup_config();
    if config.mode != SignupMode::Invite {
        return Err(ApiError::Forbidden {
            code: "invites_disabled",
            message: format!(
                "this server's sign-up mode is {:?}, so invites are not used; they work with \
                 [signup] mode = \"invite\"",
                config.mode.as_str()
            ),
        });
    }
    let store = state.store();
    if store.find_by_id(user.id).await?.is_none() {
        return Err(ApiError::Forbidden {
            code: "forbidden",
            message: "your account does not exist (any more); log in again".into(),
        });
    }
    let now = Utc::now().trunc_subsecs(6);
    let max = config.max_unused_invites_per_user;
    if store.count_open_invites(user.id, now).await? >= u64::from(max) {
        return Err(ApiError::BadRequest {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "too_many_invites",
            message: format!(
                "you hold {max} unused invites, the most allowed; wait until one is used or \
                 expires"
            ),
        });
    }
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|err| {
        tracing::error!(error = %err, "No randomness for an invite code.");
        ApiError::Internal
    })?;
    let code = URL_SAFE_NO_PAD.encode(random);
    let secs = i64::try_from(config.invite_expiry_secs).unwrap_or(i64::MAX);
    let expires_at = now + chrono::Duration::seconds(secs);
    store
        .insert_invite(&hash_code(&code), user.id, now, expires_at)
        .await?;
    tracing::info!(created_by = %user.id, %expires_at, "Created an invite.");
    Ok((
        StatusCode::CREATED,
        Json(InviteResponse { code, expires_at }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_admits_what_it_should() {
        assert!(matches!(admit(SignupMode::Open, None), Ok(None)));
        assert!(matches!(admit(SignupMode::Open, Some("x")), Ok(None)));
        let code = |r: Result<Option<[u8; 32]>, ApiError>| r.map_err(|e| e.code());
        assert_eq!(code(admit(SignupMode::Closed, None)), Err("signup_closed"));
        assert_eq!(
            code(admit(SignupMode::Closed, Some("x"))),
            Err("signup_closed")
        );
        assert_eq!(
            code(admit(SignupMode::Invite, None)),
            Err("invite_required")
        );
        assert_eq!(
            code(admit(SignupMode::Invite, Some(""))),
            Err("invalid_invite")
        );
        assert_eq!(
            code(admit(SignupMode::Invite, Some(&"x".repeat(129)))),
            Err("invalid_invite")
        );
        assert_eq!(
            code(admit(SignupMode::Invite, Some("abc"))),
            Ok(Some(hash_code("abc")))
        );
    }

    #[test]
    fn an_invite_response_does_not_show_its_code_in_debug() {
        let response = InviteResponse {
            code: "s3cr3t-invite-code-0123456789".into(),
            expires_at: Utc::now(),
        };
        let text = format!("{response:?}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}
