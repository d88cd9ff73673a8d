//! Fluvio, through the `fluvio` client crate (client only: no TLS, no compression codecs).
//!
//! - [`FluvioSource`]: one topic, every partition or the configured ones, each read in log order.
//!   Positions are kept as Fluvio consumer offsets under the configured `consumer` name, and are
//!   stored **only** through [`Source::commit`](confab_pipeline::Source::commit), that is only
//!   once every sink acknowledged the records before them. A restart resumes exactly there.
//!
//! Malformed records are the runtime's business, as with every source: they go to the configured
//! dead-letter sink with the reason and are committed past.

mod config;
mod reader;
mod source;

pub use config::{default_endpoint, FluvioSourceConfig};
pub use source::FluvioSource;
