//! `/api/v1/users`: sign-up, the user directory, and one user by id.
//!
//! Usernames are 3 to 32 characters of ASCII letters, digits, `_`, `-` and `.`, starting with a
//! letter or digit, and are stored lowercase (so `Alice` and `alice` are one account; login
//! lowercases too). The directory is paginated by an opaque cursor in id order, which is
//! creation order (UUIDv7) and stable while users are added. With `q` it is a search: the
//! users whose username starts with `q`, in username order, paginated the same way, answered by
//! an index in the database (the web client asks as the person types).

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, ClientAddr};
use crate::store::User;
use crate::AppState;
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use confab_token::{CurrentUser, ErrorBody};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Shortest username, in characters.
pub const USERNAME_MIN_CHARS: usize = 3;
/// Longest username, in characters.
pub const USERNAME_MAX_CHARS: usize = 32;
/// Page size when `limit` is not given.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest `limit` accepted.
pub const MAX_PAGE_SIZE: u32 = 100;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users", post(create_user).get(list_users))
        .route("/api/v1/users/{id}", get(get_user))
}

/// Sign-up request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 3-32 characters: letters, digits, `_`, `-`, `.`; starts with a letter or digit.
    #[schema(example = "alice")]
    pub username: String,
    /// Between the configured minimum (default 12) and maximum (default 128) characters.
    #[schema(example = "correct horse battery staple")]
    pub password: String,
    /// An invite code; required when the server's sign-up mode is `invite`, ignored otherwise.
    pub invite: Option<String>,
}

// Hand-written: the password and the invite code stay out of logs.
impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password", &"***")
            .field("invite", &self.invite.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// The user's id (UUIDv7).
    pub id: Uuid,
    /// The lowercase username.
    pub username: String,
    /// When the user signed up (RFC 3339).
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            username: user.username,
            created_at: user.created_at,
        }
    }
}

/// One page of the directory.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserPage {
    /// Users in id (creation) order; with `q`, in username order.
    pub users: Vec<UserView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Directory query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only users whose username starts with this (case-insensitive, at most 32 characters),
    /// in username order. Empty or absent: every user, in creation order.
    #[param(example = "ali")]
    pub q: Option<String>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Checks the username rules and returns the stored (lowercase) form.
pub fn normalize_username(raw: &str) -> Result<String, String> {
    let chars = raw.chars().count();
    if !(USERNAME_MIN_CHARS..=USERNAME_MAX_CHARS).contains(&chars) {
        return Err(format!(
            "the username must be {USERNAME_MIN_CHARS} to {USERNAME_MAX_CHARS} characters long"
        ));
    }
    if !raw
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(
            "the username may contain only ASCII letters, digits, '_', '-' and '.'".to_owned(),
        );
    }
    if !raw.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("the username must start with a letter or a digit".to_owned());
    }
    Ok(raw.to_ascii_lowercase())
}

