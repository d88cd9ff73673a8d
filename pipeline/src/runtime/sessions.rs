//! The leading edge's conversations, as commit-after-ack must see them.
//!
//! With a leading edge, whether the operator writes a record alone at once depends on its key's
//! latest earlier record: the record leads if that one is at least `leading_edge_idle_ms` earlier
//! in event time, or in an earlier commit epoch, or if there is none. A replay begins with no
//! earlier record, so a commit between two records of one conversation (the second within the
//! pause of the first) would make the replay write the second alone, and group the rest of its
//! conversation differently than the run that was acknowledged. So, per key, in log order:
//!
//! - each conversation (a leading record and the records that follow it within the pause) is a
//!   span from its first offset to its latest, which the tracker never commits strictly inside;
//! - its first offset is held, as if unacknowledged, until the input time passes its latest
//!   event time by the pause (or reaches the end of that time's commit epoch), and is past the
//!   input time its latest record was fed at. From then on any record of the key that arrives
//!   ahead of the input time leads, in this run and in a replay from any later position.
//!
//! This applies the operator's rule to the records as they are read. The two agree on every record
//! that reaches the operator ahead of its frontier; a record later than `lateness_ms` while its
//! partition is caught up may lead in a replay and not in the run (the bound the runtime already
//! states for groups). Epochs keep the commits moving: no conversation straddles an epoch's start.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::tracker::CommitTracker;
use crate::operator::{epoch_end, GroupKey, Unordered};
use crate::record::Position;

/// The open conversations of every key read, and when each may end.
pub(crate) struct Sessions<K> {
    idle_ms: u64,
    epoch_ms: u64,
    open: HashMap<K, Conversation>,
    /// When each conversation may end, earliest first. An entry that surfaces before its
    /// conversation's current end goes back in at that end.
    ends: BinaryHeap<Reverse<(u64, u64, Unordered<K>)>>,
    next_seq: u64,
}

struct Conversation {
    partition: u32,
    /// The offset of its leading record, held in the tracker while the conversation is open.
    first: u64,
    /// Its latest event time.
    latest: u64,
    /// The input time from which no record arriving ahead of it can join.
    ends: u64,
    seq: u64,
}

impl<K: GroupKey> Sessions<K> {
    /// Conversations under a leading edge of `idle_ms`, with commit epochs of `epoch_ms` (0: none).
    pub(crate) fn new(idle_ms: u64, epoch_ms: u64) -> Self {
        Self {
            idle_ms,
            epoch_ms,
            open: HashMap::new(),
            ends: BinaryHeap::new(),
            next_seq: 0,
        }
    }

    /// Notes the record of `key` at `position` with event time `at`, fed at input time `time`
    /// (after the tracker noted it read).
    pub(crate) fn read(
        &mut self,
        key: K,
        position: Position,
        at: u64,
        time: u64,
        tracker: &mut CommitTracker,
    ) {
        let (idle_ms, epoch_ms) = (self.idle_ms, self.epoch_ms);
        if let Some(c) = self.open.get_mut(&key) {
            let joins = c.partition == position.partition
                && at < c.latest.saturating_add(idle_ms)
                && at < epoch_end(epoch_ms, c.latest);
            if joins {
                tracker.span(position.partition, c.first, position.offset);
                c.latest = c.latest.max(at);
                c.ends = end_of(idle_ms, epoch_ms, c.latest, time);
                return;
            }
        }
        // The record leads: a new conversation begins here, and the key's previous one is over.
        let seq = self.next_seq;
        self.next_seq += 1;
        let ends = end_of(idle_ms, epoch_ms, at, time);
        tracker.hold(position);
        self.ends.push(Reverse((ends, seq, Unordered(key.clone()))));
        let previous = self.open.insert(
            key,
            Conversation {
                partition: position.partition,
                first: position.offset,
                latest: at,
                ends,
                seq,
            },
        );
        if let Some(p) = previous {
            tracker.release(p.partition, p.first);
        }
    }

