//! Matching what a listener sees to what was sent: each message's intended send time waits for
//! the message to show up (in a Firestore group document, or on a live events stream), and the
//! delay between the two is recorded. A message can show up before its send was answered (the
//! response raced the listener); it is kept aside until the sender registers it.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::loadgen::stats::{histogram, record};

pub(crate) fn lock(state: &Mutex<Arrivals>) -> std::sync::MutexGuard<'_, Arrivals> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a listener and the senders share.
#[derive(Default)]
pub(crate) struct Arrivals {
    /// Sent, not seen yet: intended send time, and whether it is in the measured window.
    pending: HashMap<String, (Instant, bool)>,
    /// Seen before the sender registered it.
    early: HashMap<String, Instant>,
    /// Seen (each counted once, however often it shows again).
    done: HashSet<String>,
    registered: u64,
    seen: u64,
    delays: Option<Histogram<u64>>,
}

impl Arrivals {
    fn matched(&mut self, id: String, intended: Instant, measured: bool, at: Instant) {
        self.seen += 1;
        if measured {
            record(
                self.delays.get_or_insert_with(histogram),
                at.saturating_duration_since(intended),
            );
        }
        self.done.insert(id);
    }

    /// Message `id` showed up at `at`.
    pub(crate) fn arrived(&mut self, id: &str, at: Instant) {
        if self.done.contains(id) {
            return;
        }
        match self.pending.remove(id) {
            Some((intended, measured)) => self.matched(id.to_owned(), intended, measured, at),
            None => {
                self.early.entry(id.to_owned()).or_insert(at);
            }
        }
    }

    /// Waits for message `id`, sent at `intended`.
    pub(crate) fn register(&mut self, id: String, intended: Instant, measured: bool) {
        self.registered += 1;
        match self.early.remove(&id) {
            Some(at) => self.matched(id, intended, measured, at),
            None => {
                self.pending.insert(id, (intended, measured));
            }
        }
    }

    /// Forgets what showed up without being sent by this run (an initial snapshot).
    pub(crate) fn forget_early(&mut self) {
        self.early.clear();
    }

    /// (seen, registered).
    pub(crate) fn progress(&self) -> (u64, u64) {
        (self.seen, self.registered)
    }

    /// The delays of the measured messages, and the ids never seen.
    pub(crate) fn take(&mut self) -> (Histogram<u64>, HashSet<String>) {
        let missing = self.pending.keys().cloned().collect();
        (self.delays.take().unwrap_or_else(histogram), missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_message_is_matched_once_whether_it_shows_before_or_after_its_answer() {
        let mut arrivals = Arrivals::default();
        let sent = Instant::now();
        arrivals.register("a".into(), sent, true);
        arrivals.arrived("a", sent + Duration::from_millis(30));
        arrivals.arrived("a", sent + Duration::from_millis(90));
        arrivals.arrived("b", sent + Duration::from_millis(10));
        arrivals.register("b".into(), sent, false);
        arrivals.register("c".into(), sent, true);
        assert_eq!(arrivals.progress(), (2, 3));
        let (delays, missing) = arrivals.take();
        assert_eq!(delays.len(), 1, "only the measured one");
        assert!(
            delays.max() >= 29_000 && delays.max() <= 31_000,
            "{} us",
            delays.max()
        );
        assert_eq!(missing, HashSet::from(["c".to_owned()]));
    }
}
