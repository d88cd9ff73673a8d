//! The chats this instance has read, so that checking who is in a chat (every send, typing
//! notice, history page and per-chat stream) needs no database round trip after the first.
//!
//! Correct because a chat's two members never change and a chat is never deleted: a record once
//! read answers "is this person a member" for good, on every instance. Anything that ever
//! changes a chat's members or deletes a chat must forget it here too. What can change
//! (`last_activity`) is not kept current: a remembered record is only read for its members.
//! Blocks are not chats: they change, and `blocks` says when an answer may be remembered.
//!
//! Bounded: two generations of at most [`PER_GENERATION`] chats
//! ([`TwoGenerations`]), so active chats stay.

use crate::store::ChatRecord;
use confab_token::generations::TwoGenerations;
use uuid::Uuid;

/// Chats remembered per generation (about 100 bytes each).
pub(crate) const PER_GENERATION: usize = 16_384;

/// Chat records read so far, by id.
pub(crate) struct KnownChats {
    chats: TwoGenerations<Uuid, ChatRecord>,
}

impl Default for KnownChats {
    fn default() -> Self {
        Self::new(PER_GENERATION)
    }
}

impl KnownChats {
    fn new(per_generation: usize) -> Self {
        Self {
            chats: TwoGenerations::new(per_generation),
        }
    }

    /// The record of chat `id` as first read, if remembered.
    pub(crate) fn get(&self, id: Uuid) -> Option<ChatRecord> {
        self.chats.get(id)
    }

    /// Remembers a chat read from the store.
    pub(crate) fn remember(&self, chat: &ChatRecord) {
        self.chats.insert(chat.id, chat.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat() -> ChatRecord {
        ChatRecord::sample()
    }

    #[test]
    fn a_remembered_chat_is_found_by_its_id_only() {
        let known = KnownChats::new(4);
        let ann = chat();
        known.remember(&ann);
        assert_eq!(known.get(ann.id).map(|c| c.user_low), Some(ann.user_low));
        assert!(known.get(Uuid::now_v7()).is_none());
    }

    #[test]
    fn it_holds_two_generations_at_most_and_keeps_chats_in_use() {
        let known = KnownChats::new(2);
        let busy = chat();
        known.remember(&busy);
        let quiet = chat();
        known.remember(&quiet);
        for _ in 0..10 {
            known.remember(&chat());
            assert!(known.get(busy.id).is_some());
            let held = known.chats.len();
            assert!(held <= 4, "{held}");
        }
        assert!(known.get(quiet.id).is_none(), "unused, aged out");
    }
}
