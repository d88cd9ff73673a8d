//! Configuration of the chat service: one serde struct, defaults in its `Default` impls, checked
//! by [`Config::validate`] before anything starts.
//!
//! Every table refuses unknown fields, so a typo is an error rather than a silently ignored
//! setting. Backends are chosen by a `type` field: `[log] type = "memory" | "kafka"`,
//! `[store] type = "sql" | "cassandra"`, `[history] type = "sql" | "cassandra"`,
//! `[events] type = "in_process" | "kafka" | "none"`.
//! A backend compiled out (cargo features `kafka`, `cassandra`) is refused by `validate` with the
//! feature to enable.

use confab_pipeline::{RuntimeConfig, WindowPolicy};
use confab_service_kit::server::ServerConfig;
use confab_token::{Algorithm, Secret, VerifierConfig, DEFAULT_AUDIENCE, DEFAULT_ISSUER};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The whole configuration of the chat service.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// The auth service's database: the chat service reads its `users` table (to check that a
    /// peer exists and to show usernames) and keeps its own tables next to it. `postgres://...`
    /// or `sqlite://path.db`; the default is the auth service's default file.
    pub database_url: Secret,
    /// Connections in the database pool.
    pub max_db_connections: u32,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// How access tokens are verified (the keys of the auth service: `jwks_file`,
    /// `public_key_pem_file` or `hs256_secret`).
    pub auth: VerifierConfig,
    /// Where chats and `client_message_id` records are kept.
    pub store: StoreConfig,
    /// Where sent messages go.
    pub log: LogConfig,
    /// Where history pages are read from.
    pub history: HistoryConfig,
    /// What feeds the per-chat stream's `group` events (the group lane).
    pub events: EventsConfig,
    /// The live lane: each person's events stream, fed by this instance's tail of the log.
    pub realtime: RealtimeConfig,
    /// The in-process aggregator that runs when `log.type = "memory"`.
    pub embedded: EmbeddedConfig,
    /// Spam controls.
    pub limits: LimitsConfig,
    /// Largest `quantity` a history page may ask for (the default page is 10 messages).
    pub max_page_quantity: u32,
    /// How long the record of a `client_message_id` is kept, in seconds: a retry within this
    /// time returns the same message; after it the id may be reused.
    pub client_message_retention_secs: u64,
    /// Connection limits and timeouts of the HTTP server (`confab chat`; `confab up` reads its
    /// own top-level `[server]` table).
    pub server: ServerConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            database_url: Secret::new("sqlite://confab-auth.db"),
            max_db_connections: 10,
            max_body_bytes: 32 * 1024,
            auth: default_verifier_config(),
            store: StoreConfig::default(),
            log: LogConfig::default(),
            history: HistoryConfig::default(),
            events: EventsConfig::default(),
            realtime: RealtimeConfig::default(),
            embedded: EmbeddedConfig::default(),
            limits: LimitsConfig::default(),
            max_page_quantity: 100,
            client_message_retention_secs: 24 * 3600,
            server: ServerConfig::default(),
        }
    }
}

/// A verifier configuration with no key: [`Config::validate`] asks for one.
fn default_verifier_config() -> VerifierConfig {
    VerifierConfig {
        algorithm: Algorithm::EdDSA,
        jwks_file: None,
        public_key_pem_file: None,
        hs256_secret: None,
        issuer: DEFAULT_ISSUER.to_owned(),
        audience: DEFAULT_AUDIENCE.to_owned(),
        leeway_secs: confab_token::DEFAULT_LEEWAY_SECS,
        max_lifetime_secs: confab_token::DEFAULT_MAX_LIFETIME_SECS,
        revocations_url: None,
    }
}

/// The message log sends are produced to.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LogConfig {
    /// The in-process log (embedded mode): the service also runs the aggregator on it
    /// (`[embedded]`), writing the SQL history and the in-process event feed. Not durable: what
    /// the aggregator has not written when the process stops is lost.
    Memory {},
    /// A Kafka topic (needs the `kafka` feature).
    Kafka(KafkaLogConfig),
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig::Memory {}
    }
}

