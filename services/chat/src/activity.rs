//! A chat's `last_activity` (the order of the chat list) moved forward off the send path.
//!
//! A send records the chat's new activity here and answers; a writer task stores what was
//! recorded [`WRITE_DELAY`] after the first record, each chat once with its latest time. A busy
//! chat is therefore written at most about once per `WRITE_DELAY` rather than once per
//! message, and a send waits for one database round trip fewer (on SQLite each write is also a
//! commit).
//!
//! What readers see: the chat list writes what is pending before it reads ([`Activity::flush`]),
//! so on this instance the list is exactly as if every send had written at once. The list of
//! another instance sees a chat's activity up to `WRITE_DELAY` later. A crash loses at most the
//! last `WRITE_DELAY` of activity times (the messages themselves are in the log): those chats
//! keep their previous place in the list until their next message.

use crate::store::{ChatRecord, ChatStore};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// How long after a chat's first unwritten activity the writer stores it.
pub(crate) const WRITE_DELAY: Duration = Duration::from_secs(1);

/// Activity recorded and not yet stored, by chat.
#[derive(Default)]
pub(crate) struct Activity {
    pending: Mutex<HashMap<Uuid, (ChatRecord, DateTime<Utc>)>>,
    recorded: Notify,
    /// Held while writing, so that a flush returns only once everything recorded before it is
    /// stored, also what the writer task took a moment earlier.
    writing: tokio::sync::Mutex<()>,
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (ChatRecord, DateTime<Utc>)>> {
        // Each update is one insert: a poisoned map is still consistent.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `chat` was active at `at` (kept if later than what is pending).
    pub(crate) fn record(&self, chat: &ChatRecord, at: DateTime<Utc>) {
        let first = {
            let mut pending = self.lock();
            let first = pending.is_empty();
            pending
                .entry(chat.id)
                .and_modify(|(_, time)| *time = (*time).max(at))
                .or_insert_with(|| (chat.clone(), at));
            first
        };
        if first {
            self.recorded.notify_one();
        }
    }

    /// Stores everything recorded so far; returns once it is stored (or failed, which is
    /// logged: the chat keeps its older place in the list).
    pub(crate) async fn flush(&self, store: &dyn ChatStore) {
        let _writing = self.writing.lock().await;
        let pending: Vec<_> = std::mem::take(&mut *self.lock()).into_values().collect();
        if pending.is_empty() {
            return;
        }
        if let Err(err) = store.touch_chats(&pending).await {
            tracing::warn!(error = %err, chats = pending.len(), "Could not record chat activity.");
        }
    }

    /// Chats with activity not stored yet.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.lock().len()
    }
}

/// Stores recorded activity [`WRITE_DELAY`] after it starts coming, forever (the chat service
/// spawns it when it starts).
pub(crate) async fn write_forever(activity: Arc<Activity>, store: Arc<dyn ChatStore>) {
    loop {
        activity.recorded.notified().await;
        tokio::time::sleep(WRITE_DELAY).await;
        activity.flush(store.as_ref()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat() -> ChatRecord {
        ChatRecord::sample()
    }

    #[test]
    fn a_chat_is_pending_once_with_its_latest_time() {
        let activity = Activity::default();
        let (ann, bob) = (chat(), chat());
        let t = chrono::Utc::now();
        activity.record(&ann, t);
        activity.record(&ann, t - chrono::Duration::seconds(5));
        activity.record(&bob, t);
        assert_eq!(activity.pending(), 2);
        let pending = activity.lock();
        assert_eq!(pending.get(&ann.id).map(|(_, at)| *at), Some(t));
    }
}
