//! The chat service: 1:1 chats, sending messages into the stream, history pagination, the
//! realtime events stream, and spam controls.
//!
//! - `POST /api/v1/chats` starts (or returns) the caller's chat with a peer; `GET /api/v1/chats`
//!   lists the caller's chats, most recently active first.
//! - `POST /api/v1/chats/{chat_id}/messages` stamps a message (`message_id`, TimeUUID `time`)
//!   and answers 201 only once the message log has acknowledged it (503 with `Retry-After` when
//!   it cannot); a `client_message_id` makes retries return the same message.
//! - `GET /api/v1/chats/{chat_id}/messages?time=&quantity=` and the seed's
//!   `GET /chat/{chat_id}?time=&quantity=` page through history, newest first.
//! - `GET /api/v1/events` streams everything for the caller's chats as it happens: messages the
//!   log acknowledged, new chats, typing notices (server-sent events, resumable; [`realtime`]);
//!   `POST /api/v1/chats/{chat_id}/typing` sends a typing notice; `PUT
//!   /api/v1/chats/{chat_id}/read` stores a read position (the chat list carries unread counts).
//! - `GET /api/v1/chats/{chat_id}/events` streams one chat's messages and completed groups.
//! - `POST /api/v1/blocks`, `DELETE /api/v1/blocks/{user_id}`, `GET /api/v1/blocks`: blocking a
//!   person stops both sides from starting a chat or writing to the other ([`blocks`]).
//! - `GET /healthz`, `GET /readyz` (database, log, history, feed), `GET /openapi.json`.
//!
//! Only a chat's two members can read or post to it (403 otherwise); the sender is always the
//! token's user. Every error is JSON `{ "error", "message" }` with a fitting status; malformed
//! input is always a 4xx, never a 5xx or a panic.
//!
//! Backends sit behind small traits so that one code path serves the embedded default and the
//! real servers: [`MessageLog`] (in-process log or Kafka), [`History`] (SQL or Cassandra),
//! [`GroupFeed`] (in-process broadcast or Kafka), [`ChatStore`] (chats and client message ids in
//! SQL, PostgreSQL or SQLite, or in Cassandra). Users are always read from the auth service's
//! SQL database ([`store`]). With the
//! in-process log the service also runs the aggregator itself ([`embedded`]), so one process
//! serves the whole flow.
//!
//! The runner calls [`serve`]; tests and embedding programs build an [`AppState`] (optionally
//! with their own backends, [`Backends`]) and drive [`app`] directly.
#![warn(missing_docs)]

mod activity;
mod blocks;
mod chats;
pub mod config;
pub mod content;
mod discovery;
pub mod embedded;
pub mod error;
mod events;
pub mod extract;
pub mod feed;
mod health;
pub mod history;
#[cfg(feature = "kafka")]
mod kafka_tail;
pub mod limits;
mod members;
pub mod message_log;
mod messages;
mod reads;
pub mod realtime;
pub mod store;
pub mod timeuuid;

pub use blocks::{BlockList, BlockView, NewBlock, MAX_BLOCKS_PER_USER};
pub use chats::{
    ChatPage, ChatView, ListChatsQuery, Member, NewChat, DEFAULT_CHATS_PER_PAGE, MAX_CHATS_PER_PAGE,
};
pub use config::{
    Config, ConfigError, EmbeddedConfig, EventsConfig, HistoryConfig, KafkaEventsConfig,
    KafkaLogConfig, LimitsConfig, LogConfig, RealtimeConfig, StoreConfig,
};
pub use discovery::ApiDoc;
pub use error::ApiError;
pub use events::GroupEvent;
pub use feed::{ChatGroup, GroupFeed};
pub use health::{NotReady, Status};
pub use history::History;
pub use message_log::{LogError, MessageLog};
pub use messages::{HistoryQuery, MessagePage, MessageView, SendMessage, DEFAULT_QUANTITY};
pub use reads::{MarkRead, ReadState, MAX_UNREAD};
pub use store::ChatStore;

use axum::extract::FromRef;
use axum::Router;
use confab_service_kit::http::{service_layers, shutdown_signal};
use confab_token::{KeyError, TokenVerifier};
use embedded::EmbeddedPipeline;
use feed::{InProcessFeed, NoFeed};
use history::{HistoryError, SqlHistory};
use limits::TokenBuckets;
use message_log::MemoryMessageLog;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::{Store, StoreError};
use timeuuid::TimeUuidClock;
use tokio::net::TcpListener;

