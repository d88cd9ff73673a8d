//! `/api/v1/chats`: start a 1:1 chat with a peer (idempotent per pair), and list the caller's
//! chats, most recently active first.
//!
//! One chat per pair holds under concurrent requests: the store inserts the ordered pair under a
//! unique constraint (SQL) or with a lightweight transaction (Cassandra) and returns the existing
//! chat to whoever lost the race. Starting a new chat
//! takes a token from the caller's hourly bucket; finding the pair's existing chat does not.

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::messages::MessageView;
use crate::store::{ChatRecord, ChatWithNames, Created, StoreError};
use crate::AppState;
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderName, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, TimeZone, Utc};
use confab_token::{CurrentUser, ErrorBody};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Chats per page when `limit` is not given.
pub const DEFAULT_CHATS_PER_PAGE: u32 = 50;
/// Largest `limit` accepted.
pub const MAX_CHATS_PER_PAGE: u32 = 200;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/chats", post(create_chat).get(list_chats))
}

/// Start a chat.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChat {
    /// The other member's user id.
    pub peer_id: Uuid,
}

/// A member of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Member {
    /// The user's id.
    pub id: Uuid,
    /// The user's (lowercase) username; empty if the user no longer exists.
    pub username: String,
}

/// A chat as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChatView {
    /// The chat's id.
    pub chat_id: Uuid,
    /// The two members, ordered by id.
    pub members: Vec<Member>,
    /// When the chat was started (RFC 3339).
    pub created_at: DateTime<Utc>,
    /// When the chat was started or last received a message (RFC 3339).
    pub last_activity: DateTime<Utc>,
    /// The chat's latest message (in the chat list; absent in a chat without messages, and
    /// where a chat was just started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<MessageView>,
    /// The `time` of the newest message the caller has read (in the chat list; absent when
    /// the caller never marked the chat read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_up_to: Option<Uuid>,
    /// The other member's messages the caller has not read (newer than `read_up_to` and than
    /// the caller's own latest message), at most 99.
    #[serde(default)]
    pub unread: u32,
    /// Whether more messages than `unread` are unread.
    #[serde(default)]
    pub unread_capped: bool,
}

impl ChatView {
    fn new(chat: ChatRecord, low_name: Option<String>, high_name: Option<String>) -> Self {
        Self {
            chat_id: chat.id,
            members: vec![
                Member {
                    id: chat.user_low,
                    username: low_name.unwrap_or_default(),
                },
                Member {
                    id: chat.user_high,
                    username: high_name.unwrap_or_default(),
                },
            ],
            created_at: chat.created_at,
            last_activity: chat.last_activity,
            last_message: None,
            read_up_to: None,
            unread: 0,
            unread_capped: false,
        }
    }
}

impl From<ChatWithNames> for ChatView {
    fn from(row: ChatWithNames) -> Self {
        Self::new(row.chat, row.low_name, row.high_name)
    }
}

/// One page of the caller's chats.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChatPage {
    /// Chats, most recently active first.
    pub chats: Vec<ChatView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Chat list query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListChatsQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        if err.is_retryable() {
            tracing::warn!(error = %err, "The chat database is unavailable.");
            ApiError::Unavailable("the chat database")
        } else {
            tracing::error!(error = %err, "A chat database query failed.");
            ApiError::Internal
        }
    }
}

fn encode_cursor(chat: &ChatRecord) -> String {
    format!(
        "{}_{}",
        chat.last_activity.timestamp_micros(),
        chat.id.simple()
    )
}

fn decode_cursor(cursor: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (micros, id) = cursor.split_once('_')?;
    let at = Utc.timestamp_micros(micros.parse().ok()?).single()?;
    Some((at, Uuid::try_parse(id).ok()?))
}

