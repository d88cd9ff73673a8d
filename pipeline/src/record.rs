//! What flows through the operator: any [`Aggregatable`] record, and where it came from in the
//! source ([`Position`]).
//!
//! The chat message, the first instantiation, is in [`crate::chat`].

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A record the operator can group: it has an event time, a size, and optionally an id that is
/// stable across replays of the log. (Serde lets records cross between timely workers.)
///
/// ```
/// use confab_pipeline::Aggregatable;
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Reading { device_id: u32, ts_ms: u64, value: f64 }
///
/// impl Aggregatable for Reading {
///     fn event_time_ms(&self) -> u64 { self.ts_ms }
/// }
/// assert_eq!(Reading { device_id: 1, ts_ms: 5, value: 0.5 }.record_id(), "");
/// ```
pub trait Aggregatable: Clone + Send + Serialize + for<'de> Deserialize<'de> + 'static {
    /// Event time in milliseconds. Drives group membership. Milliseconds of the pipeline's
    /// clock (Unix milliseconds by default) unless the pipeline runs on event time only (see
    /// [`crate::Pipeline::event_time_only`]).
    fn event_time_ms(&self) -> u64;
    /// Size in bytes counted against `max_bytes` (for chat messages: the encoded record's size).
    /// Under a [`crate::Pipeline`] reading a byte source, the payload's length counts instead.
    /// By default, the record's own size in memory, without what it points to: right for a
    /// record of numbers, too small for one holding strings or vectors.
    fn size_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
    }
    /// An id unique to this record and identical on every replay (for chat messages: the
    /// `message_id`). The group id is derived from the key and the first record's id; a record
    /// without one (the default, empty) is identified by its position in the source.
    fn record_id(&self) -> &str {
        ""
    }
    // The three hidden methods below are the runtime's hooks into its own records (a trait
    // cannot keep methods crate-private): their defaults are right for every record type outside
    // this crate, so they stay out of the docs an implementer reads.

    /// What the group id is derived from besides the key: the first record's id, or, for a
    /// record without one that the runtime read, its position.
    #[doc(hidden)]
    fn group_seed(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.record_id())
    }
    /// The bytes this record was decoded from, when it holds them whole (a chat message decoded
    /// with no escape sequence keeps one copy of its JSON). The runtime then keeps no second copy
    /// of a payload equal to them, and a dead letter of the record carries them. `None` by
    /// default.
    #[doc(hidden)]
    fn source_bytes(&self) -> Option<&[u8]> {
        None
    }
    /// Whether this record may join a group that began with `first`. Always, for plain records;
    /// an [`Envelope`] read under a newer assignment of its partition may not join a group of an
    /// older one (that group is abandoned: see [`Envelope::generation`]). The runtime's, not
    /// yours to implement.
    #[doc(hidden)]
    fn may_join(&self, first: &Self) -> bool {
        let _ = first;
        true
    }
    /// Appends the record as JSON, exactly as `serde_json` writes it. The default does just
    /// that; [`ChatMessage`](crate::ChatMessage) writes its fields itself, copying strings that need no escape in
    /// one piece (serde_json checks every byte on its own, which was the largest cost of writing
    /// groups to Kafka).
    fn write_json(&self, out: &mut Vec<u8>) {
        // Serializing into a Vec fails only for a Serialize impl that reports an error itself.
        let _ = serde_json::to_writer(out, self);
    }
}

/// A record paired with where it came from in the source: what commit-after-ack tracks.
///
/// The runtime's, not part of the API: public only so that confab's benches feed the operator
/// exactly what the runtime feeds it (hidden from the docs, and free to change).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<R> {
    /// Where the record sits in the source log.
    pub position: Position,
    /// Size of the record as read, in bytes (counted against `max_bytes`).
    pub bytes: u32,
    /// Which assignment of its partition the record was read under. When a rebalance takes the
    /// partition away, the runtime drops the open groups of that assignment instead of writing
    /// them half-full: the partition's next owner rebuilds them whole from the committed position.
    pub generation: u32,
    /// The decoded record.
    pub record: R,
    /// The record's bytes as read, kept so that a group a sink rejects goes to the dead letters
    /// unchanged. Empty for a typed source's record, and for one that holds its bytes itself
    /// ([`Aggregatable::source_bytes`]).
    pub payload: Vec<u8>,
}

impl<R: Aggregatable> Aggregatable for Envelope<R> {
    fn event_time_ms(&self) -> u64 {
        self.record.event_time_ms()
    }
    fn size_bytes(&self) -> usize {
        self.bytes as usize
    }
    fn record_id(&self) -> &str {
        self.record.record_id()
    }
    fn group_seed(&self) -> Cow<'_, str> {
        match self.record.record_id() {
            "" => Cow::Owned(self.position.to_string()),
            id => Cow::Borrowed(id),
        }
    }
    fn may_join(&self, first: &Self) -> bool {
        self.generation == first.generation
    }
}

/// A record's place in a partitioned log: the partition and the offset within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Partition number (0 for an unpartitioned source).
    pub partition: u32,
    /// Offset of the record within its partition.
    pub offset: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.partition, self.offset)
    }
}