/// How often forgotten `client_message_id`s are deleted while serving.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A configuration value is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be reached or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The token verification keys could not be loaded.
    #[error("cannot load the token verification keys ([auth]): {0}")]
    Keys(#[from] KeyError),
    /// The message log could not be set up.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The history store could not be set up.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The event feed could not be set up.
    #[error("cannot set up the event feed: {0}")]
    Feed(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// Backends an embedding program (or a test) provides instead of the configured ones. Each
/// field left `None` is built from the [`Config`].
#[derive(Default)]
pub struct Backends {
    /// Verifies access tokens (instead of `[auth]`).
    pub verifier: Option<Arc<TokenVerifier>>,
    /// Where sends go (instead of `[log]`; no embedded aggregator is started then).
    pub log: Option<Arc<dyn MessageLog>>,
    /// Where history pages come from (instead of `[history]`).
    pub history: Option<Arc<dyn History>>,
    /// What feeds the events streams (instead of `[events]`).
    pub feed: Option<Arc<dyn GroupFeed>>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("verifier", &self.verifier.is_some())
            .field("log", &self.log.as_ref().map(|l| l.name()))
            .field("history", &self.history.as_ref().map(|h| h.name()))
            .field("feed", &self.feed.as_ref().map(|f| f.name()))
            .finish()
    }
}

/// The spam controls' counters.
#[derive(Debug)]
pub struct Limiters {
    /// Sends per user (token bucket).
    pub sends: TokenBuckets,
    /// New chats per user per hour.
    pub new_chats: TokenBuckets,
    /// Typing notices per user.
    pub typing: TokenBuckets,
    /// Read marks per user.
    pub reads: TokenBuckets,
}

struct Inner {
    store: Store,
    chats: Arc<dyn ChatStore>,
    known_chats: members::KnownChats,
    /// Block answers remembered, when this process is the only one writing blocks (SQLite).
    known_blocks: Option<blocks::KnownBlocks>,
    activity: Arc<activity::Activity>,
    /// The task storing `activity`, stopped with the state.
    activity_writer: tokio::task::AbortHandle,
    verifier: Arc<TokenVerifier>,
    log: Arc<dyn MessageLog>,
    history: Arc<dyn History>,
    feed: Arc<dyn GroupFeed>,
    realtime: realtime::Realtime,
    embedded: tokio::sync::Mutex<Option<EmbeddedPipeline>>,
    pipeline_metrics: Option<Arc<confab_pipeline::Metrics>>,
    clock: TimeUuidClock,
    limiters: Limiters,
    config: Config,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.activity_writer.abort();
    }
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("database", &self.inner.store.backend())
            .field("store", &self.inner.chats.name())
            .field("log", &self.inner.log.name())
            .field("history", &self.inner.history.name())
            .field("events", &self.inner.feed.name())
            .finish_non_exhaustive()
    }
}

impl FromRef<AppState> for Arc<TokenVerifier> {
    fn from_ref(state: &AppState) -> Self {
        state.inner.verifier.clone()
    }
}