/// Start a 1:1 chat with a peer, or get the one the pair has.
#[utoipa::path(
    post,
    path = "/api/v1/chats",
    tag = "chats",
    request_body = NewChat,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "A new chat", body = ChatView,
            headers(("location" = String, description = "/api/v1/chats/{chat_id}/messages"))),
        (status = 200, description = "The pair's existing chat", body = ChatView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "`blocked`: one of the two blocks the other (the same answer whichever side blocked); or the caller's account does not exist", body = ErrorBody),
        (status = 404, description = "No user with this peer_id", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A chat with yourself (`invalid_peer`), or a field is missing, unknown or of the wrong type", body = ErrorBody),
        (status = 429, description = "Too many new chats this hour", body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn create_chat(
    user: CurrentUser,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewChat>,
) -> Result<(StatusCode, [(HeaderName, String); 1], Json<ChatView>), ApiError> {
    if body.peer_id == user.id {
        return Err(ApiError::invalid(
            "invalid_peer",
            "you cannot start a chat with yourself",
        ));
    }
    let store = state.store();
    let chats = state.chats();
    let Some(peer) = store.find_user(body.peer_id).await? else {
        return Err(ApiError::NotFound(format!(
            "no user with id {}",
            body.peer_id
        )));
    };
    let Some(me) = store.find_user(user.id).await? else {
        return Err(ApiError::Forbidden(
            "your account does not exist (any more); log in again".into(),
        ));
    };
    let names = |chat: &ChatRecord| {
        let name_of = |id: Uuid| {
            if id == me.id {
                me.username.clone()
            } else {
                peer.username.clone()
            }
        };
        (Some(name_of(chat.user_low)), Some(name_of(chat.user_high)))
    };
    let respond = |status: StatusCode, chat: ChatRecord| {
        let (low, high) = names(&chat);
        let location = format!("/api/v1/chats/{}/messages", chat.id);
        (
            status,
            [(LOCATION, location)],
            Json(ChatView::new(chat, low, high)),
        )
    };
    // Checked before the existing chat too: a blocked pair gets no chat id from here at all.
    crate::blocks::refuse_if_blocked(&state, user.id, peer.id).await?;
    // The common repeat needs no token and no write.
    if let Some(existing) = chats.find_chat_of_pair(user.id, peer.id).await? {
        return Ok(respond(StatusCode::OK, existing));
    }
    let key = user.id.to_string();
    state
        .limiters()
        .new_chats
        .acquire(&key)
        .map_err(|wait| ApiError::TooManyRequests {
            retry_after_secs: wait.secs(),
            message: format!(
                "you may start at most {} new chats per hour; try again later",
                state.config().limits.new_chats_per_hour
            ),
        })?;
    match chats.create_chat(user.id, peer.id).await {
        Ok(Created::New(chat)) => {
            tracing::info!(chat_id = %chat.id, created_by = %user.id, peer = %peer.id, "Started a chat.");
            let response = respond(StatusCode::CREATED, chat);
            state.realtime().publish_chat(&response.2 .0);
            Ok(response)
        }
        Ok(Created::Existing(chat)) => {
            state.limiters().new_chats.refund(&key);
            Ok(respond(StatusCode::OK, chat))
        }
        Err(err) => {
            state.limiters().new_chats.refund(&key);
            Err(err.into())
        }
    }
}

/// List the caller's chats, most recently active first, each with its latest message, the
/// caller's read position and unread count.
#[utoipa::path(
    get,
    path = "/api/v1/chats",
    tag = "chats",
    params(ListChatsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of chats", body = ChatPage),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn list_chats(
    user: CurrentUser,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListChatsQuery>,
) -> Result<Json<ChatPage>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_CHATS_PER_PAGE);
    if !(1..=MAX_CHATS_PER_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_query",
            message: format!("limit must be between 1 and {MAX_CHATS_PER_PAGE}"),
        });
    }
    let after = match query.cursor.as_deref() {
        None => None,
        Some(cursor) => Some(decode_cursor(cursor).ok_or_else(|| ApiError::BadRequest {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_query",
            message: "cursor is not one this service returned; start again without it".into(),
        })?),
    };
    // The activity of sends not stored yet counts: the order is as if each send wrote it.
    state.activity().flush(state.chats()).await;
    // One more than asked tells whether another page exists.
    let mut rows = state.chats().list_chats(user.id, after, limit + 1).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|row| encode_cursor(&row.chat))
    } else {
        None
    };
    let mut chats: Vec<ChatView> = rows.into_iter().map(ChatView::from).collect();
    crate::reads::annotate(&state, user.id, &mut chats).await?;
    Ok(Json(ChatPage { chats, next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let chat = ChatRecord {
            id: Uuid::now_v7(),
            user_low: Uuid::nil(),
            user_high: Uuid::max(),
            created_by: Uuid::nil(),
            created_at: crate::store::now(),
            last_activity: crate::store::now(),
        };
        let cursor = encode_cursor(&chat);
        assert_eq!(decode_cursor(&cursor), Some((chat.last_activity, chat.id)));
        for junk in ["", "_", "x_y", "12_notauuid", "abc"] {
            assert_eq!(decode_cursor(junk), None, "{junk}");
        }
    }
}
