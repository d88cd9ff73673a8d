//! `POST /api/v1/login`: password login, answered with a signed access token.
//!
//! Takes JSON `{username, password}` or an OAuth2 password-grant form
//! (`application/x-www-form-urlencoded`, RFC 6749 §4.3.2, as FastAPI's `OAuth2PasswordRequestForm`
//! sends it). Wrong credentials get 401 with one message whether or not the user exists, and the
//! same work: a missing user's password is checked against a dummy argon2id hash.
//!
//! Throttling happens before the password is checked: an attempt counts against both the
//! username and the client address, a success gives the counts back (and clears the username's
//! failures), and once either limit is reached further attempts get 429 with `Retry-After`,
//! even with the right password, until the window passes.

use crate::error::ApiError;
use crate::extract::{ApiForm, ApiJson, ClientAddr};
use crate::users::normalize_username;
use crate::AppState;
use axum::extract::{FromRequest, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use confab_token::ErrorBody;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/login", post(login))
}

/// JSON login request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The username (case-insensitive).
    #[schema(example = "alice")]
    pub username: String,
    /// The password.
    #[schema(example = "correct horse battery staple")]
    pub password: String,
}

/// OAuth2 password-grant form. Unknown parameters are ignored, as RFC 6749 §3.1 requires.
#[derive(Deserialize, ToSchema)]
pub struct LoginForm {
    /// `password` when given.
    pub grant_type: Option<String>,
    /// The username (case-insensitive).
    pub username: String,
    /// The password.
    pub password: String,
    /// Ignored.
    pub scope: Option<String>,
    /// Ignored.
    pub client_id: Option<String>,
    /// Ignored.
    pub client_secret: Option<String>,
}

/// A successful login.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The signed JWT; send it as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// The user's id.
    pub id: Uuid,
    /// The user's (lowercase) username.
    pub username: String,
}

/// Credentials from either body format.
pub(crate) struct Credentials {
    username: String,
    password: String,
}

// Hand-written `Debug` for every type holding a password or a token: `{:?}` in a log line or a
// panic message must never print one.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm")
            .field("grant_type", &self.grant_type)
            .field("username", &self.username)
            .field("password", &"***")
            .field("scope", &self.scope)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .finish()
    }
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"***")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("id", &self.id)
            .field("username", &self.username)
            .finish()
    }
}

impl<S: Send + Sync> FromRequest<S> for Credentials {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| {
                mime.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if is_form {
            let ApiForm(form) = ApiForm::<LoginForm>::from_request(request, state).await?;
            if form
                .grant_type
                .as_deref()
                .is_some_and(|grant| grant != "password")
            {
                return Err(ApiError::BadRequest {
                    status: StatusCode::BAD_REQUEST,
                    code: "unsupported_grant_type",
                    message: "only grant_type=password is supported".into(),
                });
            }
            Ok(Credentials {
                username: form.username,
                password: form.password,
            })
        } else {
            let ApiJson(body) = ApiJson::<LoginRequest>::from_request(request, state).await?;
            Ok(Credentials {
                username: body.username,
                password: body.password,
            })
        }
    }
}

/// Log in and get an access token.
#[utoipa::path(
    post,
    path = "/api/v1/login",
    tag = "auth",
    request_body(content(
        (LoginRequest = "application/json"),
        (LoginForm = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Malformed body or unsupported grant_type", body = ErrorBody),
        (status = 401, description = "Wrong username or password (same answer for unknown users)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Neither JSON nor a form", body = ErrorBody),
        (status = 422, description = "A field is missing, unknown or of the wrong type", body = ErrorBody),
        (status = 429, description = "Too many failed logins for this username or address", body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    credentials: Credentials,
) -> Result<Json<TokenResponse>, ApiError> {
    let username = normalize_username(&credentials.username).ok();
    // Names that cannot exist share one counter, so junk input cannot grow the table.
    let user_key = username.clone().unwrap_or_else(|| "\0invalid".to_owned());
    let addr_key = client.key();
    let throttles = state.throttles();
    let refused = |wait: crate::throttle::RetryAfter| ApiError::TooManyRequests {
        retry_after_secs: wait.secs(),
        message: "too many failed logins; try again later".into(),
    };
    throttles
        .login_by_address
        .acquire(&addr_key)
        .map_err(refused)?;
    if let Err(wait) = throttles.login_by_username.acquire(&user_key) {
        throttles.login_by_address.release(&addr_key);
        return Err(refused(wait));
    }

    let record = match &username {
        Some(name) => match state.store().find_by_username(name).await {
            Ok(record) => record,
            Err(err) => {
                // The database failed, not the caller: this attempt does not count.
                throttles.login_by_address.release(&addr_key);
                throttles.login_by_username.release(&user_key);
                return Err(err.into());
            }
        },
        None => None,
    };
    let stored_hash = record.as_ref().map(|r| r.password_hash.clone());
    let matches = state
        .passwords()
        .verify(credentials.password, stored_hash)
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "Password verification failed.");
            ApiError::Internal
        })?;

    let Some(record) = record.filter(|_| matches) else {
        tracing::info!(client = %addr_key, "A login failed.");
        return Err(ApiError::InvalidCredentials);
    };
    throttles.login_by_username.reset(&user_key);
    throttles.login_by_address.release(&addr_key);
    let issued = state
        .signer()
        .issue(record.id, &record.username)
        .map_err(|err| {
            tracing::error!(error = %err, "Signing a token failed.");
            ApiError::Internal
        })?;
    tracing::info!(user_id = %record.id, "A user logged in.");
    Ok(Json(TokenResponse {
        access_token: issued.token,
        token_type: "Bearer".to_owned(),
        expires_in: issued.expires_in,
        id: record.id,
        username: record.username,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_types_do_not_show_passwords_or_tokens_in_debug() {
        let secret = "pa55word-that-must-not-leak";
        let texts = [
            format!(
                "{:?}",
                LoginRequest {
                    username: "ann".into(),
                    password: secret.into(),
                }
            ),
            format!(
                "{:?}",
                LoginForm {
                    grant_type: Some("password".into()),
                    username: "ann".into(),
                    password: secret.into(),
                    scope: None,
                    client_id: None,
                    client_secret: Some(secret.into()),
                }
            ),
            format!(
                "{:?}",
                Credentials {
                    username: "ann".into(),
                    password: secret.into(),
                }
            ),
            format!(
                "{:?}",
                TokenResponse {
                    access_token: secret.into(),
                    token_type: "Bearer".into(),
                    expires_in: 60,
                    id: Uuid::nil(),
                    username: "ann".into(),
                }
            ),
        ];
        for text in texts {
            assert!(!text.contains(secret), "{text}");
            assert!(text.contains("ann"), "{text}");
        }
    }
}
