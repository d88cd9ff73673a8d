//! The messages of the last minutes, per chat, as this instance's tail of the log read them.
//!
//! History holds a message only once its group is written, up to the policy's `max_age` after
//! the group's first message. A page opened in that interval (a new page, a reload, a `reset`)
//! would miss it: the stream it opens carries only what comes next. So every history page and
//! every unread count is the union of history and these messages, deduplicated by
//! `message_id`. Every instance tails the whole log, so every instance holds them all.
//!
//! Bounded twice: by age (`recent_window_secs`) and by count (`recent_messages` over all chats,
//! the oldest going first). The map is split in shards like the hub's, so the tail and the
//! readers of different chats do not contend on one lock.

use crate::messages::MessageView;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Shards of the map (a power of two).
const SHARDS: usize = 64;

/// A poisoned lock only means another thread panicked while holding it; the map itself stays
/// consistent (every update is a push or a pop), so it is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Entry {
    at: Instant,
    message: Arc<MessageView>,
}

#[derive(Default)]
struct Shard {
    chats: HashMap<Uuid, VecDeque<Entry>>,
    total: usize,
}

impl Shard {
    /// Forgets what is older than `cutoff`, and chats left empty.
    fn forget_before(&mut self, cutoff: Instant) {
        let mut forgotten = 0;
        self.chats.retain(|_, entries| {
            while entries.front().is_some_and(|e| e.at < cutoff) {
                entries.pop_front();
                forgotten += 1;
            }
            !entries.is_empty()
        });
        self.total -= forgotten;
    }

    /// Forgets the oldest entries until at most `keep` remain.
    fn shrink_to(&mut self, keep: usize) {
        if self.total <= keep {
            return;
        }
        let mut times: Vec<Instant> = self
            .chats
            .values()
            .flat_map(|entries| entries.iter().map(|e| e.at))
            .collect();
        let drop = self.total - keep;
        let (_, cutoff, _) = times.select_nth_unstable(drop - 1);
        let cutoff = *cutoff;
        // Everything up to and including the cutoff's instant goes (ties may take a few more).
        self.forget_before(cutoff + Duration::from_nanos(1));
    }
}

/// Recent messages per chat. See the module's documentation.
pub(crate) struct Recent {
    shards: Box<[Mutex<Shard>]>,
    window: Duration,
    per_shard: usize,
}

impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recent")
            .field("window", &self.window)
            .field("per_shard", &self.per_shard)
            .finish_non_exhaustive()
    }
}

impl Recent {
    /// Keeps messages `window` long, at most about `max_messages` of them.
    pub(crate) fn new(window: Duration, max_messages: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            window,
            per_shard: max_messages.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, chat: &Uuid) -> &Mutex<Shard> {
        let bytes = chat.as_bytes();
        // UUIDv7 chat ids start with a timestamp: the random tail spreads them.
        &self.shards[usize::from(bytes[15]) % SHARDS]
    }

    /// Remembers a message the tail read, at `now`.
    pub(crate) fn remember(&self, chat: Uuid, message: Arc<MessageView>, now: Instant) {
        let mut guard = lock(self.shard(&chat));
        let shard = &mut *guard;
        let entries = shard.chats.entry(chat).or_default();
        // Forget this chat's expired messages as it goes; the sweeper does the quiet chats.
        while entries
            .front()
            .is_some_and(|e| now.duration_since(e.at) > self.window)
        {
            entries.pop_front();
            shard.total -= 1;
        }
        entries.push_back(Entry { at: now, message });
        shard.total += 1;
        if shard.total > self.per_shard {
            // A tenth at a time, so the sort is paid once per many messages.
            let keep = self.per_shard - self.per_shard / 10;
            shard.shrink_to(keep);
        }
    }

    /// The chat's recent messages in the order the log gave them (oldest first).
    pub(crate) fn of(&self, chat: Uuid, now: Instant) -> Vec<Arc<MessageView>> {
        let shard = lock(self.shard(&chat));
        shard.chats.get(&chat).map_or_else(Vec::new, |entries| {
            entries
                .iter()
                .filter(|e| now.duration_since(e.at) <= self.window)
                .map(|e| Arc::clone(&e.message))
                .collect()
        })
    }

    /// Forgets the messages past the window in every chat; returns how many are kept.
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        let mut kept = 0;
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            if let Some(cutoff) = now.checked_sub(self.window) {
                shard.forget_before(cutoff);
            }
            kept += shard.total;
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(chat: Uuid, n: u32) -> Arc<MessageView> {
        Arc::new(MessageView {
            message_id: format!("m{n}"),
            chat_id: chat.to_string(),
            from_user: "a".into(),
            to_user: "b".into(),
            body: format!("body {n}"),
            time: Uuid::nil(),
            time_iso: String::new(),
        })
    }

    fn ids(messages: &[Arc<MessageView>]) -> Vec<String> {
        messages.iter().map(|m| m.message_id.clone()).collect()
    }

    #[test]
    fn a_chat_gets_its_own_messages_in_log_order_within_the_window() {
        let recent = Recent::new(Duration::from_secs(10), 1000);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let start = Instant::now();
        recent.remember(a, message(a, 1), start);
        recent.remember(b, message(b, 2), start);
        recent.remember(a, message(a, 3), start + Duration::from_secs(5));
        assert_eq!(
            ids(&recent.of(a, start + Duration::from_secs(6))),
            ["m1", "m3"]
        );
        assert_eq!(ids(&recent.of(b, start)), ["m2"]);
        // Past the window of the first two, only the third is left.
        assert_eq!(ids(&recent.of(a, start + Duration::from_secs(12))), ["m3"]);
        assert_eq!(recent.sweep(start + Duration::from_secs(12)), 1);
        assert_eq!(recent.sweep(start + Duration::from_secs(30)), 0);
        assert!(recent.of(b, start).is_empty());
    }

    #[test]
    fn the_count_cap_forgets_the_oldest_messages_first() {
        // One shard's worth: 64 shards of 2 each.
        let recent = Recent::new(Duration::from_secs(3600), 128);
        let chat = Uuid::new_v4();
        let start = Instant::now();
        for n in 0..10u32 {
            recent.remember(
                chat,
                message(chat, n),
                start + Duration::from_millis(n.into()),
            );
        }
        let kept = ids(&recent.of(chat, start + Duration::from_secs(1)));
        assert!(kept.len() <= 2, "{kept:?}");
        assert_eq!(kept.last().map(String::as_str), Some("m9"), "{kept:?}");
    }
}
