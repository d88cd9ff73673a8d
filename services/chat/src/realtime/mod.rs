//! The realtime path, in one place: who is connected, what reaches them, and how a reconnect
//! resumes.
//!
//! ```text
//!  message log ──tail (this instance's own)──▶ ┐   (and Recent: the last minutes per chat)
//!  group feed  ──completed groups────────────▶ ├─▶ Hub: user ─▶ Mailbox (window of events)
//!  POST /chats, /typing, PUT /read ──────────▶ │        │ one cursor per open stream
//!  other instances (PostgreSQL NOTIFY) ──────▶ ┘
//!                                                       ▼
//!                          GET /api/v1/events (one stream per person, all chats)
//!                          GET /api/v1/chats/{id}/events (one chat's view of the same)
//! ```
//!
//! - **Live lane** ([`tail`]): every instance tails the message log itself (the in-process log,
//!   or the Kafka topic from its end), so a message sent through any instance reaches the
//!   people connected to every instance as soon as the log acknowledged it, seconds before its
//!   group is written. The group lane (Firestore, history) is untouched: same groups, same ids.
//! - **Routing** ([`hub`]): an event goes only to the mailboxes of the people it is for (a
//!   message's two members), found in a sharded map; the work per message does not grow with
//!   the number of people connected to other chats. Each event is serialized once and shared.
//! - **Streams** ([`person`], [`sse`]): a stream is a cursor into its person's mailbox; the
//!   mailbox's window bounds memory, a stream that falls behind it gets an explicit `reset`, and
//!   a reconnect resumes from `Last-Event-ID` within the window.
//! - **Limits**: streams per person and per instance are capped; a stream ends when its token
//!   expires or its session is revoked (a `revoked` event in the person's mailbox, from the
//!   verifier's revocation feed).
//!
//! Messages go through the log, which every instance tails. New chats, typing notices and read
//! marks must not (typing is never logged or stored): the instance that took the request
//! publishes them to its own streams and, with a PostgreSQL database, to the other instances
//! through `LISTEN`/`NOTIFY` ([`bus`]).

mod bus;
mod event;
mod hub;
pub(crate) mod person;
mod recent;
mod sse;
mod tail;

pub use event::{ReadEvent, TypingEvent};

pub(crate) use hub::Hub;
pub(crate) use person::refused;
pub(crate) use sse::{deadline, LiveStream, View};

use crate::chats::ChatView;
use crate::config::RealtimeConfig;
use crate::feed::GroupFeed;
use crate::message_log::{MessageLog, Tail};
use crate::AppState;
use axum::routing::{get, post};
use axum::Router;
use event::LiveEvent;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often mailboxes past their resume window are forgotten.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/events", get(person::person_events))
        .route("/api/v1/chats/{chat_id}/typing", post(person::typing))
}

/// Whether `path` is one of the events streams (the person's and a chat's): the server answers
/// them on its lean path, which holds no connection buffers while a stream waits
/// (`confab_service_kit::server::serve_streams`).
pub fn is_stream_path(path: &str) -> bool {
    path == "/api/v1/events"
        || path
            .strip_prefix("/api/v1/chats/")
            .and_then(|rest| rest.strip_suffix("/events"))
            .is_some_and(|chat| !chat.is_empty() && !chat.contains('/'))
}

/// The registry and the tasks that feed it. Dropping it stops them.
pub(crate) struct Realtime {
    hub: Arc<Hub>,
    recent: Arc<recent::Recent>,
    /// The other instances, for the events that do not go through the log.
    bus: Option<bus::Bus>,
    live: bool,
    tasks: Vec<JoinHandle<()>>,
    #[cfg(feature = "kafka")]
    kafka: Option<crate::kafka_tail::TopicTail>,
}