impl AppState {
    /// Validates the configuration, connects to the database and applies the migrations, and
    /// sets up the configured log, history and feed (starting the embedded aggregator with the
    /// in-process log).
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        Self::build_with(config, Backends::default()).await
    }

    /// Like [`AppState::build`], with some backends given rather than configured.
    pub async fn build_with(config: &Config, backends: Backends) -> Result<Self, StartError> {
        config.validate()?;
        let verifier = match backends.verifier {
            Some(verifier) => verifier,
            None => Arc::new(TokenVerifier::from_config(&config.auth)?),
        };
        let store = Store::connect(&config.database_url, config.max_db_connections).await?;
        store.migrate().await?;
        store.check_users_table().await?;
        let chats = configured_store(config, &store).await?;

        let embedded = match (&backends.log, &config.log) {
            (None, LogConfig::Memory {}) => {
                if backends.history.is_none() && !matches!(config.history, HistoryConfig::Sql {}) {
                    return Err(ConfigError {
                        field: "history.type",
                        reason: "the embedded aggregator (log.type = \"memory\") writes the SQL \
                                 history; set history.type = \"sql\""
                            .into(),
                    }
                    .into());
                }
                Some(EmbeddedPipeline::start(store.clone(), &config.embedded))
            }
            _ => None,
        };
        let log: Arc<dyn MessageLog> = match (backends.log, &config.log, &embedded) {
            (Some(log), _, _) => log,
            (None, _, Some(embedded)) => Arc::new(MemoryMessageLog::new(embedded.log())),
            (None, log_config, None) => configured_log(log_config).await?,
        };
        let history: Arc<dyn History> = match backends.history {
            Some(history) => history,
            None => configured_history(&config.history, &store).await?,
        };
        let feed: Arc<dyn GroupFeed> = match (backends.feed, &config.events) {
            (Some(feed), _) => feed,
            (None, EventsConfig::None {}) => Arc::new(NoFeed),
            (None, EventsConfig::InProcess {}) => match &embedded {
                Some(embedded) => Arc::new(InProcessFeed::from_sink(embedded.broadcast())),
                None => {
                    return Err(StartError::Feed(
                        "events.type = \"in_process\" needs the embedded aggregator \
                         (log.type = \"memory\"), or a feed given by the embedding program; \
                         with Kafka use events.type = \"kafka\""
                            .into(),
                    ))
                }
            },
            (None, EventsConfig::Kafka(kafka)) => configured_kafka_feed(kafka)?,
        };
        let mut realtime = realtime::Realtime::start(
            &config.realtime,
            log.as_ref(),
            feed.as_ref(),
            verifier.revocations().subscribe(),
            match &store {
                Store::Postgres(pool) => Some(pool.clone()),
                Store::Sqlite(_) => None,
            },
        )
        .map_err(StartError::Feed)?;
        if let Some(url) = &config.auth.revocations_url {
            realtime.poll_revocations(url.clone(), Arc::clone(&verifier));
        }
        let limits = &config.limits;
        let limiters = Limiters {
            sends: TokenBuckets::new(
                limits.messages_per_second,
                limits.message_burst,
                limits.max_tracked_users,
            ),
            new_chats: TokenBuckets::per_hour(limits.new_chats_per_hour, limits.max_tracked_users),
            // A client sends a notice every few seconds while its person types; more is noise.
            typing: TokenBuckets::new(1.0, 5, limits.max_tracked_users),
            // A page marks its open chat as messages arrive, and every chat it opens: a few a
            // second at most; each mark is a write, a count and a notification.
            reads: TokenBuckets::new(5.0, 20, limits.max_tracked_users),
        };
        let pipeline_metrics = embedded.as_ref().map(EmbeddedPipeline::metrics);
        let one_writer = matches!(store, Store::Sqlite(_));
        let activity = Arc::new(activity::Activity::default());
        let activity_writer = tokio::spawn(activity::write_forever(
            Arc::clone(&activity),
            Arc::clone(&chats),
        ))
        .abort_handle();
        let state = AppState {
            inner: Arc::new(Inner {
                store,
                chats,
                known_chats: members::KnownChats::default(),
                // SQLite is one process's database (`confab up`); PostgreSQL may be shared by
                // several instances, each of which may write blocks.
                known_blocks: one_writer.then(blocks::KnownBlocks::default),
                activity,
                activity_writer,
                verifier,
                log,
                history,
                feed,
                realtime,
                pipeline_metrics,
                embedded: tokio::sync::Mutex::new(embedded),
                clock: TimeUuidClock::new(),
                limiters,
                config: config.clone(),
            }),
        };
        tracing::info!(
            database = state.store().backend(),
            store = state.chats().name(),
            log = state.log().name(),
            history = state.history().name(),
            events = state.feed().name(),
            "The chat service is ready."
        );
        Ok(state)
    }

    /// The SQL database (the auth service's): its users, and the SQL history.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Where chats and client message ids are kept.
    pub fn chats(&self) -> &dyn ChatStore {
        self.inner.chats.as_ref()
    }

    /// The chats read so far, for membership checks.
    pub(crate) fn known_chats(&self) -> &members::KnownChats {
        &self.inner.known_chats
    }

    /// Block answers remembered (one process writing blocks only), or `None`: read each time.
    pub(crate) fn known_blocks(&self) -> Option<&blocks::KnownBlocks> {
        self.inner.known_blocks.as_ref()
    }

    /// Chat activity not stored yet.
    pub(crate) fn activity(&self) -> &activity::Activity {
        &self.inner.activity
    }

    /// The token verifier.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.inner.verifier
    }

    /// The message log.
    pub fn log(&self) -> &dyn MessageLog {
        self.inner.log.as_ref()
    }

    /// The history reader.
    pub fn history(&self) -> &dyn History {
        self.inner.history.as_ref()
    }

    /// The event feed.
    pub fn feed(&self) -> &dyn GroupFeed {
        self.inner.feed.as_ref()
    }

    /// The live lane and its registry.
    pub(crate) fn realtime(&self) -> &realtime::Realtime {
        &self.inner.realtime
    }

    /// The spam controls' counters.
    pub fn limiters(&self) -> &Limiters {
        &self.inner.limiters
    }

    /// The configuration the state was built from.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn clock(&self) -> &TimeUuidClock {
        &self.inner.clock
    }

    /// Whether the embedded aggregator is running; `None` when this state runs none.
    pub async fn embedded_running(&self) -> Option<bool> {
        self.inner
            .embedded
            .lock()
            .await
            .as_ref()
            .map(EmbeddedPipeline::is_running)
    }

    /// The embedded aggregator's metrics (live counters of messages read and groups written);
    /// `None` when this state runs no aggregator.
    pub fn pipeline_metrics(&self) -> Option<Arc<confab_pipeline::Metrics>> {
        self.inner.pipeline_metrics.clone()
    }

    /// Deletes the `client_message_id` records older than the configured retention.
    pub async fn prune_client_messages(&self) -> Result<u64, StoreError> {
        let retention = chrono::Duration::seconds(
            i64::try_from(self.config().client_message_retention_secs).unwrap_or(i64::MAX / 2),
        );
        self.chats()
            .prune_client_messages(store::now() - retention)
            .await
    }

    /// Stores the chat activity not stored yet, and stops the embedded aggregator, if any, after
    /// it has written every open group (call it once the server stopped taking requests;
    /// [`serve_on`] does).
    pub async fn shutdown(&self) {
        self.inner.activity.flush(self.chats()).await;
        let embedded = self.inner.embedded.lock().await.take();
        if let Some(mut embedded) = embedded {
            embedded.stop().await;
        }
    }
}