/// Create a user.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "users",
    request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = UserView,
            headers(("location" = String, description = "/api/v1/users/{id}"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, description = "`signup_closed`, `invite_required` or `invalid_invite` (the sign-up mode)", body = ErrorBody),
        (status = 409, description = "Username taken", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A username or password rule is broken (`invalid_password` also for a common or easily guessed password), or a field is missing, unknown or of the wrong type", body = ErrorBody),
        (status = 429, description = "Too many sign-ups from this address", body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn create_user(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<
    (
        StatusCode,
        [(axum::http::HeaderName, String); 1],
        Json<UserView>,
    ),
    ApiError,
> {
    let invite = crate::signup::admit(state.signup_config().mode, body.invite.as_deref())?;
    state
        .throttles()
        .signups
        .acquire(&client.key())
        .map_err(|wait| ApiError::TooManyRequests {
            retry_after_secs: wait.secs(),
            message: "too many sign-ups from this address; try again later".into(),
        })?;
    let user = state
        .create_user_invited(&body.username, body.password, invite)
        .await?;
    tracing::info!(user_id = %user.id, username = %user.username, "Created a user.");
    let location = format!("/api/v1/users/{}", user.id);
    Ok((
        StatusCode::CREATED,
        [(LOCATION, location)],
        Json(user.into()),
    ))
}

/// List users (paginated, stable id order), or search them by username prefix (`q`).
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 400, description = "Invalid limit, cursor or q (`invalid_query`), or, with `[directory] mode = \"search\"`, no `q` or a shorter one than `min_query_chars` (`query_too_short`)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn list_users(
    _user: CurrentUser,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<UserPage>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::BadRequest {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_query",
            message: format!("limit must be between 1 and {MAX_PAGE_SIZE}"),
        });
    }
    let prefix = query.q.as_deref().map(str::trim).unwrap_or("");
    let directory = state.directory();
    if directory.mode == crate::DirectoryMode::Search
        && prefix.chars().count() < directory.min_query_chars
    {
        return Err(ApiError::BadRequest {
            status: StatusCode::BAD_REQUEST,
            code: "query_too_short",
            message: format!(
                "this server finds users only by search: type at least {} characters of a \
                 username",
                directory.min_query_chars
            ),
        });
    }
    if !prefix.is_empty() {
        return search_users(&state, prefix, query.cursor.as_deref(), limit).await;
    }
    let after = match query.cursor.as_deref() {
        None => None,
        Some(cursor) => Some(Uuid::parse_str(cursor).map_err(|_| ApiError::BadRequest {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_query",
            message: "cursor is not one this service returned; start again without it".into(),
        })?),
    };
    // One more than asked tells whether another page exists.
    let mut users = state.store().list_users(after, limit + 1).await?;
    let next_cursor = if users.len() > limit as usize {
        users.truncate(limit as usize);
        users.last().map(|user| user.id.to_string())
    } else {
        None
    };
    Ok(Json(UserPage {
        users: users.into_iter().map(UserView::from).collect(),
        next_cursor,
    }))
}

/// One page of the users whose username starts with `prefix`; the cursor is the last
/// username of the previous page.
async fn search_users(
    state: &AppState,
    prefix: &str,
    cursor: Option<&str>,
    limit: u32,
) -> Result<Json<UserPage>, ApiError> {
    if prefix.chars().count() > USERNAME_MAX_CHARS {
        return Err(ApiError::BadRequest {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_query",
            message: format!("q must be at most {USERNAME_MAX_CHARS} characters"),
        });
    }
    let prefix = prefix.to_lowercase();
    // A character no username holds matches nobody; the answer is an empty page, not an error,
    // since a person typing in a search box made it.
    if !prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Ok(Json(UserPage {
            users: Vec::new(),
            next_cursor: None,
        }));
    }
    let after = match cursor {
        None => None,
        Some(cursor) => match normalize_username(cursor) {
            Ok(name) if name == cursor && name.starts_with(&prefix) => Some(name),
            _ => {
                return Err(ApiError::BadRequest {
                    status: StatusCode::BAD_REQUEST,
                    code: "invalid_query",
                    message: "cursor is not one this search returned; start again without it"
                        .into(),
                })
            }
        },
    };
    let mut users = state
        .store()
        .search_users(&prefix, after.as_deref(), limit + 1)
        .await?;
    let next_cursor = if users.len() > limit as usize {
        users.truncate(limit as usize);
        users.last().map(|user| user.username.clone())
    } else {
        None
    };
    Ok(Json(UserPage {
        users: users.into_iter().map(UserView::from).collect(),
        next_cursor,
    }))
}

/// Get one user by id.
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}",
    tag = "users",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn get_user(
    _user: CurrentUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<UserView>, ApiError> {
    match state.store().find_by_id(id).await? {
        Some(user) => Ok(Json(user.into())),
        None => Err(ApiError::NotFound(format!("no user with id {id}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::{normalize_username, NewUser};

    #[test]
    fn a_sign_up_request_does_not_show_its_secrets_in_debug() {
        let request = NewUser {
            username: "ann".into(),
            password: "hunter2-but-longer".into(),
            invite: Some("invite-code-xyz".into()),
        };
        let text = format!("{request:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("invite-code"),
            "{text}"
        );
    }

    #[test]
    fn username_rules() {
        assert_eq!(normalize_username("Alice_01").as_deref(), Ok("alice_01"));
        assert_eq!(normalize_username("a.b-c").as_deref(), Ok("a.b-c"));
        for bad in [
            "ab",
            &"a".repeat(33),
            "al ice",
            "ålice",
            "_alice",
            ".x.",
            "a/b",
            "",
        ] {
            assert!(normalize_username(bad).is_err(), "{bad:?}");
        }
        assert!(normalize_username(&"a".repeat(32)).is_ok());
    }
}
