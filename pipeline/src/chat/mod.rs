//! The chat message, the operator's first instantiation, JSON-compatible with the seed's
//! messages: the record ([`ChatMessage`]), how it is keyed ([`ChatKey`]), its one-pass JSON codec,
//! and the TimeUUID helpers that give it an event time.
//!
//! A chat message's event time is the timestamp inside its `time` TimeUUID (version 1), in
//! milliseconds since the Unix epoch. Decoding checks every field a downstream sink relies on, so
//! that a bad record is rejected here, with a reason, and goes to the dead-letter sink.

mod json;
mod key;
mod message;
mod time;

pub use json::{write_json_str, DecodeError};
pub use key::ChatKey;
pub use message::ChatMessage;
pub use time::{iso_from_ms, timeuuid_from_ms, timeuuid_ms};
