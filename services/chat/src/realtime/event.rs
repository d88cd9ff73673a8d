//! What travels on the live lane: one [`LiveEvent`] per message, new chat, typing notice or
//! completed group, serialized to JSON once and shared by every stream it goes to.

use crate::chats::ChatView;
use crate::events::GroupEvent;
use crate::messages::MessageView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The kind of a live event, which is also its SSE event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A message the log acknowledged ([`MessageView`]).
    Message,
    /// A chat was started with (or by) the person ([`ChatView`]).
    Chat,
    /// The other member is typing ([`TypingEvent`]); transient, never logged or stored.
    Typing,
    /// A completed group of the chat's messages ([`GroupEvent`]); only the per-chat stream
    /// shows these.
    Group,
    /// A login session of the person was revoked (logout, password change): its streams end.
    Revoked,
    /// The person marked a chat read on one of their devices ([`ReadEvent`]).
    Read,
}

impl Kind {
    /// The kind named `name`, of those instances share through the bus (the rest travel
    /// through the log, the group feed or the verifier's revocations).
    pub(crate) fn shared(name: &str) -> Option<Self> {
        match name {
            "chat" => Some(Kind::Chat),
            "typing" => Some(Kind::Typing),
            "read" => Some(Kind::Read),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Chat => "chat",
            Kind::Typing => "typing",
            Kind::Group => "group",
            Kind::Revoked => "revoked",
            Kind::Read => "read",
        }
    }
}

/// One event, with its JSON text.
#[derive(Debug)]
pub(crate) struct LiveEvent {
    kind: Kind,
    chat_id: Uuid,
    data: Box<str>,
    /// The group's id, for the per-chat stream's SSE `id`.
    group_id: Option<Uuid>,
    /// The revoked session, for [`Kind::Revoked`].
    session: Option<Uuid>,
}

impl LiveEvent {
    pub(crate) fn new(kind: Kind, chat_id: Uuid, data: String) -> Self {
        Self {
            kind,
            chat_id,
            data: data.into_boxed_str(),
            group_id: None,
            session: None,
        }
    }

    fn json(kind: Kind, chat_id: Uuid, value: &impl Serialize) -> Option<Self> {
        match serde_json::to_string(value) {
            Ok(data) => Some(Self::new(kind, chat_id, data)),
            Err(err) => {
                tracing::error!(error = %err, kind = kind.name(), "Could not encode a live event.");
                None
            }
        }
    }

    pub(crate) fn message(chat_id: Uuid, message: &MessageView) -> Option<Self> {
        Self::json(Kind::Message, chat_id, message)
    }

    pub(crate) fn chat(chat: &ChatView) -> Option<Self> {
        Self::json(Kind::Chat, chat.chat_id, chat)
    }

    pub(crate) fn read(read: &ReadEvent) -> Option<Self> {
        Self::json(Kind::Read, read.chat_id, read)
    }

    pub(crate) fn typing(typing: &TypingEvent) -> Option<Self> {
        Self::json(Kind::Typing, typing.chat_id, typing)
    }

    pub(crate) fn group(chat_id: Uuid, group: &GroupEvent) -> Option<Self> {
        let mut event = Self::json(Kind::Group, chat_id, group)?;
        event.group_id = Some(group.group_id);
        Some(event)
    }

    pub(crate) fn revoked(session: Uuid) -> Self {
        let mut event = Self::new(
            Kind::Revoked,
            Uuid::nil(),
            r#"{"message":"this session was logged out (logout or password change): log in again"}"#
                .to_owned(),
        );
        event.session = Some(session);
        event
    }

    /// The revoked session of a [`Kind::Revoked`] event.
    pub(crate) fn session(&self) -> Option<Uuid> {
        self.session
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn chat_id(&self) -> Uuid {
        self.chat_id
    }

    pub(crate) fn data(&self) -> &str {
        &self.data
    }

    pub(crate) fn group_id(&self) -> Option<Uuid> {
        self.group_id
    }
}

/// `typing`: the other member of a chat is typing (sent at most every few seconds while they
/// are; show it for about five seconds after the last one).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TypingEvent {
    /// The chat.
    pub chat_id: Uuid,
    /// Who is typing.
    pub user_id: Uuid,
    /// When the server received the notice, in ms since the Unix epoch (a replay after a
    /// reconnect can be recognized as old).
    pub at_ms: i64,
}

/// `read`: the person marked a chat read (on this or another of their devices), so every page
/// of theirs clears its unread mark. Only the reader's own streams get it: the other member is
/// not told (no read receipts).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ReadEvent {
    /// The chat.
    pub chat_id: Uuid,
    /// The `time` of the newest message read.
    pub read_up_to: Uuid,
}
