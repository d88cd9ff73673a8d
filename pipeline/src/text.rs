//! [`Text`]: an immutable string that can share its buffer with other `Text`s.
//!
//! Decoding a chat message used to allocate one `String` per field, six per record: with their
//! frees (on another thread, after the sinks), that was about a third of the aggregator's CPU in
//! `connectors/examples/kafka_throughput.rs`. [`ChatMessage::decode`](crate::ChatMessage::decode)
//! now copies the record's JSON once into a reference-counted buffer, and each field is a range
//! of it: one allocation per record, and a record's fields sit together in memory when the sinks
//! read them. Everywhere else a `Text` behaves like a `&str` (it dereferences to one) and is made
//! from a `String` or a `&str` with `.into()`.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An immutable UTF-8 string: a range of a shared, reference-counted buffer. Cloning it is a
/// reference-count increment. Compares, hashes, orders, prints and serializes as its `str`.
#[derive(Clone)]
pub struct Text {
    buffer: Arc<str>,
    start: u32,
    end: u32,
}

impl Text {
    /// The text as a `&str`.
    pub fn as_str(&self) -> &str {
        // The range is checked against char boundaries when the Text is made.
        &self.buffer[self.start as usize..self.end as usize]
    }

    /// `range` of `buffer`, or `None` when the range is out of bounds, splits a character, or
    /// does not fit the `u32` offsets (buffers are records, far smaller than 4 GiB).
    pub(crate) fn slice(buffer: &Arc<str>, range: std::ops::Range<usize>) -> Option<Self> {
        buffer.get(range.clone())?;
        Some(Self {
            buffer: Arc::clone(buffer),
            start: u32::try_from(range.start).ok()?,
            end: u32::try_from(range.end).ok()?,
        })
    }

    /// Whether `self` is the range `range` of `buffer` (the very same allocation).
    pub(crate) fn is_slice_of(&self, buffer: &Arc<str>, range: std::ops::Range<usize>) -> bool {
        Arc::ptr_eq(&self.buffer, buffer)
            && self.start as usize == range.start
            && self.end as usize == range.end
    }

    /// The whole buffer this text is a range of.
    pub(crate) fn buffer(&self) -> &Arc<str> {
        &self.buffer
    }

    /// Where this text starts and ends in its buffer.
    pub(crate) fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

impl From<Arc<str>> for Text {
    fn from(buffer: Arc<str>) -> Self {
        match u32::try_from(buffer.len()) {
            Ok(end) => Self {
                buffer,
                start: 0,
                end,
            },
            // Longer than 4 GiB: keep the first 4 GiB worth of whole characters. No record gets
            // near this; the conversion stays infallible like String's.
            Err(_) => {
                let mut end = u32::MAX as usize;
                while !buffer.is_char_boundary(end) {
                    end -= 1;
                }
                Self {
                    buffer,
                    start: 0,
                    end: end as u32,
                }
            }
        }
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Arc::<str>::from(s).into()
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Arc::<str>::from(s).into()
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Self {
        s.as_str().into()
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        t.as_str().to_owned()
    }
}

impl Default for Text {
    fn default() -> Self {
        "".into()
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Text {
    fn as_ref(&self) -> &[u8] {
        self.as_str().as_bytes()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Text {
    // As `str` hashes, so that maps keyed by Text can be searched with a `&str`.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Text::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_slice_reads_compares_and_hashes_as_its_str() {
        let buffer: Arc<str> = Arc::from("hello, wörld");
        let world = Text::slice(&buffer, 7..13).expect("in bounds");
        assert_eq!(world.as_str(), "wörld");
        assert_eq!(world, "wörld");
        assert_eq!(world, Text::from("wörld"));
        assert_eq!(format!("{world}|{world:?}"), "wörld|\"wörld\"");
        let map: HashMap<Text, u8> = [(world.clone(), 1)].into_iter().collect();
        assert_eq!(map.get("wörld"), Some(&1));
        assert!(world.is_slice_of(&buffer, 7..13));
        assert!(!Text::from("wörld").is_slice_of(&buffer, 7..13));
    }

    #[test]
    fn slices_that_split_a_character_or_leave_the_buffer_are_refused() {
        let buffer: Arc<str> = Arc::from("wörld");
        assert!(Text::slice(&buffer, 0..2).is_none(), "ö is two bytes");
        assert!(Text::slice(&buffer, 0..7).is_none());
        assert!(Text::slice(&buffer, 0..6).is_some());
    }

    #[test]
    fn serializes_as_a_plain_json_string() {
        let text = Text::from("a \"quoted\" word");
        let json = serde_json::to_string(&text).expect("serializes");
        assert_eq!(
            json,
            serde_json::to_string("a \"quoted\" word").expect("str")
        );
        let back: Text = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, text);
    }
}
