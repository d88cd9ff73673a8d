//! # confab-pipeline
//!
//! The heart of confab: a **buffer-and-aggregate-by-key** operator on timely dataflow, and a
//! runtime that wires a replayable source to it and to one or more sinks with **commit-after-ack**
//! delivery. No network client lives here; connectors implement [`Source`], [`Sink`] and
//! [`DeadLetterSink`] in their own crate.
//!
//! - [`AggregateByKey`] groups each key's records until the [`WindowPolicy`] completes the group
//!   (inactivity, count, bytes, age, end of input). Which records form a group is a function of
//!   the log, so a replay rebuilds the same groups with the same [`Group::id`].
//! - [`Pipeline`] reads a [`Source`], decodes, aggregates on timely workers, writes every group to
//!   every [`Sink`], and commits a source position only after every record before it was
//!   acknowledged by every sink: at-least-once, made exactly-once in effect by idempotent sinks.
//!
//! The in-memory log, sink and dead-letter sink in [`memory`] run the same code in tests and in
//! the embedded default.

#![warn(missing_docs)]

pub mod clock;
pub mod group;
pub mod memory;
pub mod metrics;
pub mod operator;
pub mod policy;
pub mod record;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod text;

pub use clock::{Clock, ManualClock, SystemClock};
pub use group::{group_id, CompletionReason, Group};
pub use metrics::Metrics;
pub use operator::{AggregateByKey, AggregateOptions, GroupKey, OperatorLimits};
pub use policy::{PolicyError, WindowPolicy};
pub use record::{Aggregatable, ChatKey, ChatMessage, DecodeError, Envelope, Position};
pub use runtime::{ConfigError, Pipeline, PipelineError, RunReport, RuntimeConfig};
pub use sink::{DeadLetter, DeadLetterSink, ErrorKind, FnSink, LoggedDeadLetters, Sink, SinkError};
pub use source::{
    from_iter, from_stream, Polled, Read, RecordSource, Source, SourceError, SourceRecord,
};
pub use text::Text;

// What an embedder must name to implement a source or sink, build a key or a group id, or
// drive the operator in their own dataflow: re-exported so their versions always match ours.
pub use async_trait::async_trait;
pub use serde;
pub use timely;
pub use uuid;
