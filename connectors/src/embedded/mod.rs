//! Connectors that need no server: the embedded default runs the whole system with these.
//!
//! - [`BroadcastSink`] pushes each group to in-process subscribers (a `tokio::sync::broadcast`
//!   channel); the embedded chat mode turns it into server-sent events.
//! - [`JsonLinesFileSink`] appends each group as one JSON line to a file, [`StdoutSink`] prints it.
//! - [`JsonLinesDeadLetters`] appends dead letters, with their reason, as JSON lines.
//! - [`JsonLinesSource`] reads records, one per line, from a file or stdin, and can persist its
//!   committed byte offset so a restart resumes after the last acknowledged line.

mod broadcast;
mod file;
mod source;
mod stdout;

pub use broadcast::{BroadcastConfig, BroadcastSink};
pub use file::{DeadLetterLine, JsonLinesDeadLetters, JsonLinesFileConfig, JsonLinesFileSink};
pub use source::{JsonLinesSource, JsonLinesSourceConfig};
pub use stdout::{StdoutConfig, StdoutSink};
