//! `POST /api/v1/login`: password login, answered with a signed access token.
//!
//! Takes JSON `{username, password}` or an OAuth2 password-grant form
//! (`application/x-www-form-urlencoded`, RFC 6749 §4.3.2, as FastAPI's `OAuth2PasswordRequestForm`
//! sends it). Wrong credentials get 401 with one message whether or not the user exists, and the
//! same work: a missing user's password is checked against a dummy argon2id hash.
//!
//! Throttling happens before the password is checked: an attempt counts against its (username,
//! client address) pair and against the address; a success gives the counts back (and clears
//! the pair's failures), and once either limit is reached further attempts *of that pair or
//! address* get 429 with `Retry-After` until the window passes. The owner logging in from
//! another address is never refused because someone guessed from elsewhere.
//!
//! A login or sign-up sent by another site's page is refused (403 `cross_site`): the form
//! encoding is a CORS-simple request, so without this any website could make its visitors'
//! browsers try passwords. Browsers say where a request comes from (`Sec-Fetch-Site`,
//! `Origin`); API clients send neither and are served as before.
//!
//! A successful login starts a session ([`crate::sessions`]): a short access token and a
//! rotating refresh token, answered with `Cache-Control: no-store`.

use crate::error::ApiError;
use crate::extract::{ApiForm, ApiJson, ClientAddr};
use crate::sessions::no_store;
use crate::users::normalize_username;
use crate::AppState;
use axum::extract::{FromRequest, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
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

/// A successful login or refresh.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The signed JWT; send it as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Exchange it at `POST /api/v1/auth/refresh` for a new pair before the access token
    /// expires; it works once.
    pub refresh_token: String,
    /// Seconds until the refresh token (the session) expires.
    pub refresh_expires_in: u64,
    /// The user's id.
    pub id: Uuid,
    /// The user's (lowercase) username.
    pub username: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"***")
            .field("refresh_token", &"***")
            .field("expires_in", &self.expires_in)
            .field("id", &self.id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
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

impl<S: Send + Sync> FromRequest<S> for Credentials {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        refuse_cross_site(request.headers())?;
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

/// 403 `cross_site` when a browser says the request comes from another site's page.
pub(crate) fn refuse_cross_site(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let cross = match header("sec-fetch-site") {
        // Typed into the address bar or bookmarked (`none`), or from our own pages.
        Some(site) => !matches!(site, "same-origin" | "none"),
        // Older browsers: compare Origin with the Host the request was sent to.
        None => match (header("origin"), header("host")) {
            (Some(origin), Some(host)) => origin
                .split_once("://")
                .is_none_or(|(_, origin_host)| !origin_host.eq_ignore_ascii_case(host)),
            _ => false,
        },
    };
    if cross {
        return Err(ApiError::Forbidden {
            code: "cross_site",
            message: "this request comes from another site's page; log in from confab's own \
                      pages or from an API client"
                .into(),
        });
    }
    Ok(())
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
        (status = 200, description = "Logged in: an access token and a refresh token (never cached)", body = TokenResponse),
        (status = 403, description = "Sent by another site's page (`cross_site`)", body = ErrorBody),
        (status = 400, description = "Malformed body or unsupported grant_type", body = ErrorBody),
        (status = 401, description = "Wrong username or password (same answer for unknown users)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Neither JSON nor a form", body = ErrorBody),
        (status = 422, description = "A field is missing, unknown or of the wrong type", body = ErrorBody),
        (status = 429, description = "Too many failed logins for this username from this address, or from this address", body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    credentials: Credentials,
) -> Result<Response, ApiError> {
    let username = normalize_username(&credentials.username).ok();
    // Names that cannot exist share one counter, so junk input cannot grow the table.
    let user_key = username.clone().unwrap_or_else(|| "\0invalid".to_owned());
    let attempt = Attempt::start(&state, &user_key, &client)?;
    let record = match &username {
        Some(name) => match state.store().find_by_username(name).await {
            Ok(record) => record,
            Err(err) => {
                // The database failed, not the caller: this attempt does not count.
                attempt.not_counted();
                return Err(err.into());
            }
        },
        None => None,
    };
    let stored_hash = record.as_ref().map(|r| r.password_hash.clone());
    let matches = match state
        .passwords()
        .verify(credentials.password, stored_hash)
        .await
    {
        Ok(matches) => matches,
        Err(err) => {
            // The server was busy or failed, not the caller: this attempt does not count.
            attempt.not_counted();
            return Err(err.into());
        }
    };

    let Some(record) = record.filter(|_| matches) else {
        tracing::info!(client = %client.key(), "A login failed.");
        return Err(ApiError::InvalidCredentials);
    };
    attempt.succeeded();
    let pair = state.start_session(record.id, record.username).await?;
    tracing::info!(user_id = %record.id, "A user logged in.");
    Ok(no_store(pair))
}

/// One password attempt, counted against its (username, address) pair and its address before
/// the password is checked, so a burst of concurrent guesses cannot slip past the limits.
pub(crate) struct Attempt<'a> {
    state: &'a AppState,
    pair_key: String,
    addr_key: String,
}

impl<'a> Attempt<'a> {
    /// Counts the attempt, or refuses it with 429 when the pair or the address is at its limit.
    pub(crate) fn start(
        state: &'a AppState,
        username: &str,
        client: &ClientAddr,
    ) -> Result<Self, ApiError> {
        let addr_key = client.key();
        let pair_key = format!("{addr_key}\0{username}");
        let throttles = state.throttles();
        let refused = |wait: crate::throttle::RetryAfter| ApiError::TooManyRequests {
            retry_after_secs: wait.secs(),
            message: "too many failed logins from this address; try again later".into(),
        };
        throttles
            .login_by_address
            .acquire(&addr_key)
            .map_err(refused)?;
        if let Err(wait) = throttles.login_by_username_and_address.acquire(&pair_key) {
            throttles.login_by_address.release(&addr_key);
            return Err(refused(wait));
        }
        Ok(Self {
            state,
            pair_key,
            addr_key,
        })
    }

    /// The password was right: the pair's failures are forgotten, the address's count given
    /// back.
    pub(crate) fn succeeded(self) {
        let throttles = self.state.throttles();
        throttles
            .login_by_username_and_address
            .reset(&self.pair_key);
        throttles.login_by_address.release(&self.addr_key);
    }

    /// The attempt failed for a reason that is not the caller's (the database).
    fn not_counted(self) {
        let throttles = self.state.throttles();
        throttles
            .login_by_username_and_address
            .release(&self.pair_key);
        throttles.login_by_address.release(&self.addr_key);
    }
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
                    refresh_token: secret.into(),
                    refresh_expires_in: 3600,
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