async fn configured_log(config: &LogConfig) -> Result<Arc<dyn MessageLog>, StartError> {
    match config {
        #[cfg(feature = "kafka")]
        LogConfig::Kafka(kafka) => Ok(Arc::new(
            message_log::KafkaMessageLog::connect(kafka).await?,
        )),
        // Validation refuses the Kafka log without the feature, and the memory log is the
        // embedded aggregator's.
        _ => Err(StartError::Config(ConfigError {
            field: "log.type",
            reason: "this log is not available in this build".into(),
        })),
    }
}

async fn configured_store(
    config: &Config,
    store: &Store,
) -> Result<Arc<dyn ChatStore>, StartError> {
    match &config.store {
        StoreConfig::Sql {} => Ok(Arc::new(store.clone())),
        #[cfg(feature = "cassandra")]
        StoreConfig::Cassandra(cassandra) => Ok(Arc::new(
            store::CassandraChatStore::connect(
                cassandra,
                store.clone(),
                config.client_message_retention_secs,
            )
            .await?,
        )),
        #[cfg(not(feature = "cassandra"))]
        StoreConfig::Cassandra(_) => Err(StartError::Config(ConfigError {
            field: "store.type",
            reason: "\"cassandra\" needs confab-chat built with the `cassandra` feature".into(),
        })),
    }
}

async fn configured_history(
    config: &HistoryConfig,
    store: &Store,
) -> Result<Arc<dyn History>, StartError> {
    match config {
        HistoryConfig::Sql {} => Ok(Arc::new(SqlHistory::new(store.clone()))),
        #[cfg(feature = "cassandra")]
        HistoryConfig::Cassandra(cassandra) => Ok(Arc::new(
            history::CassandraHistory::connect(cassandra).await?,
        )),
        #[cfg(not(feature = "cassandra"))]
        HistoryConfig::Cassandra(_) => Err(StartError::Config(ConfigError {
            field: "history.type",
            reason: "\"cassandra\" needs confab-chat built with the `cassandra` feature".into(),
        })),
    }
}

