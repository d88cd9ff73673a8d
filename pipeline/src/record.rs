//! What flows through the operator: any [`Aggregatable`] record, and the chat message, the first
//! instantiation, JSON-compatible with the seed's messages.
//!
//! A chat message's event time is the timestamp inside its `time` TimeUUID (version 1), in
//! milliseconds since the Unix epoch. Decoding checks every field a downstream sink relies on, so
//! that a bad record is rejected here, with a reason, and goes to the dead-letter sink.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::text::Text;

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

/// Where the first `"`, `\\` or control character in `bytes` is, sixteen bytes at a time like
/// [`needs_escape`]; `None` if there is none.
fn first_special(bytes: &[u8]) -> Option<usize> {
    let special = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    let mut blocks = bytes.chunks_exact(16);
    let mut offset = 0;
    for block in &mut blocks {
        let mut found = 0u8;
        for &b in block {
            found |= u8::from(special(b));
        }
        if found != 0 {
            return block.iter().position(|&b| special(b)).map(|i| offset + i);
        }
        offset += 16;
    }
    blocks
        .remainder()
        .iter()
        .position(|&b| special(b))
        .map(|i| offset + i)
}

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

/// A chat message's fields as they appear in its JSON, borrowed from it where they hold no
/// escape sequence (see [`ChatMessage::decode`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields<'a> {
    #[serde(borrow)]
    message_id: Cow<'a, str>,
    #[serde(borrow)]
    chat_id: Cow<'a, str>,
    #[serde(borrow)]
    from_user: Cow<'a, str>,
    #[serde(borrow)]
    to_user: Cow<'a, str>,
    #[serde(borrow)]
    body: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow)]
    time_iso: Cow<'a, str>,
}

