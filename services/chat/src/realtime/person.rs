//! `GET /api/v1/events`: one server-sent-events stream per person, for all of their chats;
//! `POST /api/v1/chats/{chat_id}/typing`: a typing notice to the chat's other member.
//!
//! Events (each `data` is JSON; `id` is the person's position, `<epoch>-<sequence>`):
//! - `ready` (`{"user_id","resumed"}`) once the stream is open: everything from here on
//!   follows. Open the stream first, then read the chat list and history, and merge what
//!   arrives meanwhile by `message_id`: nothing falls between the two.
//! - `message` ([`MessageView`](crate::MessageView)) for each message of the person's chats
//!   as soon as the log acknowledged it (the live lane; the group lane writes it to history a
//!   few seconds later with the same `message_id`).
//! - `chat` ([`ChatView`](crate::ChatView)) when a chat with the person is started.
//! - `typing` ([`TypingEvent`]) while the other member of a chat types; never logged or stored.
//! - `read` ([`ReadEvent`](super::ReadEvent)) when the person marked a chat read on one of their
//!   pages or devices (`PUT /api/v1/chats/{chat_id}/read`): clear its unread mark.
//! - `reset` (`{"reason"}`) when events were missed: the `Last-Event-ID` of a reconnect is not
//!   in the resume window (`resume_window`), or the stream fell behind (`lagged`). Read the
//!   chat list and the open chat's latest page again.
//! - `expired` when the access token expires; the stream then ends. Reconnect with a fresh
//!   token and the last `id` as `Last-Event-ID`.
//! - `revoked` when the token's session is revoked (logout, a password change, a reused refresh
//!   token); the stream then ends, and so does the session: log in again.
//!
//! The token travels in the `Authorization` header only (never in the URL, where proxies log
//! it; `?access_token=` is refused with 401 `token_in_url`), so browsers read this stream with
//! `fetch`, not `EventSource`.

use super::event::{LiveEvent, TypingEvent};
use super::hub::AttachError;
use super::sse::{deadline, LiveStream, View};
use crate::error::ApiError;
use crate::events::Shutdown;
use crate::extract::{ChatIdPath, StreamUser};
use crate::messages::member_chat;
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use confab_token::{CurrentUser, ErrorBody};
use std::time::Duration;

/// Server-sent events for all of the caller's chats.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    params(
        ("Last-Event-ID" = Option<String>, Header, description = "The `id` of the last event received, to resume after it"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A text/event-stream of `ready`, `message`, `chat`, `typing`, `read`, `reset`, `expired` and `revoked` events", content_type = "text/event-stream"),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 429, description = "Too many streams open for this person", body = ErrorBody),
        (status = 503, description = "The live lane is off, or this instance holds its maximum of streams", body = ErrorBody),
    )
)]
pub(crate) async fn person_events(
    StreamUser(user): StreamUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    shutdown: Option<Extension<Shutdown>>,
) -> Result<Response, ApiError> {
    let realtime = state.realtime();
    if !realtime.is_live() {
        return Err(ApiError::Unavailable("the live lane"));
    }
    let last = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty());
    let attached = realtime.hub().attach(user.id, last).map_err(refused)?;
    let mut first = Vec::with_capacity(2);
    if last.is_some() && !attached.resumed {
        first.push(
            Event::default()
                .event("reset")
                .data(r#"{"reason":"resume_window"}"#),
        );
    }
    first.push(
        Event::default()
            .event("ready")
            .id(attached.cursor.position())
            .data(
                serde_json::json!({ "user_id": user.id, "resumed": attached.resumed }).to_string(),
            ),
    );
    let stream = LiveStream::new(
        attached.cursor,
        View::Person,
        first,
        (deadline(user.claims.exp), user.claims.sid),
        shutdown.map(|Extension(Shutdown(rx))| rx),
    );
    let keep_alive = Duration::from_secs(realtime.hub().config().keep_alive_secs);
    let mut response = stream.into_sse(keep_alive).into_response();
    // Reverse proxies (nginx) buffer responses unless told not to, which would hold events back.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The refusal for a stream the caps do not allow.
pub(crate) fn refused(err: AttachError) -> ApiError {
    match err {
        AttachError::PerUser(max) => ApiError::TooManyRequests {
            retry_after_secs: 5,
            message: format!(
                "you have {max} events streams open, the most allowed; close one (a tab or a \
                 device) first"
            ),
        },
        AttachError::Total(_) => ApiError::Unavailable("a realtime stream on this instance"),
    }
}

/// Tell the chat's other member that the caller is typing.
#[utoipa::path(
    post,
    path = "/api/v1/chats/{chat_id}/typing",
    tag = "events",
    params(("chat_id" = uuid::Uuid, Path, description = "The chat")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Passed on to the other member's live streams, if any"),
        (status = 400, description = "Malformed chat id", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a member of the chat, or `blocked`: one member blocks the other", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
        (status = 429, description = "Notices sent too fast", body = ErrorBody),
        (status = 503, description = "The live lane is off, or the database is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn typing(
    user: CurrentUser,
    State(state): State<AppState>,
    ChatIdPath(chat_id): ChatIdPath,
) -> Result<StatusCode, ApiError> {
    let realtime = state.realtime();
    if !realtime.is_live() {
        return Err(ApiError::Unavailable("the live lane"));
    }
    state
        .limiters()
        .typing
        .acquire(&user.id.to_string())
        .map_err(|wait| ApiError::TooManyRequests {
            retry_after_secs: wait.secs(),
            message: "typing notices come at most once a second; send one every few seconds".into(),
        })?;
    let chat = member_chat(&state, chat_id, user.id).await?;
    let Some(peer) = chat.peer_of(user.id) else {
        return Err(ApiError::Internal);
    };
    crate::blocks::refuse_if_blocked(&state, user.id, peer).await?;
    let notice = TypingEvent {
        chat_id,
        user_id: user.id,
        at_ms: chrono::Utc::now().timestamp_millis(),
    };
    if let Some(event) = LiveEvent::typing(&notice) {
        realtime.publish_shared(&[peer], event);
    }
    Ok(StatusCode::NO_CONTENT)
}