fn configured_kafka_feed(config: &KafkaEventsConfig) -> Result<Arc<dyn GroupFeed>, StartError> {
    #[cfg(feature = "kafka")]
    {
        Ok(Arc::new(
            feed::KafkaGroupFeed::start(config).map_err(StartError::Feed)?,
        ))
    }
    #[cfg(not(feature = "kafka"))]
    {
        let _ = config;
        Err(StartError::Feed(
            "events.type = \"kafka\" needs confab-chat built with the `kafka` feature".into(),
        ))
    }
}

/// The HTTP API. Serve it with [`serve_on`], or drive it with `tower::ServiceExt::oneshot`.
pub fn app(state: AppState) -> Router {
    let max_body_bytes = state.config().max_body_bytes;
    let routes = Router::new()
        .merge(blocks::router())
        .merge(chats::router())
        .merge(messages::router())
        .merge(reads::router())
        .merge(events::router())
        .merge(realtime::router())
        .merge(health::router())
        .merge(discovery::router());
    service_layers(routes, max_body_bytes).with_state(state)
}

/// [`app`] whose events streams end when `stop` turns `true`, so that a graceful shutdown is
/// not held open by them (for programs that serve the API on their own server; [`serve_on`]
/// uses it). Run [`prune_forever`] beside it to forget expired `client_message_id`s.
pub fn app_until(state: AppState, stop: tokio::sync::watch::Receiver<bool>) -> Router {
    app(state).layer(axum::Extension(events::Shutdown(stop)))
}

/// Connects to the configured database and applies the chat migrations, and with a Cassandra
/// store its keyspace's, nothing else (`confab chat migrate`).
pub async fn migrate(config: &Config) -> Result<(), StartError> {
    config.validate()?;
    let store = Store::connect(&config.database_url, 1).await?;
    store.migrate().await?;
    tracing::info!(database = store.backend(), "Applied the chat migrations.");
    store.close().await;
    #[cfg(feature = "cassandra")]
    if let StoreConfig::Cassandra(cassandra) = &config.store {
        use confab_connectors::cassandra as cql;
        let cassandra_error = |err: cql::CassandraError| {
            StartError::Store(StoreError::Backend {
                message: err.to_string(),
                retryable: false,
            })
        };
        let session = cql::connect(cassandra).await.map_err(cassandra_error)?;
        let applied = cql::migrate(&session, &cassandra.keyspace, &cassandra.replication)
            .await
            .map_err(cassandra_error)?;
        tracing::info!(keyspace = %cassandra.keyspace, ?applied, "Applied the Cassandra migrations.");
    }
    Ok(())
}

/// Starts the service as configured and serves until Ctrl-C or SIGTERM (`confab chat`).
pub async fn serve(config: Config) -> Result<(), StartError> {
    let state = AppState::build(&config).await?;
    let listener =
        confab_service_kit::server::bind(config.listen).map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    serve_on(listener, state, shutdown_signal("chat")).await
}

/// Serves [`app`] on a bound listener until `shutdown` completes, then finishes the requests in
/// flight (an events stream ends at once), stops the embedded aggregator after it wrote every
/// open group, and closes the database.
pub async fn serve_on(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "The chat service is listening.");
    }
    let pruner = tokio::spawn(prune_forever(state.clone()));
    let (stop_streams, streams_stopped) = tokio::sync::watch::channel(false);
    let router = app_until(state.clone(), streams_stopped);
    let result = confab_service_kit::server::serve_streams(
        listener,
        router,
        &state.config().server,
        Some(realtime::is_stream_path),
        async move {
            shutdown.await;
            // Long-lived event streams would hold the graceful shutdown open forever.
            let _ = stop_streams.send(true);
        },
    )
    .await
    .map_err(StartError::Serve);
    pruner.abort();
    state.shutdown().await;
    state.store().close().await;
    result
}

/// Deletes expired `client_message_id` records every ten minutes, forever (spawn it while
/// serving; [`serve_on`] does).
pub async fn prune_forever(state: AppState) {
    let mut interval = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        interval.tick().await;
        match state.prune_client_messages().await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "Forgot expired client message ids."),
            Err(err) => tracing::warn!(error = %err, "Could not prune client message ids."),
        }
    }
}
