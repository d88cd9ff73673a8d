//! Login sessions: short access tokens, rotating refresh tokens, logout, password change, and
//! the list of revoked sessions other services copy.
//!
//! - A login starts a session and answers an access token (minutes, `jwt.expiry_secs`) naming
//!   it (`sid`) and a refresh token (`jwt.refresh_expiry_secs`, 30 days by default).
//! - `POST /api/v1/auth/refresh` exchanges a refresh token for a new pair; the old one is used
//!   up. Presenting a used one again means two parties hold it (one stole it): the whole session
//!   is revoked, and both have to log in again (RFC 9700 §4.14.2, refresh token rotation).
//! - `POST /api/v1/auth/logout` revokes the caller's session; `POST /api/v1/users/me/password`
//!   changes the password and revokes every session of the user, then starts a new one for the
//!   caller.
//! - A revoked session's access tokens are refused at once by every verifier sharing this
//!   process's [`Revocations`] (the chat service in `confab up`), whose open event streams end
//!   within a second; other processes copy the list from `GET /api/v1/auth/revocations`.
//!
//! Refresh tokens are 256 random bits; only their SHA-256 is stored.

use crate::error::ApiError;
use crate::extract::{ApiJson, ClientAddr};
use crate::login::TokenResponse;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use confab_token::{CurrentUser, ErrorBody, Revoked};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use utoipa::ToSchema;
use uuid::Uuid;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/revocations", get(revocations))
        .route("/api/v1/users/me/password", post(change_password))
}

/// A refresh token and its stored hash.
pub(crate) struct RefreshToken {
    token: String,
    hash: [u8; 32],
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(***)")
    }
}

impl RefreshToken {
    fn new() -> Result<Self, ApiError> {
        let mut bytes = [0_u8; 32];
        getrandom::fill(&mut bytes).map_err(|err| {
            tracing::error!(error = %err, "The operating system gave no random bytes.");
            ApiError::Internal
        })?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let hash = hash(&token);
        Ok(Self { token, hash })
    }
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl AppState {
    /// Starts a session for the user and answers its first token pair.
    pub(crate) async fn start_session(
        &self,
        user: Uuid,
        username: String,
    ) -> Result<TokenResponse, ApiError> {
        let refresh = RefreshToken::new()?;
        let expires_at = chrono::Utc::now() + self.inner.refresh_expiry;
        let session = self
            .store()
            .create_session(user, expires_at, &refresh.hash)
            .await?;
        self.token_pair(user, username, session, refresh)
    }

    fn token_pair(
        &self,
        user: Uuid,
        username: String,
        session: Uuid,
        refresh: RefreshToken,
    ) -> Result<TokenResponse, ApiError> {
        let issued = self
            .signer()
            .issue(user, &username, session)
            .map_err(|err| {
                tracing::error!(error = %err, "Signing a token failed.");
                ApiError::Internal
            })?;
        Ok(TokenResponse {
            access_token: issued.token,
            token_type: "Bearer".to_owned(),
            expires_in: issued.expires_in,
            refresh_token: refresh.token,
            refresh_expires_in: self
                .inner
                .refresh_expiry
                .num_seconds()
                .max(0)
                .unsigned_abs(),
            id: user,
            username,
        })
    }

    /// Refuses the session's access tokens from now on, here and in every process that copies
    /// the list.
    pub(crate) fn revoke(&self, user: Uuid, session: Uuid) {
        let until =
            confab_token::jsonwebtoken::get_current_timestamp() + self.inner.access_lifetime_secs;
        self.verifier().revocations().revoke(Revoked {
            session,
            user,
            until,
        });
    }
}

/// A refresh request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token of the last login or refresh.
    pub refresh_token: String,
}

impl fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshRequest { refresh_token: *** }")
    }
}

/// A token response must never be cached (RFC 6749 §5.1).
pub(crate) fn no_store(body: TokenResponse) -> Response {
    (
        [
            (axum::http::header::CACHE_CONTROL, "no-store"),
            (axum::http::header::PRAGMA, "no-cache"),
        ],
        Json(body),
    )
        .into_response()
}

