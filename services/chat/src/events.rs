//! `GET /api/v1/chats/{chat_id}/events`: one chat's view of its member's live stream
//! ([`crate::realtime`]), for members only: the chat's completed message groups and, with the
//! live lane on, its messages as soon as the log acknowledged them.
//!
//! Events (each `data` is JSON):
//! - `ready` once subscribed (`{"chat_id"}`): what follows is from now on;
//! - `message` per message of the chat ([`MessageView`]), seconds before its group;
//! - `group` per completed group holding messages of this chat ([`GroupEvent`]); the SSE `id`
//!   is the group id;
//! - `lagged` when this stream fell behind and missed events: reload the latest history page;
//! - `expired` when the token that opened the stream expires; the stream then ends.
//!
//! A comment line is sent every `realtime.keep_alive_secs` to keep proxies from closing an idle
//! stream. The stream ends when the server shuts down, when its token expires (`expired`) or
//! when its session is revoked (`revoked`: logout, password change). The token goes in the
//! `Authorization` header only: `?access_token=` is refused
//! ([`StreamUser`](crate::extract::StreamUser)), so read the stream with `fetch` rather than
//! `EventSource`. Clients merge events by `message_id` and use history to fill gaps.

use crate::error::ApiError;
use crate::extract::{ChatIdPath, StreamUser};
use crate::feed::ChatGroup;
use crate::messages::{member_chat, MessageView};
use crate::realtime::{self, LiveStream, View};
use crate::AppState;
use axum::extract::State;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use confab_token::ErrorBody;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::watch;
use utoipa::ToSchema;
use uuid::Uuid;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/chats/{chat_id}/events", get(events))
}

/// Flips to `true` when the server shuts down, ending every events stream (set by
/// [`serve_on`](crate::serve_on)).
#[derive(Debug, Clone)]
pub(crate) struct Shutdown(pub(crate) watch::Receiver<bool>);

/// A completed group of this chat's messages.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupEvent {
    /// The group's deterministic id (the same on a replay).
    pub group_id: Uuid,
    /// The chat.
    pub chat_id: String,
    /// The messages, in the order they were sent.
    pub messages: Vec<MessageView>,
    /// The first message's time, in ms since the Unix epoch.
    pub first_time_ms: u64,
    /// The last message's time, in ms since the Unix epoch.
    pub last_time_ms: u64,
    /// What completed the group (`inactivity`, `max_messages`, ...).
    pub reason: String,
}

impl GroupEvent {
    /// The part of `group` that belongs to `chat_id`, if any.
    pub(crate) fn of(group: &ChatGroup, chat_id: &str) -> Option<Self> {
        let messages: Vec<MessageView> = group
            .records
            .iter()
            .filter(|m| m.chat_id == chat_id)
            .cloned()
            .map(MessageView::from)
            .collect();
        if messages.is_empty() {
            return None;
        }
        Some(Self {
            group_id: group.id,
            chat_id: chat_id.to_owned(),
            messages,
            first_time_ms: group.first_time_ms,
            last_time_ms: group.last_time_ms,
            reason: group.reason.as_str().to_owned(),
        })
    }
}

/// Server-sent events of the chat's completed groups, and its messages as they are sent.
#[utoipa::path(
    get,
    path = "/api/v1/chats/{chat_id}/events",
    tag = "events",
    params(
        ("chat_id" = Uuid, Path, description = "The chat"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A text/event-stream of `ready`, `message` (MessageView JSON), `group` (GroupEvent JSON) and `lagged` events", content_type = "text/event-stream"),
        (status = 400, description = "Malformed chat id", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a member of the chat", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
        (status = 429, description = "Too many streams open for this person", body = ErrorBody),
        (status = 503, description = "No group feed is configured, or the database is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn events(
    StreamUser(user): StreamUser,
    State(state): State<AppState>,
    ChatIdPath(chat_id): ChatIdPath,
    shutdown: Option<Extension<Shutdown>>,
) -> Result<Response, ApiError> {
    member_chat(&state, chat_id, user.id).await?;
    if state.feed().subscribe().is_none() {
        return Err(ApiError::Unavailable("the realtime event feed"));
    }
    let realtime = state.realtime();
    let attached = realtime
        .hub()
        .attach(user.id, None)
        .map_err(realtime::refused)?;
    let ready = Event::default()
        .event("ready")
        .data(serde_json::json!({ "chat_id": chat_id }).to_string());
    let stream = LiveStream::new(
        attached.cursor,
        View::Chat(chat_id),
        vec![ready],
        (realtime::deadline(user.claims.exp), user.claims.sid),
        shutdown.map(|Extension(Shutdown(rx))| rx),
    );
    let keep_alive = Duration::from_secs(realtime.hub().config().keep_alive_secs);
    Ok(stream.into_sse(keep_alive).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_pipeline::chat::{iso_from_ms, timeuuid_from_ms};
    use confab_pipeline::{ChatMessage, CompletionReason, Group};

    fn message(chat: &str, i: u64) -> ChatMessage {
        ChatMessage {
            message_id: format!("m{i}").into(),
            chat_id: chat.into(),
            from_user: "a".into(),
            to_user: "b".into(),
            body: format!("hello {i}").into(),
            time: timeuuid_from_ms(1_000 + i, 0, [1; 6]),
            time_iso: iso_from_ms(1_000 + i).into(),
        }
    }

    #[test]
    fn a_group_event_keeps_only_its_chats_messages() {
        let group = Group {
            id: Uuid::new_v4(),
            key: "a-c1".to_owned(),
            records: vec![message("c1", 1), message("c2", 2), message("c1", 3)],
            first_time_ms: 1_001,
            last_time_ms: 1_003,
            bytes: 0,
            reason: CompletionReason::Inactivity,
        };
        let event = GroupEvent::of(&group, "c1").expect("c1 has messages");
        assert_eq!(
            event
                .messages
                .iter()
                .map(|m| m.message_id.as_str())
                .collect::<Vec<_>>(),
            ["m1", "m3"]
        );
        assert_eq!(event.reason, "inactivity");
        assert!(GroupEvent::of(&group, "c3").is_none());
    }
}