/// Settings of the Kafka message log.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaLogConfig {
    /// Comma-separated `host:port` bootstrap brokers (default `$KAFKA_BROKERS`, else
    /// `127.0.0.1:9092`).
    pub brokers: String,
    /// The topic messages are produced to, keyed by `chat_id`.
    pub topic: String,
    /// How long a send waits for the brokers to acknowledge (`message.timeout.ms`) before it
    /// answers 503.
    pub delivery_timeout_ms: u64,
    /// Extra librdkafka producer properties (`compression.type`, `security.protocol`, ...).
    /// `acks`, `enable.idempotence` and `message.timeout.ms` are refused: the service's guarantee
    /// (201 only once every in-sync replica has the message) rests on them.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaLogConfig {
    fn default() -> Self {
        Self {
            brokers: confab_connectors::env_or("KAFKA_BROKERS", "127.0.0.1:9092"),
            topic: "chat_messages".into(),
            delivery_timeout_ms: 5_000,
            properties: BTreeMap::new(),
        }
    }
}

/// Where chats (who is in which chat, and its activity) and `client_message_id` records live.
/// Users are always read from `database_url`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StoreConfig {
    /// Tables in the SQL database of `database_url`, next to the auth service's `users`.
    Sql {},
    /// Tables in a Cassandra / ScyllaDB keyspace (needs the `cassandra` feature): the
    /// connectors' schema, the same keyspace as the history. The fields are the connectors'
    /// `CassandraConfig` (`nodes`, `keyspace`, `replication`, `migrate`, `consistency`, ...).
    Cassandra(CassandraHistoryConfig),
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::Sql {}
    }
}

/// Where history pages come from.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HistoryConfig {
    /// The `message_history` table in the service's own database, written by the
    /// [`SqlHistorySink`](crate::history::SqlHistorySink) (the embedded aggregator runs one).
    Sql {},
    /// The Cassandra / ScyllaDB keyspace the aggregator's Cassandra sink writes (needs the
    /// `cassandra` feature). The fields are the connectors' `CassandraConfig`.
    Cassandra(CassandraHistoryConfig),
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig::Sql {}
    }
}

/// Settings of the Cassandra history and store (the connectors' `CassandraConfig`, whose fields
/// are `nodes`, `keyspace`, `replication`, `migrate`, `bucket_size_ms`, `consistency`, ...).
#[cfg(feature = "cassandra")]
pub type CassandraHistoryConfig = confab_connectors::cassandra::CassandraConfig;

/// Settings of the Cassandra history and store; this build has no `cassandra` feature, so any
/// value is refused by [`Config::validate`].
#[cfg(not(feature = "cassandra"))]
pub type CassandraHistoryConfig = serde_json::Value;

/// What feeds the server-sent events.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventsConfig {
    /// The embedded aggregator's broadcast sink (needs `log.type = "memory"`, or a feed given by
    /// the embedding program).
    InProcess {},
    /// The `chat_messages_grouped` topic the aggregator's Kafka sink writes (needs the `kafka`
    /// feature).
    Kafka(KafkaEventsConfig),
    /// No realtime feed: the events endpoint answers 503.
    None {},
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig::InProcess {}
    }
}

/// Settings of the Kafka group feed.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaEventsConfig {
    /// Comma-separated `host:port` bootstrap brokers (default `$KAFKA_BROKERS`).
    pub brokers: String,
    /// The topic of completed groups.
    pub topic: String,
    /// Groups kept for a slow events subscriber; one further behind is told to reload history.
    pub capacity: usize,
    /// Extra librdkafka consumer properties.
    pub properties: BTreeMap<String, String>,
    /// When the topic does not exist, create it with this many partitions (the broker's default
    /// replication), so the service is ready before the aggregator first writes a group. 0:
    /// wait for someone else to create it; `/readyz` says so meanwhile.
    pub create_partitions: u32,
}

impl Default for KafkaEventsConfig {
    fn default() -> Self {
        Self {
            brokers: confab_connectors::env_or("KAFKA_BROKERS", "127.0.0.1:9092"),
            topic: "chat_messages_grouped".into(),
            capacity: 1024,
            properties: BTreeMap::new(),
            create_partitions: 3,
        }
    }
}