/// Exchange a refresh token for a new access token and refresh token.
///
/// The refresh token given is used up. Presenting it again revokes the whole session (someone
/// else holds a copy): log in again.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair (never cached)", body = TokenResponse),
        (status = 401, description = "`invalid_refresh_token` (unknown, expired or revoked) or `refresh_token_reused` (the session is now revoked)", body = ErrorBody),
        (status = 422, description = "A field is missing or unknown", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    use crate::store::Rotation;
    let next = RefreshToken::new()?;
    match state
        .store()
        .rotate_refresh(&hash(&body.refresh_token), &next.hash)
        .await?
    {
        Rotation::Rotated {
            session,
            user,
            username,
        } => Ok(no_store(state.token_pair(user, username, session, next)?)),
        Rotation::Reused { session, user } => {
            state.store().revoke_session(user, session).await?;
            state.revoke(user, session);
            tracing::warn!(%user, %session, "A used refresh token came back: revoked its session.");
            Err(ApiError::Unauthorized {
                code: "refresh_token_reused",
                message: "this refresh token was used before, so its session is revoked: log in \
                          again"
                    .into(),
            })
        }
        Rotation::Ended | Rotation::Unknown => Err(ApiError::Unauthorized {
            code: "invalid_refresh_token",
            message: "the refresh token is unknown, expired or revoked: log in again".into(),
        }),
    }
}

/// Log out: revoke this token's session (its refresh token and every access token of it).
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session is revoked; its open event streams end"),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn logout(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<StatusCode, ApiError> {
    if let Some(session) = user.claims.sid {
        state.store().revoke_session(user.id, session).await?;
        state.revoke(user.id, session);
        tracing::info!(user_id = %user.id, "A user logged out.");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A password change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password now.
    pub current_password: String,
    /// The new password (same rules as at sign-up).
    pub new_password: String,
}

impl fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordChange { current_password: ***, new_password: *** }")
    }
}

/// Change the password: every session of the user is revoked (other devices are logged out,
/// their streams end), and the caller gets a new session.
#[utoipa::path(
    post,
    path = "/api/v1/users/me/password",
    tag = "auth",
    security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 200, description = "Changed; a new token pair for this device (never cached)", body = TokenResponse),
        (status = 401, description = "Missing or invalid token, or the current password is wrong", body = ErrorBody),
        (status = 422, description = "The new password breaks a rule", body = ErrorBody),
        (status = 429, description = "Too many wrong current passwords", body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    client: ClientAddr,
    user: CurrentUser,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<Response, ApiError> {
    let record = state
        .store()
        .find_by_username(&user.username)
        .await?
        .filter(|record| record.id == user.id)
        .ok_or(ApiError::Unauthorized {
            code: "invalid_token",
            message: "this token's user no longer exists".into(),
        })?;
    // The same per-(name, address) backoff as login: a stolen access token must not become a
    // fast way to guess the password.
    let attempt = crate::login::Attempt::start(&state, &record.username, &client)?;
    // A busy hashing pool answers 503 with Retry-After (see `ApiError`'s `From`).
    let matches = state
        .passwords()
        .verify(body.current_password, Some(record.password_hash))
        .await?;
    if !matches {
        return Err(ApiError::InvalidCredentials);
    }
    attempt.succeeded();
    state
        .passwords()
        .check_rules_for(&body.new_password, &[&record.username])
        .map_err(ApiError::InvalidPassword)?;
    let hash = state.passwords().hash(body.new_password).await?;
    state.store().update_password(user.id, &hash).await?;
    for session in state.store().revoke_user_sessions(user.id).await? {
        state.revoke(user.id, session);
    }
    if let Some(session) = user.claims.sid {
        // Sessions the store no longer lists (expired) still have live access tokens.
        state.revoke(user.id, session);
    }
    tracing::info!(user_id = %user.id, "A user changed their password; every session is revoked.");
    let pair = state.start_session(user.id, record.username).await?;
    Ok(no_store(pair))
}

/// The sessions revoked within the last access-token lifetime.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RevocationList {
    /// Each revoked session, its user, and when its last token expires anyway.
    pub revoked: Vec<Revoked>,
}

/// The revoked sessions whose access tokens could still be unexpired. A verifier in another
/// process (a standalone chat service) polls it to refuse them too.
#[utoipa::path(
    get,
    path = "/api/v1/auth/revocations",
    tag = "auth",
    responses((status = 200, description = "The list", body = RevocationList))
)]
pub(crate) async fn revocations(State(state): State<AppState>) -> Json<RevocationList> {
    Json(RevocationList {
        revoked: state.verifier().revocations().current(),
    })
}
