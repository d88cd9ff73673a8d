//! A completed group: the records of one key that the window policy put together, in log order,
//! with a deterministic id so that a replay rewrites the same document.

use std::io::Write as _;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::record::{Aggregatable, Envelope, Position};

/// Why a group completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletionReason {
    /// No record for the key within `inactivity_timeout_ms`.
    Inactivity,
    /// The group reached `max_messages`.
    MaxMessages,
    /// The next record would have taken the group over `max_bytes`.
    MaxBytes,
    /// `max_age_ms` passed since the group's first record.
    MaxAge,
    /// The input ended (or the pipeline shut down) while the group was open.
    EndOfInput,
    /// The operator's cap on open groups or open bytes forced the group out early.
    Capacity,
    /// A record of the same key came from a later commit epoch (`commit_epoch_ms` of event
    /// time), so the log has a point no group straddles, where offsets can be committed.
    Epoch,
    /// A record of the same key came from a newer assignment of its partition (after a
    /// rebalance), so this group, begun under the old one, was closed; the runtime drops it.
    Reassigned,
    /// The record came after its key was idle for `leading_edge_idle_ms` (or had no record
    /// yet), so it was written at once, alone.
    LeadingEdge,
}

impl CompletionReason {
    /// Every reason, for metrics that report each one.
    pub const ALL: [CompletionReason; 9] = [
        Self::Inactivity,
        Self::MaxMessages,
        Self::MaxBytes,
        Self::MaxAge,
        Self::EndOfInput,
        Self::Capacity,
        Self::Epoch,
        Self::Reassigned,
        Self::LeadingEdge,
    ];

    /// The snake_case name used in metrics and documents.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Inactivity => "inactivity",
            Self::MaxMessages => "max_messages",
            Self::MaxBytes => "max_bytes",
            Self::MaxAge => "max_age",
            Self::EndOfInput => "end_of_input",
            Self::Capacity => "capacity",
            Self::Epoch => "epoch",
            Self::Reassigned => "reassigned",
            Self::LeadingEdge => "leading_edge",
        }
    }
}

/// The namespace of group ids (UUID v5), fixed forever: changing it would change every id.
const GROUP_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a0c_2f7e_4b1d_4c39_9e57_0d3c_5b1a_c0fa);

/// The id of the group with `key` whose first record has id `first_record_id`: a UUID v5 of
/// both, so it is the same on every replay, safe as a Firestore document id, and fixed-length.
pub fn group_id(key: &str, first_record_id: &str) -> Uuid {
    let mut name = Vec::with_capacity(key.len() + first_record_id.len() + 1);
    name.extend_from_slice(key.as_bytes());
    name.push(0);
    name.extend_from_slice(first_record_id.as_bytes());
    Uuid::new_v5(&GROUP_ID_NAMESPACE, &name)
}

/// A completed group of records sharing one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group<K, D> {
    /// Deterministic id: [`group_id`] of the key and the first record's id.
    pub id: Uuid,
    /// The key shared by every record.
    pub key: K,
    /// The records in the log order of the key.
    pub records: Vec<D>,
    /// Smallest event time in the group (ms).
    pub first_time_ms: u64,
    /// Largest event time in the group (ms).
    pub last_time_ms: u64,
    /// Sum of the records' sizes in bytes.
    pub bytes: usize,
    /// What completed the group.
    pub reason: CompletionReason,
}

impl<K, D: Aggregatable> Group<K, D> {
    /// Number of records in the group.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the group holds no record (never true for a group the operator emits).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Appends the group as JSON, byte for byte as `serde_json::to_writer` writes it (decode it
    /// as `Group<K, D>`), with each record written by [`Aggregatable::write_json`].
    pub fn write_json(&self, out: &mut Vec<u8>)
    where
        K: Serialize,
    {
        let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
        out.extend_from_slice(b"{\"id\":\"");
        out.extend_from_slice(self.id.hyphenated().encode_lower(&mut id).as_bytes());
        out.extend_from_slice(b"\",\"key\":");
        let _ = serde_json::to_writer(&mut *out, &self.key);
        out.extend_from_slice(b",\"records\":[");
        for (i, record) in self.records.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            record.write_json(out);
        }
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "],\"first_time_ms\":{},\"last_time_ms\":{},\"bytes\":{},\"reason\":\"{}\"}}",
            self.first_time_ms,
            self.last_time_ms,
            self.bytes,
            self.reason.as_str()
        );
    }
}

impl<K, R: Aggregatable> Group<K, Envelope<R>> {
    /// The source positions this group covers, in record order.
    pub(crate) fn positions(&self) -> impl Iterator<Item = Position> + '_ {
        self.records.iter().map(|e| e.position)
    }

    /// The same group with the envelopes unwrapped, as sinks see it.
    pub(crate) fn into_records(self) -> Group<K, R> {
        Group {
            id: self.id,
            key: self.key,
            records: self.records.into_iter().map(|e| e.record).collect(),
            first_time_ms: self.first_time_ms,
            last_time_ms: self.last_time_ms,
            bytes: self.bytes,
            reason: self.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{timeuuid_from_ms, ChatMessage};

    fn message(i: u64, body: &str) -> ChatMessage {
        ChatMessage {
            message_id: format!("m{i}").into(),
            chat_id: "c\"1".into(),
            from_user: "ü".into(),
            to_user: "u\\2".into(),
            body: body.into(),
            time: timeuuid_from_ms(1_700_000_000_000 + i, i as u16, [1; 6]),
            time_iso: "2023-11-14T22:13:20.000Z".into(),
        }
    }

    proptest::proptest! {
        /// The hand-written JSON is serde_json's, byte for byte, whatever the strings hold.
        #[test]
        fn write_json_is_serde_json(bodies in proptest::collection::vec(".*", 1..4), key in ".*") {
            let group = Group {
                id: group_id(&key, "m0"),
                key: key.clone(),
                records: bodies.iter().enumerate().map(|(i, b)| message(i as u64, b)).collect::<Vec<_>>(),
                first_time_ms: 1,
                last_time_ms: u64::MAX,
                bytes: 12_345,
                reason: CompletionReason::MaxAge,
            };
            let mut ours = Vec::new();
            group.write_json(&mut ours);
            proptest::prop_assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&group).unwrap());
            proptest::prop_assert_eq!(group.records[0].encode(), serde_json::to_vec(&group.records[0]).unwrap());
        }
    }

    #[test]
    fn control_characters_and_quotes_are_escaped_as_serde_json_does() {
        let m = message(1, "a \"quote\", a \\ and \u{1} \n \u{7f} é 😀");
        assert_eq!(m.encode(), serde_json::to_vec(&m).unwrap());
        let back: ChatMessage = serde_json::from_slice(&m.encode()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn group_ids_are_stable_and_distinguish_key_from_record() {
        assert_eq!(group_id("c1", "m1"), group_id("c1", "m1"));
        assert_ne!(group_id("c1", "m1"), group_id("c1", "m2"));
        assert_ne!(group_id("c1m", "1"), group_id("c1", "m1"));
        // Pinned: a change here would orphan every document already written.
        assert_eq!(
            group_id("c1", "m1").to_string(),
            group_id("c1", "m1").hyphenated().to_string()
        );
        assert_eq!(group_id("c1", "m1").get_version_num(), 5);
    }
}
