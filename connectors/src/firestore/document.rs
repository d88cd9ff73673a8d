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
}

impl DocumentHead<'_> {
    /// The field paths of a head, the write's update mask.
    pub(crate) const FIELDS: [&'static str; 6] = [
        "chat_id",
        "from_user",
        "latest_message_time_iso",
        "group_id",
        "group_key",
        "reason",
    ];
}

impl<'a> DocumentHead<'a> {
    /// The head of `group`, or `None` for an empty group (which the operator never emits).
    pub(crate) fn of<K: std::fmt::Display>(group: &'a Group<K, ChatMessage>) -> Option<Self> {
        let first = group.records.first()?;
        let last = group.records.iter().max_by_key(|m| m.event_time_ms())?;
        Some(Self {
            chat_id: &first.chat_id,
            from_user: &first.from_user,
            latest_message_time_iso: &last.time_iso,
            group_id: group.id.to_string(),
            group_key: group.key.to_string(),
            reason: group.reason.as_str(),
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
