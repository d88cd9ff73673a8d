//! A mailbox cursor as a server-sent-events body: the person stream and the per-chat stream are
//! two [`View`]s of the same cursor.
//!
//! The body is pulled: an idle stream is a parked future holding its cursor (no task, no
//! channel of its own), woken by its mailbox. It ends when the server shuts down, when the
//! token that opened it expires (after an `expired` event), or when that token's session is
//! revoked (after a `revoked` event, routed through the mailbox like any other), so a stream
//! never outlives the right to read it.

use super::event::{Kind, LiveEvent};
use super::hub::{Batch, Cursor};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// Events taken from the mailbox at a time.
const BATCH: usize = 64;

/// Which events a stream shows, and how it names them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum View {
    /// Everything for the person but completed groups; ids are mailbox positions, and falling
    /// behind is a `reset`.
    Person,
    /// One chat's messages and completed groups; group ids as SSE ids, and falling behind is
    /// `lagged` (the per-chat stream's contract).
    Chat(Uuid),
}

impl View {
    fn shows(self, event: &LiveEvent) -> bool {
        match self {
            // A revocation ends the streams of its session only (see `LiveStream::fill`).
            _ if event.kind() == Kind::Revoked => false,
            View::Person => event.kind() != Kind::Group,
            View::Chat(chat) => {
                event.chat_id() == chat && matches!(event.kind(), Kind::Message | Kind::Group)
            }
        }
    }
}

/// The state of one open stream.
pub(crate) struct LiveStream {
    cursor: Cursor,
    view: View,
    pending: VecDeque<Event>,
    shutdown: Option<watch::Receiver<bool>>,
    /// When the token that opened the stream expires.
    expires: tokio::time::Instant,
    /// The login session of that token: its revocation ends the stream.
    session: Option<Uuid>,
    ended: bool,
}

impl LiveStream {
    /// A stream of `cursor` as `view`, starting with `first` (e.g. `ready`), ending at
    /// `expires`, when `session` is revoked, or when `shutdown` turns `true`.
    pub(crate) fn new(
        cursor: Cursor,
        view: View,
        first: Vec<Event>,
        (expires, session): (tokio::time::Instant, Option<Uuid>),
        shutdown: Option<watch::Receiver<bool>>,
    ) -> Self {
        Self {
            cursor,
            view,
            pending: first.into(),
            shutdown,
            expires,
            session,
            ended: false,
        }
    }

    fn frame(&self, seq: u64, event: &LiveEvent) -> Event {
        let frame = Event::default()
            .event(event.kind().name())
            .data(event.data());
        match self.view {
            View::Person => frame.id(self.cursor_position(seq)),
            View::Chat(_) => match event.group_id() {
                Some(id) => frame.id(id.to_string()),
                None => frame,
            },
        }
    }

    fn cursor_position(&self, seq: u64) -> String {
        self.cursor.position_of(seq)
    }

    /// Moves what the mailbox has into `pending`; whether anything was there.
    fn fill(&mut self) -> bool {
        let Some(batch) = self.cursor.take(BATCH) else {
            return false;
        };
        match batch {
            Batch::Events(events) => {
                for (seq, event) in &events {
                    if event.kind() == Kind::Revoked {
                        if event.session().is_some() && event.session() == self.session {
                            self.pending
                                .push_back(Event::default().event("revoked").data(event.data()));
                            self.ended = true;
                            return true;
                        }
                        continue;
                    }
                    if self.view.shows(event) {
                        let frame = self.frame(*seq, event);
                        self.pending.push_back(frame);
                    }
                }
            }
            Batch::Lagged => {
                let frame = match self.view {
                    View::Person => Event::default()
                        .event("reset")
                        .id(self.cursor.position())
                        .data(r#"{"reason":"lagged"}"#),
                    View::Chat(_) => Event::default().event("lagged").data(r#"{"skipped":null}"#),
                };
                self.pending.push_back(frame);
            }
        }
        true
    }

    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.ended {
                return None;
            }
            if self.fill() {
                continue;
            }
            let expired = tokio::time::sleep_until(self.expires);
            let shutdown = async {
                match &mut self.shutdown {
                    Some(shutdown) => {
                        let _ = shutdown.wait_for(|stop| *stop).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.cursor.changed() => {}
                () = shutdown => return None,
                () = expired => {
                    self.ended = true;
                    return Some(Event::default().event("expired").data(
                        r#"{"message":"the access token expired: reconnect with a fresh one"}"#,
                    ));
                }
            }
        }
    }

    /// The stream as an SSE response body, with keep-alive comments every `keep_alive`.
    pub(crate) fn into_sse(
        self,
        keep_alive: Duration,
    ) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
        // Boxed: the state lives on the heap once, and the response future stays small.
        let body = stream::unfold(Box::new(self), |mut state| async move {
            let event = state.next_event().await?;
            Some((Ok(event), state))
        });
        Sse::new(body).keep_alive(KeepAlive::new().interval(keep_alive))
    }
}

/// When a token with this `exp` (seconds since the Unix epoch) expires, on tokio's clock.
pub(crate) fn deadline(exp: u64) -> tokio::time::Instant {
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    tokio::time::Instant::now() + Duration::from_secs(exp.saturating_sub(now_secs))
}