/// What [`ChatMessage::write_json`](Aggregatable::write_json) writes before each field's value,
/// in order: the canonical form of a chat message is these, each followed by the field's string
/// (written with no escape), then `"}`.
const CANONICAL_PREFIXES: [&str; 7] = [
    "{\"message_id\":\"",
    "\",\"chat_id\":\"",
    "\",\"from_user\":\"",
    "\",\"to_user\":\"",
    "\",\"body\":\"",
    "\",\"time\":\"",
    "\",\"time_iso\":\"",
];

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

    /// Decodes and validates one JSON record of at most `max_bytes` bytes.
    ///
    /// The text fields share one copy of the record: when no field holds an escape sequence
    /// (the usual case) that copy is `bytes` itself, and each field is a range of it; otherwise it
    /// is the decoded fields one after the other.
    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Self, DecodeError> {
        if bytes.len() > max_bytes {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                limit: max_bytes,
            });
        }
        let message = match Self::decode_canonical(bytes) {
            Some(message) => message,
            None => Self::decode_any_json(bytes)?,
        };
        message.validate()?;
        Ok(message)
    }

    /// Decodes any JSON layout of a chat message with serde_json, without the checks of
    /// [`ChatMessage::validate`].
    fn decode_any_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        let fields: Fields<'_> =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
        let time = Uuid::try_parse(&fields.time)
            .map_err(|e| DecodeError::Json(format!("invalid value for field `time`: {e}")))?;
        let texts = [
            &fields.message_id,
            &fields.chat_id,
            &fields.from_user,
            &fields.to_user,
            &fields.body,
            &fields.time_iso,
        ];
        let borrowed = texts.iter().all(|t| matches!(t, Cow::Borrowed(_)));
        // A JSON document that parsed is UTF-8 throughout (its strings were checked, the rest is
        // ASCII punctuation and whitespace), so this does not fail for a borrowed record.
        let (buffer, ranges) = match std::str::from_utf8(bytes) {
            Ok(json) if borrowed => {
                let buffer: Arc<str> = Arc::from(json);
                let ranges = texts.map(|t| {
                    let start = t.as_ptr() as usize - bytes.as_ptr() as usize;
                    start..start + t.len()
                });
                (buffer, ranges)
            }
            _ => {
                let mut joined = String::with_capacity(texts.iter().map(|t| t.len()).sum());
                let ranges = texts.map(|t| {
                    let start = joined.len();
                    joined.push_str(t);
                    start..joined.len()
                });
                (Arc::from(joined), ranges)
            }
        };
        let [message_id, chat_id, from_user, to_user, body, time_iso] = ranges.map(|range| {
            Text::slice(&buffer, range).ok_or_else(|| {
                DecodeError::Json("a field does not lie on character boundaries".into())
            })
        });
        Ok(ChatMessage {
            message_id: message_id?,
            chat_id: chat_id?,
            from_user: from_user?,
            to_user: to_user?,
            body: body?,
            time,
            time_iso: time_iso?,
        })
    }

    /// Decodes `bytes` if they are a compact JSON object (no whitespace) of exactly the seven
    /// fields, in any order, with no escape sequence in any string: what the chat service writes
    /// (the canonical order of [`Aggregatable::write_json`]) and what the seed's services wrote
    /// (another order). `None` for anything else, which [`ChatMessage::decode`] then hands to
    /// serde_json. For such input the result is what serde_json reads, in one pass over the bytes.
    fn decode_canonical(bytes: &[u8]) -> Option<Self> {
        let json = std::str::from_utf8(bytes).ok()?;
        let mut ranges: [Option<std::ops::Range<usize>>; 7] = Default::default();
        let mut at = 1;
        if bytes.first() != Some(&b'{') {
            return None;
        }
        for i in 0..Self::FIELDS.len() {
            // `"name":"value"` then `,` (or `}` after the last).
            if bytes.get(at) != Some(&b'"') {
                return None;
            }
            // The chat service's order first (one comparison), then any other.
            let expected = Self::FIELDS[i].as_bytes();
            let rest = &bytes[at + 1..];
            let (field, name_len) =
                if rest.starts_with(expected) && rest.get(expected.len()) == Some(&b'"') {
                    (i, expected.len())
                } else {
                    let name_len = first_special(rest)?;
                    let name = &rest[..name_len];
                    (
                        Self::FIELDS.iter().position(|f| f.as_bytes() == name)?,
                        name_len,
                    )
                };
            at += 1 + name_len;
            if bytes.get(at..at + 3)? != b"\":\"" {
                return None;
            }
            at += 3;
            let len = first_special(&bytes[at..])?;
            // The string ends at a quote; a backslash or a control character first means an
            // escape sequence or invalid JSON: serde_json's business.
            if bytes[at + len] != b'"' || ranges[field].is_some() {
                return None;
            }
            ranges[field] = Some(at..at + len);
            at += len + 1;
            let last = i + 1 == Self::FIELDS.len();
            if bytes.get(at) != Some(if last { &b'}' } else { &b',' }) {
                return None;
            }
            at += 1;
        }
        if at != bytes.len() {
            return None;
        }
        let [message_id, chat_id, from_user, to_user, body, time, time_iso] = ranges;
        let time = Uuid::try_parse(json.get(time?)?).ok()?;
        let buffer: Arc<str> = Arc::from(json);
        let text = |range: Option<std::ops::Range<usize>>| Text::slice(&buffer, range?);
        Some(ChatMessage {
            message_id: text(message_id)?,
            chat_id: text(chat_id)?,
            from_user: text(from_user)?,
            to_user: text(to_user)?,
            body: text(body)?,
            time,
            time_iso: text(time_iso)?,
        })
    }

    /// The whole record, when every text field is a range of one decoded record in exactly the
    /// form [`Aggregatable::write_json`] writes, with the same `time`: then copying that record is
    /// writing the message.
    fn canonical_json(&self) -> Option<&str> {
        let buffer = self.message_id.buffer();
        // Records in another field order (the seed's) fail here, before any other work.
        if !buffer.starts_with(CANONICAL_PREFIXES[0]) {
            return None;
        }
        let mut time = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let time = self.time.hyphenated().encode_lower(&mut time);
        let mut at = 0;
        for (prefix, field) in CANONICAL_PREFIXES.iter().zip([
            Some(&self.message_id),
            Some(&self.chat_id),
            Some(&self.from_user),
            Some(&self.to_user),
            Some(&self.body),
            None,
            Some(&self.time_iso),
        ]) {
            if buffer.get(at..at + prefix.len())? != *prefix {
                return None;
            }
            at += prefix.len();
            let end = match field {
                Some(text) => {
                    let range = text.range();
                    if range.start != at || !text.is_slice_of(buffer, range.clone()) {
                        return None;
                    }
                    range.end
                }
                None => {
                    if buffer.get(at..at + time.len())? != time {
                        return None;
                    }
                    at + time.len()
                }
            };
            at = end;
        }
        (buffer.get(at..)? == "\"}").then_some(buffer)
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
    /// The grouping key of `message`. For [`ChatKey::Chat`] it shares the message's buffer, so
    /// keying a record allocates nothing.
    pub fn key(&self, message: &ChatMessage) -> Text {
        match self {
            ChatKey::Chat => message.chat_id.clone(),
            ChatKey::ChatAndSender => {
                // Joined in a reused buffer, then copied once into the key's own allocation: a
                // `format!` allocated twice per record (the String, then the shared copy).
                thread_local! {
                    static JOINED: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
                }
                JOINED.with(|joined| {
                    let mut joined = joined.borrow_mut();
                    joined.clear();
                    joined.push_str(&message.from_user);
                    joined.push('-');
                    joined.push_str(&message.chat_id);
                    Text::from(joined.as_str())
                })
            }
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
            time_iso: iso_from_ms(ms).into(),
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
    fn a_canonical_record_decodes_into_one_buffer_and_is_written_back_whole() {
        let m = message(1_700_000_000_000);
        let json = m.encode();
        let decoded = ChatMessage::decode(&json, 10_000).expect("decodes");
        let buffer = decoded.message_id.buffer();
        for text in [
            &decoded.chat_id,
            &decoded.from_user,
            &decoded.to_user,
            &decoded.body,
            &decoded.time_iso,
        ] {
            assert!(
                Arc::ptr_eq(text.buffer(), buffer),
                "{text} has its own buffer"
            );
        }
        assert_eq!(buffer.as_bytes(), json.as_slice());
        assert_eq!(decoded.canonical_json(), Some(&**buffer));
        assert_eq!(decoded.encode(), json);
    }

    #[test]
    fn a_changed_field_is_written_as_changed() {
        let decoded = ChatMessage::decode(&message(5).encode(), 10_000).expect("decodes");
        let mut later = decoded.clone();
        later.time = timeuuid_from_ms(6, 7, [1; 6]);
        assert_eq!(later.canonical_json(), None);
        assert_eq!(later.encode(), serde_json::to_vec(&later).expect("encodes"));
        let mut edited = decoded.clone();
        edited.body = "edited".into();
        assert_eq!(edited.canonical_json(), None);
        assert_eq!(
            edited.encode(),
            serde_json::to_vec(&edited).expect("encodes")
        );
        // The same buffer, but a field taken from another place in it.
        let mut swapped = decoded;
        swapped.from_user = swapped.to_user.clone();
        assert_eq!(swapped.canonical_json(), None);
        assert_eq!(
            swapped.encode(),
            serde_json::to_vec(&swapped).expect("encodes")
        );
    }

    proptest::proptest! {
        /// Whatever the strings hold and however the JSON is laid out (field order, spaces,
        /// escapes), decoding gives serde_json's reading of it, and writing gives serde_json's
        /// canonical encoding of that.
        #[test]
        fn decode_then_write_is_serde_json(
            texts in proptest::array::uniform6("\\PC{1,12}|.{1,8}"),
            ms in 0u64..4_102_444_800_000,
            reverse in proptest::bool::ANY,
            pretty in proptest::bool::ANY,
        ) {
            let m = ChatMessage {
                message_id: texts[0].as_str().into(),
                chat_id: texts[1].as_str().into(),
                from_user: texts[2].as_str().into(),
                to_user: texts[3].as_str().into(),
                body: texts[4].as_str().into(),
                time: timeuuid_from_ms(ms, 3, [2; 6]),
                time_iso: texts[5].as_str().into(),
            };
            let value = serde_json::to_value(&m).expect("to a value");
            let mut fields: Vec<(String, serde_json::Value)> =
                value.as_object().expect("an object").clone().into_iter().collect();
            if reverse {
                fields.reverse();
            }
            let object: serde_json::Map<String, serde_json::Value> = fields.into_iter().collect();
            let json = if pretty {
                serde_json::to_vec_pretty(&object)
            } else {
                serde_json::to_vec(&object)
            }
            .expect("encodes");
            let decoded = ChatMessage::decode(&json, usize::MAX).expect("decodes");
            proptest::prop_assert_eq!(&decoded, &m);
            proptest::prop_assert_eq!(decoded.encode(), serde_json::to_vec(&m).expect("encodes"));
            let canonical = m.encode();
            let again = ChatMessage::decode(&canonical, usize::MAX).expect("decodes");
            proptest::prop_assert_eq!(&again, &m);
            proptest::prop_assert_eq!(again.encode(), canonical);
        }
    }

    proptest::proptest! {
        /// The fast path for canonical records reads what serde_json reads, and refuses (to let
        /// serde_json decide) whatever serde_json would read differently or reject: checked on
        /// canonical records with bytes overwritten, cut short or inserted.
        #[test]
        fn the_canonical_fast_path_agrees_with_serde_json(
            body in "\\PC{0,40}",
            edits in proptest::collection::vec((0usize..400, proptest::num::u8::ANY, 0u8..3), 0..3),
        ) {
            let mut m = message(1_700_000_000_000);
            m.body = body.into();
            let mut bytes = m.encode();
            for (at, byte, kind) in edits {
                let at = at % (bytes.len() + 1);
                match kind {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.truncate(at),
                    _ => bytes.insert(at, byte),
                }
            }
            let serde = ChatMessage::decode_any_json(&bytes).ok();
            if let Some(fast) = ChatMessage::decode_canonical(&bytes) {
                proptest::prop_assert_eq!(Some(&fast), serde.as_ref());
                proptest::prop_assert_eq!(fast.encode(), serde_json::to_vec(&fast).expect("encodes"));
            }
        }
    }

    proptest::proptest! {
        /// Compact JSON with the fields in any order: the fast path takes every record without
        /// an escape sequence, and reads what serde_json reads.
        #[test]
        fn the_fast_path_takes_any_field_order(
            order in proptest::strategy::Strategy::prop_shuffle(proptest::strategy::Just(ChatMessage::FIELDS)),
            body in "\\PC{0,20}",
            ms in 0u64..4_102_444_800_000,
        ) {
            let mut m = message(ms);
            m.body = body.into();
            let value = serde_json::to_value(&m).expect("to a value");
            let fields: Vec<String> = order
                .iter()
                .map(|name| format!("\"{name}\":{}", value[name]))
                .collect();
            let json = format!("{{{}}}", fields.join(","));
            let fast = ChatMessage::decode_canonical(json.as_bytes());
            if !json.contains('\\') {
                proptest::prop_assert!(fast.is_some(), "refused {}", json);
            }
            if let Some(fast) = fast {
                proptest::prop_assert_eq!(&fast, &m);
                proptest::prop_assert_eq!(Some(fast), ChatMessage::decode_any_json(json.as_bytes()).ok());
            }
        }
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