/// The live lane: one events stream per person (`GET /api/v1/events`), fed by this instance's
/// own tail of the message log and routed by chat membership ([`crate::realtime`]).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeConfig {
    /// Whether this instance tails the log and serves the live lane. Off, `GET /api/v1/events`
    /// answers 503 and the per-chat stream carries only completed groups.
    pub live: bool,
    /// How long a person's recent events are kept for a reconnect to resume from
    /// (`Last-Event-ID`), in seconds; a reconnect after longer gets a `reset` and refetches.
    pub resume_window_secs: u64,
    /// Most events kept per person for resuming; a stream further behind than this gets a
    /// `reset` (it never buffers without bound, and never drops silently).
    pub window_events: usize,
    /// Open events streams per person (tabs and devices); one more gets 429.
    pub max_streams_per_user: usize,
    /// Open events streams in this instance; one more gets 503.
    pub max_streams: usize,
    /// Seconds between keep-alive comments on an idle stream: under the 60 s after which common
    /// proxies and NATs drop an idle connection, and each comment is a write per open stream (at
    /// 15 s, 10,000 idle streams cost 670 writes a second).
    pub keep_alive_secs: u64,
    /// How long the messages this instance's tail read are kept per chat, in seconds, so that
    /// history pages and unread counts include the messages whose group is not written yet
    /// (a group is written up to the policy's `max_age` after its first message). Longer than
    /// any history delay short of a store outage.
    pub recent_window_secs: u64,
    /// Most messages kept for that in this instance (all chats together); past it the oldest
    /// go first.
    pub recent_messages: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            live: true,
            // Ably keeps 2 minutes, Zulip 10: long enough for a network change or a laptop lid.
            resume_window_secs: 120,
            window_events: 1024,
            max_streams_per_user: 16,
            max_streams: 50_000,
            keep_alive_secs: 30,
            recent_window_secs: 120,
            // About 25 MiB at the seed's message size: 200 messages a second for 5 minutes.
            recent_messages: 65_536,
        }
    }
}

/// The in-process aggregator of the embedded mode.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Partitions of the in-process log (chats are spread over them by id).
    pub partitions: u32,
    /// When a group of messages completes (and reaches history and the event feed).
    pub policy: WindowPolicy,
    /// The pipeline runtime's settings.
    pub runtime: RuntimeConfig,
    /// Groups kept for a slow events subscriber.
    pub broadcast_capacity: usize,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            partitions: 4,
            policy: WindowPolicy::default(),
            runtime: RuntimeConfig::default(),
            broadcast_capacity: 1024,
        }
    }
}

/// Spam controls. Refusals are 429 with `Retry-After` (rates) or 422 naming the rule (content).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Sustained sends per second per user (the token bucket's refill rate).
    pub messages_per_second: f64,
    /// Sends a user may make in a burst (the token bucket's size).
    pub message_burst: u32,
    /// New chats a user may start per hour (returning an existing chat does not count).
    pub new_chats_per_hour: u32,
    /// Longest message body, in characters (Unicode scalar values).
    pub max_message_chars: usize,
    /// Users tracked by each limiter; when full, idle users are forgotten first.
    pub max_tracked_users: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            // Between Synapse (0.2/s, burst 10) and Rocket.Chat (5/s): a fast typist never
            // notices, a script is held to a few messages a second.
            messages_per_second: 2.0,
            message_burst: 10,
            new_chats_per_hour: 30,
            max_message_chars: 4_000,
            max_tracked_users: 100_000,
        }
    }
}

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid chat configuration `{field}`: {reason}")]
pub struct ConfigError {
    /// The field, dotted (`limits.message_burst`).
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        reason: reason.into(),
    }
}