    /// Ends the conversations that the input time `time` has passed, releasing their holds.
    pub(crate) fn advance(&mut self, time: u64, tracker: &mut CommitTracker) {
        while let Some(Reverse((due, _, _))) = self.ends.peek() {
            if *due > time {
                break;
            }
            let Some(Reverse((_, seq, Unordered(key)))) = self.ends.pop() else {
                break;
            };
            let Some(c) = self.open.get(&key) else {
                continue;
            };
            if c.seq != seq {
                continue;
            }
            if c.ends > time {
                let later = c.ends;
                self.ends.push(Reverse((later, seq, Unordered(key))));
                continue;
            }
            if let Some(c) = self.open.remove(&key) {
                tracker.release(c.partition, c.first);
            }
        }
    }

    /// Ends every conversation: the input is over, and the operator flushed every group.
    pub(crate) fn end(&mut self, tracker: &mut CommitTracker) {
        for c in self.open.values() {
            tracker.release(c.partition, c.first);
        }
        self.open.clear();
        self.ends.clear();
    }

    /// Drops the conversations of `partitions` (revoked: the tracker forgets them too, and their
    /// next reader starts with no memory).
    pub(crate) fn forget(&mut self, partitions: &[u32]) {
        self.open.retain(|_, c| !partitions.contains(&c.partition));
    }

    /// Conversations open now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }
}

/// When a conversation whose latest event time is `latest`, last fed at input time `time`, ends:
/// once no record ahead of the input time can be within the pause of it or in its epoch, and
/// never at the time its record was fed (a backlog read behind the input time still joins).
fn end_of(idle_ms: u64, epoch_ms: u64, latest: u64, time: u64) -> u64 {
    latest
        .saturating_add(idle_ms)
        .min(epoch_end(epoch_ms, latest))
        .max(time.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64) -> Position {
        Position {
            partition: 0,
            offset,
        }
    }

    #[test]
    fn conversations_hold_their_first_offset_until_the_input_time_passes_the_pause() {
        let mut t = CommitTracker::default();
        let mut s = Sessions::new(1_000, 0);
        // Chat a at 0 and 500 ms (one conversation) and 2 s (a new one); chat b at 100 ms.
        for (offset, key, time) in [(0, "a", 0), (1, "b", 100), (2, "a", 500), (3, "a", 2_000)] {
            t.read(at(offset));
            s.read(key.to_string(), at(offset), time, 0, &mut t);
        }
        for offset in 0..4 {
            t.acked(at(offset));
        }
        assert_eq!(s.len(), 2);
        // b's conversation may continue, so not past 1, and a's first (0 and 2) straddles 1.
        assert_eq!(t.committable(), vec![at(0)]);
        s.advance(1_099, &mut t);
        assert_eq!(t.committable(), vec![at(0)]);
        s.advance(1_100, &mut t);
        assert_eq!(
            t.committable(),
            vec![at(3)],
            "b's is over; a's second may continue"
        );
        s.advance(3_000, &mut t);
        assert_eq!(t.committable(), vec![at(4)]);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn a_new_epoch_begins_a_new_conversation_and_a_backlog_keeps_its_own() {
        let mut t = CommitTracker::default();
        let mut s = Sessions::new(10_000, 1_000);
        // 900 ms and 1 s: within the pause, but the second opens a new epoch.
        for (offset, time) in [(0, 900), (1, 1_000)] {
            t.read(at(offset));
            s.read("a".to_string(), at(offset), time, 0, &mut t);
            t.acked(at(offset));
        }
        assert_eq!(
            t.committable(),
            vec![at(1)],
            "the epoch's start is a clean cut"
        );
        // Read at input time 5 s, long after its event times: it holds past the input time.
        t.read(at(2));
        s.read("b".to_string(), at(2), 1_500, 5_000, &mut t);
        t.acked(at(2));
        s.advance(5_000, &mut t);
        assert_eq!(
            t.committable(),
            vec![at(2)],
            "a's conversation ended with its epoch"
        );
        s.advance(5_001, &mut t);
        assert_eq!(t.committable(), vec![at(3)]);
    }
}
