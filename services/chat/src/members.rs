//! The chats this instance has read, so that checking who is in a chat (every send, typing
//! notice, history page and per-chat stream) needs no database round trip after the first.
//!
//! Correct because a chat's two members never change and a chat is never deleted: a record once
//! read answers "is this person a member" for good, on every instance. Anything that ever
//! changes a chat's members or deletes a chat must forget it here too. What can change
//! (`last_activity`) is not kept current: a remembered record is only read for its members.
//! Blocks are not chats: they are checked in the database on every send (see `blocks`).
//!
//! Bounded: two generations of at most [`PER_GENERATION`] chats. New records go into the
//! current one; when it is full it becomes the previous one and the older is dropped. A chat
//! found in the previous generation moves back, so active chats stay.

use crate::store::ChatRecord;
use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

/// Chats remembered per generation (about 100 bytes each).
pub(crate) const PER_GENERATION: usize = 16_384;

#[derive(Default)]
struct Generations {
    current: HashMap<Uuid, ChatRecord>,
    previous: HashMap<Uuid, ChatRecord>,
}

/// Chat records read so far, by id.
pub(crate) struct KnownChats {
    generations: Mutex<Generations>,
    per_generation: usize,
}

impl Default for KnownChats {
    fn default() -> Self {
        Self::new(PER_GENERATION)
    }
}

impl KnownChats {
    fn new(per_generation: usize) -> Self {
        Self {
            generations: Mutex::new(Generations::default()),
            per_generation: per_generation.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // Each operation leaves both maps whole: a poisoned lock still holds a usable cache.
        self.generations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The record of chat `id` as first read, if remembered.
    pub(crate) fn get(&self, id: Uuid) -> Option<ChatRecord> {
        let mut generations = self.lock();
        if let Some(chat) = generations.current.get(&id) {
            return Some(chat.clone());
        }
        let chat = generations.previous.remove(&id)?;
        self.put(&mut generations, chat.clone());
        Some(chat)
    }

    /// Remembers a chat read from the store.
    pub(crate) fn remember(&self, chat: &ChatRecord) {
        let mut generations = self.lock();
        self.put(&mut generations, chat.clone());
    }

    fn put(&self, generations: &mut Generations, chat: ChatRecord) {
        if generations.current.len() >= self.per_generation {
            generations.previous = std::mem::take(&mut generations.current);
        }
        generations.current.insert(chat.id, chat);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat() -> ChatRecord {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let now = chrono::Utc::now();
        ChatRecord {
            id: Uuid::now_v7(),
            user_low: a.min(b),
            user_high: a.max(b),
            created_by: a,
            created_at: now,
            last_activity: now,
        }
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
            let held = {
                let g = known.lock();
                g.current.len() + g.previous.len()
            };
            assert!(held <= 4, "{held}");
        }
        assert!(known.get(quiet.id).is_none(), "unused, aged out");
    }
}
