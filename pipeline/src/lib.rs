//! # confab-pipeline
//!
//! Groups any stream of records by key, until a [`WindowPolicy`] completes each group, and writes
//! every group to your sinks with **commit-after-ack** delivery. Here, IoT readings per device
//! (`pipeline/examples/readings.rs`; run it with `cargo run -p confab-pipeline --example
//! readings`):
//!
#![doc = concat!("```\n", include_str!("../examples/readings.rs"), "```")]
//!
//! What a record needs is [`Aggregatable`]: an event time, and optionally a size and an id.
//! Records come from a [`RecordSource`] ([`from_iter`], [`from_stream`], or your own), or from a
//! byte [`Source`] with a decoder ([`Pipeline::new`]: Kafka and Fluvio in confab's connectors);
//! groups go to every [`Sink`] (or a closure, [`Pipeline::sink_fn`]). `docs/EMBEDDING.md` walks
//! through the choices: time, epochs, limits, and what a sink's errors do.
//!
//! - [`AggregateByKey`] groups each key's records until the [`WindowPolicy`] completes the group
//!   (inactivity, count, bytes, age, end of input). Which records form a group is a function of
//!   the log, so a replay rebuilds the same groups with the same [`Group::id`].
//! - [`Pipeline`] reads a source, aggregates on timely workers, writes every group to every
//!   [`Sink`], and commits a source position only after every record before it was
//!   acknowledged by every sink: at-least-once, made exactly-once in effect by idempotent sinks.
//!   A sink error says what it is ([`ErrorKind`]): retried, the group dead-lettered, or the run
//!   stopped with nothing after the failed group committed.
//!
//! No network client lives here; connectors implement [`Source`], [`Sink`] and
//! [`DeadLetterSink`] in their own crate. The in-memory log, sink and dead-letter sink in
//! [`memory`] run the same code in tests and in confab's embedded default.

#![deny(missing_docs)]

pub mod chat;
pub mod clock;
pub mod group;
pub mod memory;
pub mod metrics;
pub mod operator;
pub mod policy;
pub mod record;
pub mod retry;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod text;

pub use chat::{ChatKey, ChatMessage, DecodeError};
pub use clock::{Clock, ManualClock, SystemClock};
pub use group::{group_id, CompletionReason, Group};
pub use metrics::Metrics;
pub use operator::{AggregateByKey, AggregateOptions, GroupKey, OperatorLimits};
pub use policy::{PolicyError, WindowPolicy};
#[doc(hidden)]
pub use record::Envelope;
pub use record::{Aggregatable, Position};
pub use runtime::{ConfigError, Pipeline, PipelineError, RunReport, RuntimeConfig};
pub use sink::{DeadLetter, DeadLetterSink, ErrorKind, FnSink, LoggedDeadLetters, Sink, SinkError};
pub use source::{
    from_iter, from_stream, Polled, Read, RecordError, RecordSource, Source, SourceError,
    SourceRecord,
};
pub use text::Text;

// What an embedder must name to implement a source or sink, build a key or a group id, or
// drive the operator in their own dataflow: re-exported so their versions always match ours.
pub use async_trait::async_trait;
pub use serde;
pub use timely;
pub use uuid;
