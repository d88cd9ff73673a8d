//! Messages: sending one into the stream, and reading history pages.
//!
//! **Send** (`POST /api/v1/chats/{chat_id}/messages`): the caller must be a member; neither
//! member may block the other (403 `blocked`, [`crate::blocks`]); the body must pass the
//! content rules ([`crate::content`]); the caller's send bucket must have a token. The service stamps
//! the message (`message_id`, a TimeUUID `time` from its clock, `from_user` = the token's user,
//! `to_user` = the other member), produces it keyed by chat id, and answers 201 only once the
//! log acknowledged it; 503 with `Retry-After` when it cannot (and the token is given back).
//!
//! **Idempotent retries.** With a `client_message_id`, the `message_id` is a UUID v5 of the
//! sender and that id, and the whole record is stored before it is produced. A retry of an
//! acknowledged send returns that record (200) and produces nothing; a retry of a send that
//! failed produces the very same record again (same `message_id` and `time`), which every sink
//! treats as the same message. Reusing an id for a different chat or body is a 409.
//!
//! **History** (`GET /api/v1/chats/{chat_id}/messages` and the seed's `GET /chat/{chat_id}`):
//! `time` (optional) is a TimeUUID cursor, the page holds messages strictly older than it;
//! `quantity` (optional, default 10, at most `max_page_quantity`) is the page size. Newest
//! first, with `next_cursor` (the `time` of the page's oldest message) when older messages exist.
//! A message appears here once the aggregator has written its group (see `embedded` for the
//! typical delay).

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, ChatIdPath};
use crate::history::HistoryError;
use crate::limits::{check_body, check_client_message_id};
use crate::message_log::LogError;
use crate::store::{self, ChatRecord, ClientMessage};
use crate::timeuuid::{self, parse_cursor};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use confab_pipeline::ChatMessage;
use confab_token::{CurrentUser, ErrorBody};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Messages per page when `quantity` is not given (the seed's default).
pub const DEFAULT_QUANTITY: u32 = 10;

/// The namespace of message ids derived from `(sender, client_message_id)`, fixed forever.
const CLIENT_MESSAGE_NAMESPACE: Uuid = Uuid::from_u128(0x3d1f_59a2_8c4e_4b7a_a0e6_51c9_f2d8_7b13);

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/chats/{chat_id}/messages",
            get(history_page).post(send_message),
        )
        .route("/chat/{chat_id}", get(seed_history_page))
}

/// Send a message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// The text: not empty or only whitespace, at most `limits.max_message_chars` characters
    /// (4,000 by default).
    #[schema(example = "hello")]
    pub body: String,
    /// An idempotency key chosen by the client (1-64 printable ASCII characters, e.g. a UUID):
    /// a retry with the same key returns the same message and produces nothing new.
    pub client_message_id: Option<String>,
    /// Ignored: the sender is always the token's user.
    #[schema(value_type = Option<String>)]
    pub from_user: Option<serde_json::Value>,
    /// Ignored: the recipient is the chat's other member.
    #[schema(value_type = Option<String>)]
    pub to_user: Option<serde_json::Value>,
    /// Ignored: the chat is the one in the path.
    #[schema(value_type = Option<String>)]
    pub chat_id: Option<serde_json::Value>,
    /// Ignored: the service assigns the id.
    #[schema(value_type = Option<String>)]
    pub message_id: Option<serde_json::Value>,
    /// Ignored: the service assigns the time.
    #[schema(value_type = Option<String>)]
    pub time: Option<serde_json::Value>,
    /// Ignored: the service assigns the time.
    #[schema(value_type = Option<String>)]
    pub time_iso: Option<serde_json::Value>,
}

/// A message as produced to the log and read from history (the seed's message JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    /// Unique id (UUID v4, or v5 of the sender and `client_message_id`).
    pub message_id: String,
    /// The chat.
    pub chat_id: String,
    /// The sender's user id.
    pub from_user: String,
    /// The recipient's user id.
    pub to_user: String,
    /// The text.
    pub body: String,
    /// A version-1 TimeUUID: the message's time, and the history cursor.
    pub time: Uuid,
    /// The same instant as RFC 3339 text (UTC, milliseconds).
    pub time_iso: String,
}

