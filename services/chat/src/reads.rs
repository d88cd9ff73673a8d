//! Read positions and unread counts.
//!
//! `PUT /api/v1/chats/{chat_id}/read` stores how far the caller has read a chat: the `time` of
//! the newest message they have seen. Positions only move forward (a stale device cannot move
//! one back), are kept by the chat store (SQL or Cassandra), and reach the caller's other pages
//! and devices as a `read` event on their events stream.
//!
//! A chat's unread count is the number of the other member's messages newer than both the
//! caller's read position and the caller's own latest message in it (answering a chat reads
//! it), counted over history and the messages whose group is not written yet (see
//! [`crate::messages::merged_page`]), up to [`MAX_UNREAD`]. The chat list carries each chat's
//! count and its latest message, so a client that opens its events stream before reading the
//! list adds exactly the messages newer than that latest one.

use crate::chats::ChatView;
use crate::error::ApiError;
use crate::extract::{ApiJson, ChatIdPath};
use crate::messages::{member_chat, merged_page, order_of, MessageView};
use crate::realtime::ReadEvent;
use crate::timeuuid::{parse_cursor, unix_micros};
use crate::AppState;
use axum::extract::State;
use axum::routing::put;
use axum::{Json, Router};
use confab_token::{CurrentUser, ErrorBody};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};
use utoipa::ToSchema;
use uuid::Uuid;

/// The most unread messages counted per chat; a chat with more shows this many and
/// `unread_capped`.
pub const MAX_UNREAD: u32 = 99;

/// Messages read per step while counting: most chats have none or a few unread.
const FIRST_STEP: usize = 10;

/// Chats whose counts are computed at once for one list.
const CONCURRENT_COUNTS: usize = 8;

/// How far ahead of this server's clock a read position may be (other instances' clocks).
const MAX_AHEAD_MS: i64 = 60_000;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/chats/{chat_id}/read", put(mark_read))
}

/// Mark a chat read up to a message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// The `time` (a version-1 TimeUUID) of the newest message the person has seen.
    pub time: String,
}

/// A chat's read position and what is left unread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReadState {
    /// The chat.
    pub chat_id: Uuid,
    /// The `time` of the newest message read (it only moves forward).
    pub read_up_to: Uuid,
    /// The other member's messages after it, at most 99.
    pub unread: u32,
    /// Whether there are more unread messages than `unread` says.
    pub unread_capped: bool,
}

/// What [`unread`] found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Unread {
    pub(crate) count: u32,
    pub(crate) capped: bool,
    /// The chat's latest message, if it has any.
    pub(crate) latest: Option<MessageView>,
}

/// Counts `user`'s unread messages in `chat_id`, read up to `read_up_to`.
pub(crate) async fn unread(
    state: &AppState,
    user: Uuid,
    chat_id: Uuid,
    read_up_to: Option<Uuid>,
) -> Result<Unread, ApiError> {
    let me = user.to_string();
    let read = read_up_to.map(|r| order_of(&r));
    let mut found = Unread::default();
    let mut before = None;
    let mut step = FIRST_STEP;
    loop {
        let page = merged_page(state, chat_id, before, step).await?;
        if found.latest.is_none() {
            found.latest = page.first().cloned();
        }
        for message in &page {
            if read.is_some_and(|r| order_of(&message.time) <= r) || message.from_user == me {
                return Ok(found);
            }
            if found.count == MAX_UNREAD {
                found.capped = true;
                return Ok(found);
            }
            found.count += 1;
        }
        match page.last() {
            Some(last) if page.len() == step => before = Some(last.time),
            _ => return Ok(found),
        }
        step = (MAX_UNREAD as usize + 1)
            .saturating_sub(found.count as usize)
            .max(1);
    }
}

/// Fills in the read positions, unread counts and latest messages of `user`'s `chats`.
pub(crate) async fn annotate(
    state: &AppState,
    user: Uuid,
    chats: &mut [ChatView],
) -> Result<(), ApiError> {
    let ids: Vec<Uuid> = chats.iter().map(|c| c.chat_id).collect();
    let positions = state.chats().read_positions(user, &ids).await?;
    let reads: Vec<(Uuid, Option<Uuid>)> = ids
        .iter()
        .map(|id| (*id, positions.get(id).copied()))
        .collect();
    let counts: Vec<Unread> = futures::stream::iter(reads)
        .map(|(id, read_up_to)| unread(state, user, id, read_up_to))
        .buffered(CONCURRENT_COUNTS)
        .try_collect()
        .await?;
    for (chat, found) in chats.iter_mut().zip(counts) {
        chat.read_up_to = positions.get(&chat.chat_id).copied();
        chat.unread = found.count;
        chat.unread_capped = found.capped;
        chat.last_message = found.latest;
    }
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Mark a chat read up to a message (only forward), and tell the caller's other pages.
#[utoipa::path(
    put,
    path = "/api/v1/chats/{chat_id}/read",
    tag = "chats",
    params(("chat_id" = Uuid, Path, description = "The chat")),
    request_body = MarkRead,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stored position (a later one already stored stays) and what is left unread", body = ReadState),
        (status = 400, description = "Malformed chat id or JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a member of the chat", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "`invalid_time`: not a version-1 TimeUUID, or later than now", body = ErrorBody),
        (status = 429, description = "Read marks sent too fast", body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The chat store or history is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn mark_read(
    user: CurrentUser,
    State(state): State<AppState>,
    ChatIdPath(chat_id): ChatIdPath,
    ApiJson(body): ApiJson<MarkRead>,
) -> Result<Json<ReadState>, ApiError> {
    let time =
        parse_cursor(&body.time).map_err(|reason| ApiError::invalid("invalid_time", reason))?;
    // A position in the future would hide the messages still to come.
    let time_ms = unix_micros(&time).map_or(i64::MAX, |us| us / 1_000);
    if time_ms > now_ms() + MAX_AHEAD_MS {
        return Err(ApiError::invalid(
            "invalid_time",
            "time is later than now: pass the `time` of a message you have seen",
        ));
    }
    state
        .limiters()
        .reads
        .acquire(&user.id.to_string())
        .map_err(|wait| ApiError::TooManyRequests {
            retry_after_secs: wait.secs(),
            message: "read marks come at most five a second; mark the newest message seen".into(),
        })?;
    member_chat(&state, chat_id, user.id).await?;
    let stored = state.chats().mark_read(user.id, chat_id, time).await?;
    state.realtime().publish_read(
        user.id,
        &ReadEvent {
            chat_id,
            read_up_to: stored,
        },
    );
    let left = unread(&state, user.id, chat_id, Some(stored)).await?;
    Ok(Json(ReadState {
        chat_id,
        read_up_to: stored,
        unread: left.count,
        unread_capped: left.capped,
    }))
}
