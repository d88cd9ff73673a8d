//! # confab-connectors
//!
//! Sources and sinks for the [`confab_pipeline`] runtime, one folder per external system, each
//! behind its own cargo feature so that a user who wants only the operator compiles no client:
//!
//! | folder         | feature     | what                                                          |
//! |----------------|-------------|---------------------------------------------------------------|
//! | [`kafka`]      | `kafka`     | consumer-group source, grouped-topic sink, dead-letter topic  |
//! | [`cassandra`]  | `cassandra` | history schema and migrations, message rows, pagination       |
//! | [`firestore`]  | `firestore` | one upserted document per group, for realtime listeners       |
//! | [`fluvio`]     | `fluvio`    | topic source (offsets as consumer offsets), dead-letter topic  |
//! | [`embedded`]   | (none)      | broadcast, JSON-lines file/stdout sinks, JSON-lines source    |
//!
//! Every connector has a serde config (`deny_unknown_fields`, every field documented, defaults in
//! its `Default` impl), and [`registry`] maps a config file's `type = "..."` to a constructor.
//!
//! Guarantees shared by every sink: a write returns only once every group is durably written, and
//! writing a group again (a replay after a crash) leaves the same result, keyed by the group's
//! deterministic id. Errors say whether a retry can help ([`confab_pipeline::ErrorKind`]).

#![warn(missing_docs)]

pub mod embedded;
pub mod registry;

#[cfg(feature = "cassandra")]
pub mod cassandra;
#[cfg(feature = "firestore")]
pub mod firestore;
#[cfg(feature = "fluvio")]
pub mod fluvio;
#[cfg(feature = "kafka")]
pub mod kafka;

mod env;
mod start;

pub use env::env_or;
pub use start::StartPosition;

use confab_pipeline::{ChatMessage, DecodeError, SourceRecord};

/// Decodes a source record as a [`ChatMessage`] (JSON, every field checked), for
/// [`Pipeline::new`](confab_pipeline::Pipeline::new). The runtime has already refused records
/// over its `max_record_bytes`, so no size limit applies here.
pub fn decode_chat_message(record: &SourceRecord) -> Result<ChatMessage, DecodeError> {
    ChatMessage::decode(&record.payload, usize::MAX)
}
