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
//! Malformed records are the runtime's business, as with every source: they go to the configured
//! dead-letter sink with the reason and are committed past.

mod config;
mod dead_letter;
mod reader;
mod source;

pub use config::{default_endpoint, FluvioDeadLetterConfig, FluvioSourceConfig};
pub use dead_letter::FluvioDeadLetters;
pub use source::FluvioSource;
