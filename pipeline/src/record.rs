//! What flows through the operator: any [`Aggregatable`] record, and the chat message, the first
//! instantiation, JSON-compatible with the seed's messages.
//!
//! A chat message's event time is the timestamp inside its `time` TimeUUID (version 1), in
//! milliseconds since the Unix epoch. Decoding checks every field a downstream sink relies on, so
//! that a bad record is rejected here, with a reason, and goes to the dead-letter sink.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A record the operator can group: it has an event time, a size, and an id that is stable across
/// replays of the log.
pub trait Aggregatable: Clone + Send + Serialize + for<'de> Deserialize<'de> + 'static {
    /// Event time in milliseconds since the Unix epoch. Drives group membership.
    fn event_time_ms(&self) -> u64;
    /// Size in bytes counted against `max_bytes` (for chat messages: the encoded record's size).
    fn size_bytes(&self) -> usize;
    /// An id unique to this record and identical on every replay (for chat messages: the
    /// `message_id`). The group id is derived from the key and the first record's id.
    fn record_id(&self) -> &str;
    /// Whether this record may join a group that began with `first`. Always, for plain records;
    /// an [`Envelope`] read under a newer assignment of its partition may not join a group of an
    /// older one (that group is abandoned: see [`Envelope::generation`]).
    fn may_join(&self, first: &Self) -> bool {
        let _ = first;
        true
    }
    /// Appends the record as JSON, exactly as `serde_json` writes it. The default does just
    /// that; [`ChatMessage`] writes its fields itself, copying strings that need no escape in
    /// one piece (serde_json checks every byte on its own, which was the largest cost of writing
    /// groups to Kafka).
    fn write_json(&self, out: &mut Vec<u8>) {
        // Serializing into a Vec fails only for a Serialize impl that reports an error itself.
        let _ = serde_json::to_writer(out, self);
    }
}

/// Appends `value` as a JSON string, byte for byte as `serde_json` would: in one copy when it
/// holds nothing to escape (no `"`, `\\` or control character), through serde_json otherwise.
pub fn write_json_str(out: &mut Vec<u8>, value: &str) {
    if needs_escape(value.as_bytes()) {
        let _ = serde_json::to_writer(out, value);
    } else {
        out.reserve(value.len() + 2);
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    }
}

/// Whether `bytes` holds a `"`, a `\\` or a control character: sixteen bytes at a time, with no
/// branch inside a block, so the compiler turns each block into a few vector compares.
fn needs_escape(bytes: &[u8]) -> bool {
    let special = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    let mut blocks = bytes.chunks_exact(16);
    for block in &mut blocks {
        let mut found = 0u8;
        for &b in block {
            found |= u8::from(special(b));
        }
        if found != 0 {
            return true;
        }
    }
    blocks.remainder().iter().any(|&b| special(b))
}

/// A chat message as the chat service produces it and the seed's clients read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    /// Unique id: a UUID v4 assigned by the chat service, or the client's idempotency key.
    pub message_id: String,
    /// The chat (conversation) this message belongs to.
    pub chat_id: String,
    /// The sender's user id.
    pub from_user: String,
    /// The recipient's user id.
    pub to_user: String,
    /// The text of the message.
    pub body: String,
    /// A version-1 TimeUUID: the message's event time, and its clustering key in the history.
    pub time: Uuid,
    /// The same instant as `time`, as RFC 3339 text (the seed's web client shows this).
    pub time_iso: String,
}

/// Why a record could not be decoded into a [`ChatMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not valid JSON for a chat message (syntax, wrong type, missing or unknown
    /// field); the text is serde's explanation.
    #[error("not a chat message: {0}")]
    Json(String),
    /// `time` is a UUID but not a version-1 TimeUUID, so it carries no time.
    #[error("field `time` must be a version-1 TimeUUID, got version {0}")]
    NotTimeUuid(usize),
    /// A required text field is empty.
    #[error("field `{0}` must not be empty")]
    Empty(&'static str),
    /// The record is larger than the configured limit.
    #[error("record is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// The record's size in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
}

impl ChatMessage {
    /// Decodes and validates one JSON record of at most `max_bytes` bytes.
    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Self, DecodeError> {
        if bytes.len() > max_bytes {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                limit: max_bytes,
            });
        }
        let message: ChatMessage =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
        message.validate()?;
        Ok(message)
    }

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
    fn write_json(&self, out: &mut Vec<u8>) {
        // The fields in declaration order, as the derived Serialize writes them.
        let mut time = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let time = self.time.hyphenated().encode_lower(&mut time);
        for (i, (name, value)) in [
            ("message_id", self.message_id.as_str()),
            ("chat_id", &self.chat_id),
            ("from_user", &self.from_user),
            ("to_user", &self.to_user),
            ("body", &self.body),
            ("time", time),
            ("time_iso", &self.time_iso),
        ]
        .into_iter()
        .enumerate()
        {
            out.extend_from_slice(if i == 0 { b"{\"" } else { b",\"" });
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            write_json_str(out, value);
        }
        out.push(b'}');
    }
}

