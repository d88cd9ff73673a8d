//! The chat message's one-pass JSON codec: a record in the chat service's compact form is read in
//! one pass over its bytes, into one shared buffer, and written back by copying that buffer;
//! anything else goes through serde_json, with the same result.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;
use uuid::Uuid;

use super::message::ChatMessage;
use crate::text::Text;

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
pub(super) const CANONICAL_PREFIXES: [&str; 7] = [
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
    pub(super) fn canonical_json(&self) -> Option<&str> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{iso_from_ms, timeuuid_from_ms};
    use crate::record::Aggregatable;

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
