//! Integration tests against the real servers that `scripts/infra up` starts: a module per
//! service, each behind the connector's feature. Addresses come from `KAFKA_BROKERS`,
//! `CASSANDRA_NODES`, `FIRESTORE_EMULATOR_HOST` and `FIRESTORE_PROJECT_ID` (what
//! `scripts/infra env` prints), with loopback defaults. Every test uses its own topic, keyspace,
//! collection and consumer group. A test that cannot reach its server fails with the command that
//! starts it; none passes silently. The Fluvio module's tests are `#[ignore]`d because a
//! machine may have no Fluvio server (no registry ships one): reported as ignored, never as
//! passed, and run by `scripts/test` whenever `scripts/infra` finds a server (see `fluvio.rs`).

#![allow(clippy::unwrap_used)]
// With some connector features off, helpers that only their tests use are unused.
#![cfg_attr(
    not(all(feature = "kafka", feature = "cassandra", feature = "firestore")),
    allow(dead_code, unused_imports)
)]

#[cfg(feature = "cassandra")]
mod cassandra;
#[cfg(all(feature = "kafka", feature = "cassandra", feature = "firestore"))]
mod end_to_end;
#[cfg(feature = "firestore")]
mod firestore;
#[cfg(feature = "fluvio")]
mod fluvio;
#[cfg(feature = "kafka")]
mod kafka;

use confab_pipeline::chat::{iso_from_ms, timeuuid_from_ms};
use confab_pipeline::ChatMessage;

/// A short name unique to this run, usable as a topic, keyspace, collection or group name.
pub(crate) fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// The `i`-th message of `chat`, at `ms` milliseconds since the epoch.
pub(crate) fn chat_message(chat: &str, i: usize, ms: u64) -> ChatMessage {
    ChatMessage {
        message_id: format!("{chat}-m{i}").into(),
        chat_id: chat.to_string().into(),
        from_user: format!("user-{}", i % 2).into(),
        to_user: format!("user-{}", (i + 1) % 2).into(),
        body: format!("message {i} of {chat}").into(),
        time: timeuuid_from_ms(ms, (i % 10_000) as u16, [7; 6]),
        time_iso: iso_from_ms(ms).into(),
    }
}

/// Milliseconds since the Unix epoch now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