impl From<ChatMessage> for MessageView {
    fn from(m: ChatMessage) -> Self {
        Self {
            message_id: m.message_id.to_string(),
            chat_id: m.chat_id.to_string(),
            from_user: m.from_user.to_string(),
            to_user: m.to_user.to_string(),
            body: m.body.to_string(),
            time: m.time,
            time_iso: m.time_iso.to_string(),
        }
    }
}

/// One page of history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MessagePage {
    /// Messages, newest first.
    pub messages: Vec<MessageView>,
    /// Pass as `time` to get the next (older) page; absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

/// History query (both optional).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// A version-1 TimeUUID: only messages strictly older than it (absent: the latest).
    #[param(value_type = Option<Uuid>)]
    pub time: Option<String>,
    /// Page size, 1 to `max_page_quantity` (100 by default); 10 when absent.
    #[param(value_type = Option<u32>)]
    pub quantity: Option<String>,
}

impl From<LogError> for ApiError {
    fn from(err: LogError) -> Self {
        match err {
            LogError::Unavailable(reason) => {
                tracing::warn!(%reason, "The message log is unavailable.");
                ApiError::Unavailable("the message log")
            }
            LogError::Rejected(reason) => {
                tracing::error!(%reason, "The message log refused a record.");
                ApiError::Internal
            }
        }
    }
}

impl From<HistoryError> for ApiError {
    fn from(err: HistoryError) -> Self {
        match err {
            HistoryError::Unavailable(reason) => {
                tracing::warn!(%reason, "The history store is unavailable.");
                ApiError::Unavailable("the history store")
            }
            HistoryError::Failed(reason) => {
                tracing::error!(%reason, "Reading history failed.");
                ApiError::Internal
            }
        }
    }
}

/// The chat `chat_id` if `user` is a member: 404 when there is no such chat, 403 when the
/// caller is not in it. The record is the one first read ([`crate::members`]): its members and
/// id are exact, its `last_activity` may be old.
pub(crate) async fn member_chat(
    state: &AppState,
    chat_id: Uuid,
    user: Uuid,
) -> Result<ChatRecord, ApiError> {
    let chat = match state.known_chats().get(chat_id) {
        Some(chat) => chat,
        None => {
            let chat = state
                .chats()
                .find_chat(chat_id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no chat with id {chat_id}")))?;
            state.known_chats().remember(&chat);
            chat
        }
    };
    if !chat.has_member(user) {
        return Err(ApiError::Forbidden(
            "only the chat's members can read or post to it".into(),
        ));
    }
    Ok(chat)
}

/// Refuses a reused `client_message_id` that names another chat or body.
fn same_send(stored: &ClientMessage, chat_id: Uuid, body: &str) -> Result<(), ApiError> {
    if stored.chat_id != chat_id || stored.message.body != body {
        return Err(ApiError::Conflict(
            "this client_message_id was already used for a different message; use a new one".into(),
        ));
    }
    Ok(())
}

/// Send a message; 201 once the message log has acknowledged it.
#[utoipa::path(
    post,
    path = "/api/v1/chats/{chat_id}/messages",
    tag = "messages",
    params(("chat_id" = Uuid, Path, description = "The chat")),
    request_body = SendMessage,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Sent: the log acknowledged the message", body = MessageView),
        (status = 200, description = "A retry of an acknowledged client_message_id: the same message", body = MessageView),
        (status = 400, description = "Malformed JSON or chat id", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a member of the chat (`forbidden`), or `blocked`: one member blocks the other, the same answer whichever side blocked", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
        (status = 409, description = "client_message_id reused for another message", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "`empty_message`, `message_too_long`, `invalid_message`, `invalid_client_message_id`, or a field is missing, unknown or of the wrong type", body = ErrorBody),
        (status = 429, description = "Sending too fast", body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The message log or the database is unavailable; nothing was sent", body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait"))),
    )
)]
pub(crate) async fn send_message(
    user: CurrentUser,
    State(state): State<AppState>,
    ChatIdPath(chat_id): ChatIdPath,
    ApiJson(request): ApiJson<SendMessage>,
) -> Result<(StatusCode, Json<MessageView>), ApiError> {
    let chat = member_chat(&state, chat_id, user.id).await?;
    let peer = chat.peer_of(user.id).ok_or(ApiError::Internal)?;
    // A block or an unblock counts at once on every instance (see `blocks` for when the answer
    // may come from memory).
    crate::blocks::refuse_if_blocked(&state, user.id, peer).await?;
    check_body(&request.body, state.config().limits.max_message_chars)
        .map_err(|refused| ApiError::invalid(refused.code, refused.message))?;
    if let Some(id) = &request.client_message_id {
        check_client_message_id(id)
            .map_err(|reason| ApiError::invalid("invalid_client_message_id", reason))?;
    }
    let store = state.chats();
    if let Some(id) = &request.client_message_id {
        if let Some(stored) = store.find_client_message(user.id, id).await? {
            same_send(&stored, chat_id, &request.body)?;
            if stored.acked {
                return Ok((StatusCode::OK, Json(stored.message.into())));
            }
        }
    }
    let limit_key = user.id.to_string();
    state
        .limiters()
        .sends
        .acquire(&limit_key)
        .map_err(|wait| ApiError::TooManyRequests {
            retry_after_secs: wait.secs(),
            message: format!(
                "you are sending faster than {} messages per second; slow down",
                state.config().limits.messages_per_second
            ),
        })?;
    let result = produce(&state, &chat, user.id, &request).await;
    if result.is_err() {
        state.limiters().sends.refund(&limit_key);
    }
    result
}