impl Drop for Realtime {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Realtime {
    /// Starts routing `feed`'s groups and, with `config.live`, this instance's tail of `log`.
    pub(crate) fn start(
        config: &RealtimeConfig,
        log: &dyn MessageLog,
        feed: &dyn GroupFeed,
        revocations: tokio::sync::broadcast::Receiver<confab_token::Revoked>,
        shared_database: Option<sqlx::postgres::PgPool>,
    ) -> Result<Self, String> {
        let hub = Arc::new(Hub::new(config.clone()));
        let recent = Arc::new(recent::Recent::new(
            Duration::from_secs(config.recent_window_secs),
            config.recent_messages,
        ));
        let mut tasks = vec![tokio::spawn(tail::route_revocations(
            revocations,
            Arc::clone(&hub),
        ))];
        if let Some(groups) = feed.subscribe() {
            tasks.push(tokio::spawn(tail::route_groups(groups, Arc::clone(&hub))));
        }
        let sweeper = Arc::clone(&hub);
        let recent_sweeper = Arc::clone(&recent);
        tasks.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval(SWEEP_INTERVAL);
            loop {
                interval.tick().await;
                recent_sweeper.sweep(std::time::Instant::now());
                let forgotten = sweeper.sweep();
                if forgotten > 0 {
                    tracing::debug!(forgotten, "Forgot mailboxes past their resume window.");
                }
            }
        }));
        #[cfg(feature = "kafka")]
        let mut kafka = None;
        let live = config.live && log.tail().is_some();
        let bus = match shared_database {
            Some(pool) if live => Some(bus::Bus::start(pool, Arc::clone(&hub), &mut tasks)),
            _ => None,
        };
        if config.live {
            match log.tail() {
                Some(Tail::Memory(memory)) => {
                    tasks.push(tokio::spawn(tail::tail_memory(
                        memory,
                        Arc::clone(&hub),
                        Arc::clone(&recent),
                    )));
                }
                #[cfg(feature = "kafka")]
                Some(Tail::Kafka {
                    brokers,
                    topic,
                    properties,
                }) => {
                    let routed = Arc::clone(&hub);
                    let remembered = Arc::clone(&recent);
                    kafka = Some(crate::kafka_tail::TopicTail::start(
                        &brokers,
                        &topic,
                        &properties,
                        "live lane",
                        // The message log is the service's own to produce to; its creation is
                        // the log's business, not the reader's.
                        None,
                        move |message| {
                            use rdkafka::Message;
                            if let Some(payload) = message.payload() {
                                tail::publish_record(&routed, &remembered, payload);
                            }
                        },
                    )?);
                }
                #[cfg(not(feature = "kafka"))]
                Some(Tail::Kafka { .. }) => {
                    return Err("the live lane on Kafka needs the `kafka` feature".into());
                }
                None => tracing::warn!(
                    log = log.name(),
                    "This message log cannot be tailed: no live lane (GET /api/v1/events answers 503)."
                ),
            }
        }
        Ok(Self {
            hub,
            recent,
            bus,
            live,
            tasks,
            #[cfg(feature = "kafka")]
            kafka,
        })
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The messages of `chat` this instance's tail read within the recent window, oldest first
    /// (none without the live lane).
    pub(crate) fn recent(&self, chat: uuid::Uuid) -> Vec<Arc<crate::messages::MessageView>> {
        self.recent.of(chat, std::time::Instant::now())
    }

    /// Copies the auth service's revoked sessions from `url` into `verifier` every second, for
    /// as long as this runs (the new ones end their streams through the verifier's feed).
    pub(crate) fn poll_revocations(
        &mut self,
        url: String,
        verifier: Arc<confab_token::TokenVerifier>,
    ) {
        self.tasks
            .push(tokio::spawn(tail::poll_revocations(url, verifier)));
    }

    /// Whether the live lane runs (the person stream is served).
    pub(crate) fn is_live(&self) -> bool {
        self.live
    }

    /// Whether the live lane is reading its log; the reason when it is not.
    pub(crate) fn check(&self) -> Result<(), String> {
        #[cfg(feature = "kafka")]
        if let Some(kafka) = &self.kafka {
            return kafka.check();
        }
        Ok(())
    }

    /// Publishes an event that does not go through the log to `users`' streams, on this
    /// instance and (through the bus) on the others.
    pub(crate) fn publish_shared(&self, users: &[uuid::Uuid], event: LiveEvent) {
        if let Some(bus) = &self.bus {
            bus.send(users, &event);
        }
        self.hub.publish(users, &Arc::new(event));
    }

    /// Tells the reader's own streams that a chat was read.
    pub(crate) fn publish_read(&self, user: uuid::Uuid, read: &ReadEvent) {
        if let Some(event) = LiveEvent::read(read) {
            self.publish_shared(&[user], event);
        }
    }

    /// Tells both members of a new chat.
    pub(crate) fn publish_chat(&self, chat: &ChatView) {
        if let Some(event) = LiveEvent::chat(chat) {
            let people: Vec<_> = chat.members.iter().map(|m| m.id).collect();
            self.publish_shared(&people, event);
        }
    }
}