impl Config {
    /// Checks every value that serde cannot, naming the field and the fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server
            .validate()
            .map_err(|reason| invalid("server", reason))?;
        if self.max_db_connections == 0 {
            return Err(invalid("max_db_connections", "must be at least 1"));
        }
        if self.max_body_bytes < 256 {
            return Err(invalid("max_body_bytes", "must be at least 256"));
        }
        if !(1..=10_000).contains(&self.max_page_quantity) {
            return Err(invalid("max_page_quantity", "must be between 1 and 10000"));
        }
        if self.client_message_retention_secs < 60 {
            return Err(invalid(
                "client_message_retention_secs",
                "must be at least 60, or retries could produce a message twice",
            ));
        }
        let limits = &self.limits;
        if !(limits.messages_per_second.is_finite() && limits.messages_per_second > 0.0) {
            return Err(invalid(
                "limits.messages_per_second",
                "must be a number above 0",
            ));
        }
        if limits.message_burst == 0 {
            return Err(invalid("limits.message_burst", "must be at least 1"));
        }
        if limits.new_chats_per_hour == 0 {
            return Err(invalid("limits.new_chats_per_hour", "must be at least 1"));
        }
        if limits.max_message_chars == 0 {
            return Err(invalid("limits.max_message_chars", "must be at least 1"));
        }
        if limits.max_tracked_users == 0 {
            return Err(invalid("limits.max_tracked_users", "must be at least 1"));
        }
        if self.embedded.partitions == 0 {
            return Err(invalid("embedded.partitions", "must be at least 1"));
        }
        if self.embedded.broadcast_capacity == 0 {
            return Err(invalid("embedded.broadcast_capacity", "must be at least 1"));
        }
        let realtime = &self.realtime;
        if realtime.resume_window_secs == 0 {
            return Err(invalid("realtime.resume_window_secs", "must be at least 1"));
        }
        if realtime.window_events == 0 {
            return Err(invalid("realtime.window_events", "must be at least 1"));
        }
        if realtime.recent_window_secs == 0 {
            return Err(invalid("realtime.recent_window_secs", "must be at least 1"));
        }
        if realtime.recent_messages == 0 {
            return Err(invalid("realtime.recent_messages", "must be at least 1"));
        }
        if realtime.max_streams_per_user == 0 || realtime.max_streams == 0 {
            return Err(invalid(
                "realtime.max_streams",
                "max_streams and max_streams_per_user must be at least 1",
            ));
        }
        if !(1..=300).contains(&realtime.keep_alive_secs) {
            return Err(invalid(
                "realtime.keep_alive_secs",
                "must be between 1 and 300",
            ));
        }
        self.embedded
            .policy
            .validate()
            .map_err(|err| invalid("embedded.policy", err.to_string()))?;
        self.validate_backends()
    }

    fn validate_backends(&self) -> Result<(), ConfigError> {
        match &self.log {
            LogConfig::Memory {} => {}
            LogConfig::Kafka(kafka) => {
                if !cfg!(feature = "kafka") {
                    return Err(invalid(
                        "log.type",
                        "\"kafka\" needs confab-chat built with the `kafka` feature",
                    ));
                }
                if kafka.brokers.trim().is_empty() || kafka.topic.trim().is_empty() {
                    return Err(invalid("log", "brokers and topic must not be empty"));
                }
                if kafka.delivery_timeout_ms == 0 {
                    return Err(invalid("log.delivery_timeout_ms", "must be at least 1"));
                }
            }
        }
        if let StoreConfig::Cassandra(_) = &self.store {
            if !cfg!(feature = "cassandra") {
                return Err(invalid(
                    "store.type",
                    "\"cassandra\" needs confab-chat built with the `cassandra` feature",
                ));
            }
        }
        if let HistoryConfig::Cassandra(_) = &self.history {
            if !cfg!(feature = "cassandra") {
                return Err(invalid(
                    "history.type",
                    "\"cassandra\" needs confab-chat built with the `cassandra` feature",
                ));
            }
        }
        match &self.events {
            EventsConfig::InProcess {} | EventsConfig::None {} => {}
            EventsConfig::Kafka(kafka) => {
                if !cfg!(feature = "kafka") {
                    return Err(invalid(
                        "events.type",
                        "\"kafka\" needs confab-chat built with the `kafka` feature",
                    ));
                }
                if kafka.capacity == 0 {
                    return Err(invalid("events.capacity", "must be at least 1"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<Config, serde_json::Error> {
        serde_json::from_value(json)
    }

    #[test]
    fn an_empty_document_gives_valid_embedded_defaults() {
        let config = parse(serde_json::json!({})).expect("parses");
        config.validate().expect("defaults validate");
        assert_eq!(config.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(config.log, LogConfig::Memory {});
        assert_eq!(config.store, StoreConfig::Sql {});
        assert_eq!(config.history, HistoryConfig::Sql {});
        assert_eq!(config.events, EventsConfig::InProcess {});
        assert_eq!(config.max_page_quantity, 100);
        assert_eq!(config.limits.max_message_chars, 4_000);
    }

    #[test]
    fn backends_are_chosen_by_type() {
        let config = parse(serde_json::json!({
            "log": {"type": "kafka", "topic": "t", "delivery_timeout_ms": 100},
            "events": {"type": "none"},
        }))
        .expect("parses");
        match &config.log {
            LogConfig::Kafka(kafka) => {
                assert_eq!(kafka.topic, "t");
                assert_eq!(kafka.delivery_timeout_ms, 100);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(config.events, EventsConfig::None {});
        assert_eq!(config.validate().is_ok(), cfg!(feature = "kafka"));
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        for bad in [
            serde_json::json!({"listn": "127.0.0.1:1"}),
            serde_json::json!({"limits": {"burst": 5}}),
            serde_json::json!({"log": {"type": "kafka", "topik": "x"}}),
            serde_json::json!({"log": {"type": "memory", "x": 1}}),
            serde_json::json!({"log": {"type": "fluvio"}}),
            serde_json::json!({"store": {"type": "dynamo"}}),
            serde_json::json!({"store": {"type": "cassandra", "keyspac": "k"}}),
            serde_json::json!({"events": {"type": "kafka", "group": "x"}}),
            serde_json::json!({"embedded": {"policy": {"inactivity": 1}}}),
            serde_json::json!({"auth": {"algoritm": "HS256"}}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn impossible_values_name_their_field() {
        type Change = fn(&mut Config);
        let cases: [(&str, Change); 6] = [
            ("limits.messages_per_second", |c| {
                c.limits.messages_per_second = f64::NAN
            }),
            ("limits.message_burst", |c| c.limits.message_burst = 0),
            ("max_page_quantity", |c| c.max_page_quantity = 0),
            ("embedded.policy", |c| {
                c.embedded.policy.inactivity_timeout_ms = 0
            }),
            ("client_message_retention_secs", |c| {
                c.client_message_retention_secs = 1
            }),
            ("embedded.partitions", |c| c.embedded.partitions = 0),
        ];
        for (field, change) in cases {
            let mut config = Config::default();
            change(&mut config);
            assert_eq!(config.validate().map_err(|e| e.field), Err(field));
        }
    }

    #[test]
    fn the_cassandra_history_is_configured_with_the_connectors_fields() {
        let config = parse(serde_json::json!({
            "history": {"type": "cassandra", "keyspace": "k", "bucket_size_ms": 1000}
        }));
        if cfg!(feature = "cassandra") {
            let config = config.expect("parses");
            config.validate().expect("valid");
            assert!(matches!(config.history, HistoryConfig::Cassandra(_)));
        } else {
            assert!(config.map(|c| c.validate().is_err()).unwrap_or(true));
        }
    }

    #[test]
    fn the_cassandra_store_is_configured_with_the_connectors_fields() {
        let config = parse(serde_json::json!({
            "store": {"type": "cassandra", "keyspace": "k", "consistency": "one"}
        }));
        if cfg!(feature = "cassandra") {
            let config = config.expect("parses");
            config.validate().expect("valid");
            assert!(matches!(config.store, StoreConfig::Cassandra(_)));
        } else {
            let refused = config.map(|c| c.validate().map_err(|e| e.field));
            assert!(!matches!(refused, Ok(Ok(()))), "{refused:?}");
        }
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../chat.example.toml");
        let config: Config = toml::from_str(text).expect("chat.example.toml parses");
        assert!(matches!(config.log, LogConfig::Kafka(_)));
        assert!(matches!(config.store, StoreConfig::Cassandra(_)));
        assert!(matches!(config.events, EventsConfig::Kafka(_)));
        assert_eq!(
            config.validate().is_ok(),
            cfg!(all(feature = "kafka", feature = "cassandra")),
            "valid exactly when both backends are compiled in"
        );
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let config = parse(serde_json::json!({
            "database_url": "postgres://confab:topsecretpw@localhost/confab",
            "auth": {"algorithm": "HS256", "hs256_secret": "another-top-secret-another-top-secret"}
        }))
        .expect("parses");
        let text = format!("{config:?}");
        assert!(
            !text.contains("topsecretpw") && !text.contains("another-top-secret"),
            "{text}"
        );
    }
}
