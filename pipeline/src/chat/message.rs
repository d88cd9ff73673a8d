//! The chat message: its fields, its checks, and what it is to the operator.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::json::{write_json_str, DecodeError, CANONICAL_PREFIXES};
use super::time::timeuuid_ms;
use crate::record::Aggregatable;
use crate::text::Text;

/// A chat message as the chat service produces it and the seed's clients read it.
///
/// The text fields are [`Text`]: [`ChatMessage::decode`] keeps all of them in one shared copy of
/// the record (one allocation per record instead of six), and [`Aggregatable::write_json`]
/// copies that record back in one piece when it is already in the canonical form this type
/// writes. Build one with `.into()` from `String`s or `&str`s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    /// Unique id: a UUID v4 assigned by the chat service, or the client's idempotency key.
    pub message_id: Text,
    /// The chat (conversation) this message belongs to.
    pub chat_id: Text,
    /// The sender's user id.
    pub from_user: Text,
    /// The recipient's user id.
    pub to_user: Text,
    /// The text of the message.
    pub body: Text,
    /// A version-1 TimeUUID: the message's event time, and its clustering key in the history.
    pub time: Uuid,
    /// The same instant as `time`, as RFC 3339 text (the seed's web client shows this).
    pub time_iso: Text,
}

impl ChatMessage {
    /// The JSON field names, in declaration order (the order [`Aggregatable::write_json`] writes).
    pub const FIELDS: [&'static str; 7] = [
        "message_id",
        "chat_id",
        "from_user",
        "to_user",
        "body",
        "time",
        "time_iso",
    ];

    /// Checks the invariants decoding promises: non-empty ids and a version-1 `time`.
    pub fn validate(&self) -> Result<(), DecodeError> {
        for (name, value) in [
            ("message_id", &self.message_id),
            ("chat_id", &self.chat_id),
            ("from_user", &self.from_user),
            ("to_user", &self.to_user),
        ] {
            if value.is_empty() {
                return Err(DecodeError::Empty(name));
            }
        }
        if timeuuid_ms(&self.time).is_none() {
            return Err(DecodeError::NotTimeUuid(self.time.get_version_num()));
        }
        Ok(())
    }

    /// Encodes this message as the JSON the seed's services exchange.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_bytes() + 128);
        self.write_json(&mut out);
        out
    }
}

impl Aggregatable for ChatMessage {
    fn event_time_ms(&self) -> u64 {
        timeuuid_ms(&self.time).unwrap_or(0)
    }
    fn size_bytes(&self) -> usize {
        self.message_id.len()
            + self.chat_id.len()
            + self.from_user.len()
            + self.to_user.len()
            + self.body.len()
            + self.time_iso.len()
            + 36
    }
    fn record_id(&self) -> &str {
        &self.message_id
    }
    fn source_bytes(&self) -> Option<&[u8]> {
        // The whole record when decoding borrowed every field from it; otherwise something else
        // (the fields joined, or one field), which the runtime tells apart by comparing.
        Some(self.message_id.buffer().as_bytes())
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        if let Some(json) = self.canonical_json() {
            out.extend_from_slice(json.as_bytes());
            return;
        }
        // The fields in declaration order, as the derived Serialize writes them.
        let mut time = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let time = self.time.hyphenated().encode_lower(&mut time);
        for (i, (prefix, value)) in CANONICAL_PREFIXES
            .iter()
            .zip([
                self.message_id.as_str(),
                &self.chat_id,
                &self.from_user,
                &self.to_user,
                &self.body,
                time,
                &self.time_iso,
            ])
            .enumerate()
        {
            // A prefix starts with the previous value's closing quote and ends with this value's
            // opening one: write_json_str writes both.
            let from = usize::from(i > 0);
            out.extend_from_slice(&prefix.as_bytes()[from..prefix.len() - 1]);
            write_json_str(out, value);
        }
        out.push(b'}');
    }
}