/// The routing step as `benches/routing.rs` drives it; not a stable API.
#[doc(hidden)]
pub mod bench {
    use super::event::{Kind, LiveEvent};
    use super::hub::{Batch, Cursor, Hub};
    use crate::config::RealtimeConfig;
    use std::sync::Arc;
    use uuid::Uuid;

    /// A registry holding `streams` open streams: the two members of one chat, each with one
    /// stream, and idle people (four streams each) for the rest.
    pub struct Routing {
        hub: Arc<Hub>,
        members: [Uuid; 2],
        member_cursors: Vec<Cursor>,
        _idle: Vec<Cursor>,
        event: Arc<LiveEvent>,
    }

    impl Routing {
        /// The registry with `streams` streams open (at least the two members').
        pub fn new(streams: usize) -> Self {
            let hub = Arc::new(Hub::new(RealtimeConfig {
                max_streams: streams + 2,
                ..RealtimeConfig::default()
            }));
            let members = [Uuid::new_v4(), Uuid::new_v4()];
            let member_cursors = members
                .iter()
                .map(|m| hub.attach(*m, None).expect("within the caps").cursor)
                .collect();
            let mut idle = Vec::new();
            let mut person = Uuid::new_v4();
            for i in 0..streams.saturating_sub(2) {
                if i % 4 == 0 {
                    person = Uuid::new_v4();
                }
                idle.push(hub.attach(person, None).expect("within the caps").cursor);
            }
            let data = format!(
                r#"{{"message_id":"{}","chat_id":"{}","from_user":"{}","to_user":"{}","body":"hello there, how are you today?","time":"{}","time_iso":"2026-12-06T20:00:00.000Z"}}"#,
                Uuid::new_v4(),
                Uuid::new_v4(),
                members[0],
                members[1],
                Uuid::new_v4()
            );
            Self {
                hub,
                members,
                member_cursors,
                _idle: idle,
                event: Arc::new(LiveEvent::new(Kind::Message, Uuid::new_v4(), data)),
            }
        }

        /// Routes one message to the chat's members and has each member's stream take it;
        /// returns how many events the streams took.
        pub fn route_one(&mut self) -> usize {
            self.hub.publish(&self.members, &self.event);
            let mut taken = 0;
            for cursor in &mut self.member_cursors {
                if let Some(Batch::Events(events)) = cursor.take(16) {
                    taken += events.len();
                }
            }
            taken
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_stream_path;

    #[test]
    fn the_events_streams_and_nothing_else_are_stream_paths() {
        assert!(is_stream_path("/api/v1/events"));
        assert!(is_stream_path(
            "/api/v1/chats/0190a7c2-0000-7000-8000-000000000000/events"
        ));
        for path in [
            "/api/v1/events/",
            "/api/v1/chats//events",
            "/api/v1/chats/a/b/events",
            "/api/v1/chats/a/messages",
            "/api/v1/chats",
        ] {
            assert!(!is_stream_path(path), "{path}");
        }
    }
}