/// Stamps, (for a client id) reserves, produces and acknowledges one message.
async fn produce(
    state: &AppState,
    chat: &ChatRecord,
    sender: Uuid,
    request: &SendMessage,
) -> Result<(StatusCode, Json<MessageView>), ApiError> {
    let store = state.chats();
    let (time, time_iso) = state.clock().stamp();
    let message_id = match &request.client_message_id {
        Some(id) => {
            let mut name = sender.as_bytes().to_vec();
            name.extend_from_slice(id.as_bytes());
            Uuid::new_v5(&CLIENT_MESSAGE_NAMESPACE, &name)
        }
        None => Uuid::new_v4(),
    };
    let peer = chat.peer_of(sender).ok_or(ApiError::Internal)?;
    let mut message = ChatMessage {
        message_id: message_id.to_string().into(),
        chat_id: chat.id.to_string().into(),
        from_user: sender.to_string().into(),
        to_user: peer.to_string().into(),
        body: request.body.clone().into(),
        time,
        time_iso: time_iso.into(),
    };
    if let Some(id) = &request.client_message_id {
        // A concurrent retry may have stored its record first: produce that one.
        let stored = store
            .reserve_client_message(sender, id, chat.id, &message)
            .await?;
        same_send(&stored, chat.id, &request.body)?;
        if stored.acked {
            return Ok((StatusCode::OK, Json(stored.message.into())));
        }
        message = stored.message;
    }
    state
        .log()
        .append(&message.chat_id, message.encode())
        .await?;
    if let Some(id) = &request.client_message_id {
        if let Err(err) = store.ack_client_message(sender, id).await {
            // The message is in the log; a retry would produce the same record again, which the
            // sinks absorb.
            tracing::warn!(error = %err, message_id = %message.message_id, "Could not mark a client message as sent.");
        }
    }
    state.activity().record(chat, store::now());
    tracing::debug!(chat_id = %chat.id, message_id = %message.message_id, "Sent a message.");
    Ok((StatusCode::CREATED, Json(message.into())))
}

/// Reads and checks `time` and `quantity`.
fn page_params(query: &HistoryQuery, max: u32) -> Result<(Option<Uuid>, u32), ApiError> {
    let before = match query.time.as_deref() {
        None => None,
        Some(text) => {
            Some(parse_cursor(text).map_err(|reason| ApiError::invalid("invalid_time", reason))?)
        }
    };
    let quantity = match query.quantity.as_deref() {
        None => DEFAULT_QUANTITY,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|q| (1..=max).contains(q))
            .ok_or_else(|| {
                ApiError::invalid(
                    "invalid_quantity",
                    format!("quantity {text:?} must be a whole number from 1 to {max}"),
                )
            })?,
    };
    Ok((before, quantity))
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    chat_id: Uuid,
    query: &HistoryQuery,
) -> Result<Json<MessagePage>, ApiError> {
    let (before, quantity) = page_params(query, state.config().max_page_quantity)?;
    member_chat(state, chat_id, user.id).await?;
    // One more than asked tells whether an older page exists.
    let mut messages = merged_page(state, chat_id, before, quantity as usize + 1).await?;
    let next_cursor = if messages.len() > quantity as usize {
        messages.truncate(quantity as usize);
        messages.last().map(|m| m.time)
    } else {
        None
    };
    Ok(Json(MessagePage {
        messages,
        next_cursor,
    }))
}

