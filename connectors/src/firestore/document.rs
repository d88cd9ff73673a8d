//! The Firestore document of a group.

use confab_pipeline::{Aggregatable, ChatMessage, Group};
use serde::{Deserialize, Serialize};

/// A group as stored in Firestore (and as a listener reads it back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupDocument {
    /// The chat every message belongs to.
    pub chat_id: String,
    /// The sender of the group's first message (the seed grouped by sender; with the default
    /// chat key a group may hold several senders, each message names its own).
    pub from_user: String,
    /// The messages, in log order.
    pub list_of_messages: Vec<ChatMessage>,
    /// `time_iso` of the group's latest message.
    pub latest_message_time_iso: String,
    /// The group's deterministic id (also the document id).
    pub group_id: String,
    /// The group key the operator grouped by.
    pub group_key: String,
    /// Earliest message time, ms since the Unix epoch.
    pub first_time_ms: i64,
    /// Latest message time, ms since the Unix epoch.
    pub last_time_ms: i64,
    /// Number of messages.
    pub message_count: i64,
    /// What completed the group (`inactivity`, `max_messages`, ...).
    pub reason: String,
    /// The users who may read the document: every sender and recipient in the group, sorted
    /// (`firestore.rules` lets a signed-in client read a group only when its uid is here).
    /// Empty in documents written before the field existed.
    #[serde(default)]
    pub members: Vec<String>,
}

/// The fields a write sets outright; the others are merged by transforms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct DocumentHead<'a> {
    pub(crate) chat_id: &'a str,
    pub(crate) from_user: &'a str,
    pub(crate) latest_message_time_iso: &'a str,
    pub(crate) group_id: String,
    pub(crate) group_key: String,
    pub(crate) reason: &'static str,
    pub(crate) members: Vec<&'a str>,
}

impl DocumentHead<'_> {
    /// The field paths of a head, the write's update mask.
    pub(crate) const FIELDS: [&'static str; 7] = [
        "chat_id",
        "from_user",
        "latest_message_time_iso",
        "group_id",
        "group_key",
        "reason",
        "members",
    ];
}

impl<'a> DocumentHead<'a> {
    /// The head of `group`, or `None` for an empty group (which the operator never emits).
    pub(crate) fn of<K: std::fmt::Display>(group: &'a Group<K, ChatMessage>) -> Option<Self> {
        let first = group.records.first()?;
        let last = group.records.iter().max_by_key(|m| m.event_time_ms())?;
        let mut members: Vec<&str> = group
            .records
            .iter()
            .flat_map(|m| [m.from_user.as_str(), m.to_user.as_str()])
            .collect();
        members.sort_unstable();
        members.dedup();
        Some(Self {
            chat_id: &first.chat_id,
            from_user: &first.from_user,
            latest_message_time_iso: &last.time_iso,
            group_id: group.id.to_string(),
            group_key: group.key.to_string(),
            reason: group.reason.as_str(),
            members,
        })
    }
}

impl GroupDocument {
    /// The whole document a group produces (what a reader sees after the write).
    pub fn of<K: std::fmt::Display>(group: &Group<K, ChatMessage>) -> Option<Self> {
        let head = DocumentHead::of(group)?;
        let messages: Vec<ChatMessage> = distinct(&group.records).cloned().collect();
        Some(Self {
            chat_id: head.chat_id.to_string(),
            from_user: head.from_user.to_string(),
            message_count: messages.len() as i64,
            list_of_messages: messages,
            latest_message_time_iso: head.latest_message_time_iso.to_string(),
            group_id: head.group_id,
            group_key: head.group_key,
            first_time_ms: group.first_time_ms as i64,
            last_time_ms: group.last_time_ms as i64,
            reason: head.reason.to_string(),
            members: head.members.iter().map(|m| m.to_string()).collect(),
        })
    }
}

/// The group's messages without repeats, in log order. A record the log holds twice (a producer
/// retry without idempotence) is one element of `list_of_messages`, as Firestore's array union
/// keeps it, and counts once.
pub(crate) fn distinct(messages: &[ChatMessage]) -> impl Iterator<Item = &ChatMessage> {
    let mut seen = std::collections::HashSet::new();
    messages.iter().filter(move |m| seen.insert(m.encode()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_pipeline::CompletionReason;

    fn message(id: &str, from: &str, to: &str) -> ChatMessage {
        ChatMessage {
            message_id: id.into(),
            chat_id: "c".into(),
            from_user: from.into(),
            to_user: to.into(),
            body: "hi".into(),
            time: uuid::Uuid::nil(),
            time_iso: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn members_are_every_sender_and_recipient_once_sorted() {
        let group = Group {
            id: uuid::Uuid::nil(),
            key: "c".to_string(),
            records: vec![
                message("1", "bob", "alice"),
                message("2", "alice", "bob"),
                message("3", "bob", "alice"),
            ],
            first_time_ms: 0,
            last_time_ms: 0,
            bytes: 0,
            reason: CompletionReason::Inactivity,
        };
        let doc = GroupDocument::of(&group).expect("a document");
        assert_eq!(doc.members, ["alice", "bob"]);
        assert_eq!(doc.from_user, "bob");
    }
}