/// How chat messages are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatKey {
    /// One group stream per chat: both users' messages share a document (confab's default).
    #[default]
    Chat,
    /// One group stream per chat and sender, as the seed's Camel route keyed `from_user-chat_id`.
    ChatAndSender,
}

impl ChatKey {
    /// The grouping key of `message`.
    pub fn key(&self, message: &ChatMessage) -> String {
        match self {
            ChatKey::Chat => message.chat_id.clone(),
            ChatKey::ChatAndSender => format!("{}-{}", message.from_user, message.chat_id),
        }
    }

    /// The name used in configuration and reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChatKey::Chat => "chat",
            ChatKey::ChatAndSender => "chat_and_sender",
        }
    }
}

/// The milliseconds since the Unix epoch inside a version-1 UUID, or `None` for other versions.
pub fn timeuuid_ms(id: &Uuid) -> Option<u64> {
    if id.get_version_num() != 1 {
        return None;
    }
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    Some(secs * 1000 + u64::from(nanos) / 1_000_000)
}

/// Makes a version-1 TimeUUID for `ms` milliseconds since the Unix epoch. `counter` fills the
/// sub-millisecond ticks (so up to 10,000 distinct ids per millisecond and node), and `node` the
/// node field; both keep ids made in the same millisecond apart.
pub fn timeuuid_from_ms(ms: u64, counter: u16, node: [u8; 6]) -> Uuid {
    let ticks = (ms * 10_000 + u64::from(counter % 10_000)) + 0x01B2_1DD2_1381_4000;
    let ts = uuid::Timestamp::from_gregorian_time(ticks, counter);
    Uuid::new_v1(ts, &node)
}

/// The RFC 3339 text (UTC, millisecond precision) of `ms` milliseconds since the Unix epoch.
pub fn iso_from_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Howard Hinnant's days-to-civil algorithm: the (year, month, day) of a day count since
/// 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A record paired with where it came from in the source: what commit-after-ack tracks.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_special_byte_is_found_at_every_position() {
        for len in 1..40 {
            assert!(!needs_escape(&vec![b'a'; len]));
            for at in 0..len {
                for special in [b'"', b'\\', 0u8, b'\n', 0x1f] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    assert!(needs_escape(&bytes), "{special} at {at} of {len}");
                }
                let mut bytes = vec![b'a'; len];
                bytes[at] = 0x7f; // DEL is not escaped by JSON
                assert!(!needs_escape(&bytes));
            }
        }
    }

    fn message(ms: u64) -> ChatMessage {
        ChatMessage {
            message_id: "m1".into(),
            chat_id: "c1".into(),
            from_user: "u1".into(),
            to_user: "u2".into(),
            body: "hello".into(),
            time: timeuuid_from_ms(ms, 7, [1; 6]),
            time_iso: iso_from_ms(ms),
        }
    }

    #[test]
    fn timeuuid_round_trips_milliseconds() {
        for ms in [0, 1, 1_700_000_000_123, 4_102_444_800_000] {
            assert_eq!(timeuuid_ms(&timeuuid_from_ms(ms, 9_999, [0; 6])), Some(ms));
        }
    }

    #[test]
    fn iso_text_matches_known_instants() {
        assert_eq!(iso_from_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_from_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso_from_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn decode_accepts_what_encode_writes() {
        let m = message(1_700_000_000_000);
        assert_eq!(ChatMessage::decode(&m.encode(), 10_000), Ok(m.clone()));
        assert_eq!(m.event_time_ms(), 1_700_000_000_000);
    }

    #[test]
    fn decode_rejects_each_kind_of_bad_record_with_a_reason() {
        let good = String::from_utf8(message(5).encode()).unwrap_or_default();
        let v4 = good.replace(&message(5).time.to_string(), &Uuid::new_v4().to_string());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"\xff\xfe garbage".to_vec(), "not a chat message"),
            (br#"{"chat_id":"c"}"#.to_vec(), "missing field"),
            (
                good.replace("\"body\"", "\"bodyx\"").into_bytes(),
                "unknown field",
            ),
            (v4.into_bytes(), "version-1 TimeUUID"),
            (
                good.replace("\"c1\"", "\"\"").into_bytes(),
                "must not be empty",
            ),
            (vec![b' '; 20_000], "over the 10000-byte limit"),
        ];
        for (bytes, reason) in cases {
            let err = ChatMessage::decode(&bytes, 10_000).expect_err("must be rejected");
            assert!(
                err.to_string().contains(reason),
                "{err} should say {reason}"
            );
        }
    }
}