/// Where a message sorts in its chat: by its TimeUUID's time, then its bytes.
pub(crate) fn order_of(time: &Uuid) -> (i64, Uuid) {
    (timeuuid::ticks(time).unwrap_or(i64::MIN), *time)
}

/// Up to `limit` of the chat's messages strictly older than `before` (the newest when `None`),
/// newest first: history, and the messages this instance's tail read that history may not hold
/// yet (their group is not written), each once. The union of the newest `limit` of each is
/// the newest `limit` of the union, so paging by the last message's `time` stays exact.
pub(crate) async fn merged_page(
    state: &AppState,
    chat_id: Uuid,
    before: Option<Uuid>,
    limit: usize,
) -> Result<Vec<MessageView>, ApiError> {
    let stored = state
        .history()
        .page(&chat_id.to_string(), before, limit)
        .await?;
    let recent = state.realtime().recent(chat_id);
    let mut messages: Vec<MessageView> = stored.into_iter().map(MessageView::from).collect();
    if recent.is_empty() {
        return Ok(messages);
    }
    let bound = before.map(|b| order_of(&b));
    let mut seen: HashSet<String> = messages.iter().map(|m| m.message_id.clone()).collect();
    for message in recent.iter().rev() {
        if bound.is_some_and(|b| order_of(&message.time) >= b) {
            continue;
        }
        if seen.insert(message.message_id.clone()) {
            messages.push(MessageView::clone(message));
        }
    }
    messages.sort_by_key(|m| std::cmp::Reverse(order_of(&m.time)));
    messages.truncate(limit);
    Ok(messages)
}

/// A page of history, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/chats/{chat_id}/messages",
    tag = "messages",
    params(("chat_id" = Uuid, Path, description = "The chat"), HistoryQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of messages, newest first", body = MessagePage),
        (status = 400, description = "Malformed chat id or unknown query parameter", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a member of the chat", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
        (status = 422, description = "`invalid_time` (not a TimeUUID) or `invalid_quantity`", body = ErrorBody),
        (status = 503, description = "The history store or the database is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn history_page(
    user: CurrentUser,
    State(state): State<AppState>,
    ChatIdPath(chat_id): ChatIdPath,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    page(&state, &user, chat_id, &query).await
}

/// The seed's history route: the same page as `/api/v1/chats/{chat_id}/messages`.
#[utoipa::path(
    get,
    path = "/chat/{chat_id}",
    tag = "messages",
    params(("chat_id" = Uuid, Path, description = "The chat"), HistoryQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of messages, newest first", body = MessagePage),
        (status = 400, description = "Malformed chat id or unknown query parameter", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a member of the chat", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
        (status = 422, description = "`invalid_time` (not a TimeUUID) or `invalid_quantity`", body = ErrorBody),
        (status = 503, description = "The history store or the database is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn seed_history_page(
    user: CurrentUser,
    State(state): State<AppState>,
    ChatIdPath(chat_id): ChatIdPath,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    page(&state, &user, chat_id, &query).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(time: Option<&str>, quantity: Option<&str>) -> HistoryQuery {
        HistoryQuery {
            time: time.map(str::to_owned),
            quantity: quantity.map(str::to_owned),
        }
    }

    #[test]
    fn page_parameters_default_and_check_their_range() {
        assert_eq!(page_params(&query(None, None), 100).ok(), Some((None, 10)));
        assert_eq!(
            page_params(&query(None, Some("100")), 100).ok(),
            Some((None, 100))
        );
        for bad in ["0", "101", "-1", "ten", "", "1.5"] {
            let err = page_params(&query(None, Some(bad)), 100).expect_err(bad);
            assert_eq!(err.code(), "invalid_quantity");
        }
        let v4 = Uuid::new_v4().to_string();
        for bad in ["nope", v4.as_str(), ""] {
            let err = page_params(&query(Some(bad), None), 100).expect_err(bad);
            assert_eq!(err.code(), "invalid_time");
        }
    }

    #[test]
    fn client_message_ids_map_to_fixed_message_ids() {
        // Pinned: changing the namespace would change the id a retry gets.
        let id = Uuid::new_v5(&CLIENT_MESSAGE_NAMESPACE, b"x");
        assert_eq!(id.get_version_num(), 5);
        assert_eq!(id, Uuid::new_v5(&CLIENT_MESSAGE_NAMESPACE, b"x"));
    }
}
