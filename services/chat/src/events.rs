//! `GET /api/v1/chats/{chat_id}/events`: server-sent events of the chat's completed message
//! groups, for members only.
//!
//! Events (each `data` is JSON):
//! - `ready` once subscribed (`{"chat_id"}`): groups completed from now on will follow;
//! - `group` per completed group holding messages of this chat ([`GroupEvent`]); the SSE `id`
//!   is the group id;
//! - `lagged` (`{"skipped": n}`) when this stream fell behind and missed `n` groups: reload the
//!   latest history page.
//!
//! A comment line is sent every 15 s to keep proxies from closing an idle stream. The stream
//! ends when the feed closes or the server shuts down. Browsers' `EventSource` cannot send an
//! `Authorization` header, so this endpoint also accepts `?access_token=`
//! ([`StreamUser`](crate::extract::StreamUser)). Groups are best effort (a realtime view):
//! clients merge them into the view by `message_id` and use history to fill gaps.

use crate::error::ApiError;
use crate::extract::{ChatIdPath, StreamUser};
use crate::feed::ChatGroup;
use crate::messages::{member_chat, MessageView};
use crate::AppState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::{Extension, Router};
use confab_token::ErrorBody;
use futures::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use utoipa::ToSchema;
use uuid::Uuid;

/// How often an idle stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

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
    fn of(group: &ChatGroup, chat_id: &str) -> Option<Self> {
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

struct Subscription {
    groups: broadcast::Receiver<Arc<ChatGroup>>,
    chat_id: String,
    shutdown: Option<watch::Receiver<bool>>,
    ready_sent: bool,
}

impl Subscription {
    async fn next_event(&mut self) -> Option<Event> {
        if !self.ready_sent {
            self.ready_sent = true;
            return Some(
                Event::default()
                    .event("ready")
                    .data(serde_json::json!({ "chat_id": self.chat_id }).to_string()),
            );
        }
        loop {
            let received = match &mut self.shutdown {
                Some(shutdown) => tokio::select! {
                    received = self.groups.recv() => received,
                    _ = shutdown.wait_for(|stop| *stop) => return None,
                },
                None => self.groups.recv().await,
            };
            match received {
                Ok(group) => {
                    let Some(event) = GroupEvent::of(&group, &self.chat_id) else {
                        continue;
                    };
                    let data = serde_json::to_string(&event).unwrap_or_default();
                    return Some(
                        Event::default()
                            .event("group")
                            .id(event.group_id.to_string())
                            .data(data),
                    );
                }
                Err(RecvError::Lagged(skipped)) => {
                    return Some(
                        Event::default()
                            .event("lagged")
                            .data(serde_json::json!({ "skipped": skipped }).to_string()),
                    )
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

fn into_stream(
    subscription: Subscription,
) -> impl Stream<Item = Result<Event, std::convert::Infallible>> {
    stream::unfold(subscription, |mut subscription| async move {
        let event = subscription.next_event().await?;
        Some((Ok(event), subscription))
    })
}

/// Server-sent events of the chat's completed message groups.
#[utoipa::path(
    get,
    path = "/api/v1/chats/{chat_id}/events",
    tag = "events",
    params(
        ("chat_id" = Uuid, Path, description = "The chat"),
        ("access_token" = Option<String>, Query, description = "The access token, for clients that cannot send an Authorization header (EventSource)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A text/event-stream of `ready`, `group` (GroupEvent JSON) and `lagged` events", content_type = "text/event-stream"),
        (status = 400, description = "Malformed chat id", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a member of the chat", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
        (status = 503, description = "No realtime feed is configured, or the database is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn events(
    StreamUser(user): StreamUser,
    State(state): State<AppState>,
    ChatIdPath(chat_id): ChatIdPath,
    shutdown: Option<Extension<Shutdown>>,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    member_chat(&state, chat_id, user.id).await?;
    let groups = state
        .feed()
        .subscribe()
        .ok_or(ApiError::Unavailable("the realtime event feed"))?;
    let subscription = Subscription {
        groups,
        chat_id: chat_id.to_string(),
        shutdown: shutdown.map(|Extension(Shutdown(rx))| rx),
        ready_sent: false,
    };
    Ok(Sse::new(into_stream(subscription)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_pipeline::record::{iso_from_ms, timeuuid_from_ms};
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

    #[tokio::test]
    async fn a_subscription_says_ready_then_streams_groups_and_lag() {
        let (sender, groups) = broadcast::channel(1);
        let mut subscription = Subscription {
            groups,
            chat_id: "c1".into(),
            shutdown: None,
            ready_sent: false,
        };
        assert!(subscription.next_event().await.is_some(), "ready");
        let group = |i| {
            Arc::new(Group {
                id: Uuid::from_u128(i),
                key: "c1".to_owned(),
                records: vec![message("c1", i as u64)],
                first_time_ms: 0,
                last_time_ms: 0,
                bytes: 0,
                reason: CompletionReason::MaxMessages,
            })
        };
        sender.send(group(1)).expect("send");
        sender.send(group(2)).expect("send");
        let lagged = format!("{:?}", subscription.next_event().await.expect("lagged"));
        assert!(lagged.contains("lagged"), "{lagged}");
        let next = format!("{:?}", subscription.next_event().await.expect("group"));
        assert!(next.contains("group") && next.contains("m2"), "{next}");
        drop(sender);
        assert!(subscription.next_event().await.is_none(), "closed");
    }
}
