//! Fluvio, through the `fluvio` client crate (client only: no TLS, no compression codecs).
//!
//! - [`FluvioSource`]: one topic, every partition or the configured ones, each read in log order.
//!   Positions are kept as Fluvio consumer offsets under the configured `consumer` name, and are
//!   stored **only** through [`Source::commit`](confab_pipeline::Source::commit), that is only
//!   once every sink acknowledged the records before them. A restart resumes exactly there.
//!
//! - [`FluvioDeadLetters`]: rejected records to a dead-letter topic, one JSON record each (Fluvio
//!   records have no headers), keyed like the rejected record.
//!
//! - [`create_topic`]: a new topic, returned once every partition is online.
//!
//! - [`consumer_offsets`]: the offsets a cluster stores, waiting out a cluster that has just
//!   started and has not yet created its `consumer-offset` topic.
//!
//! Malformed records are the runtime's business, as with every source: they go to the configured
//! dead-letter sink with the reason and are committed past.

mod admin;
mod config;
mod dead_letter;
mod offsets;
mod reader;
mod source;

pub use admin::{create_topic, CreateTopicError};
pub use config::{default_endpoint, FluvioDeadLetterConfig, FluvioSourceConfig};
pub use dead_letter::FluvioDeadLetters;
pub use offsets::{consumer_offsets, ConsumerOffsetsError, OFFSETS_TOPIC_WAIT};
pub use source::FluvioSource;
