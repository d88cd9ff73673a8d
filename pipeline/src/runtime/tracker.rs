//! Commit-after-ack bookkeeping: which source positions may be committed.
//!
//! Groups complete out of order, so a partition's committable position starts from its low
//! watermark: the smallest offset read and not yet acknowledged, or, when every read record is
//! acknowledged, the offset after the last one read.
//!
//! A replay must also rebuild the same groups, so the committed position must not cut through a
//! group: if an acknowledged group has records on both sides of it, a restart there would read
//! the group's tail without its head and form a different group (a different document id, the
//! tail's messages written twice). The position therefore moves back to the first offset of any
//! group spanning it, until no group does. This relies on a key's records all being in one
//! partition, which keyed partitioning (Kafka's default) guarantees.
//!
//! With a leading edge, a conversation is a span too, and its first offset is held like an
//! unacknowledged one while the conversation may continue (see the runtime's sessions).

use std::collections::{BTreeMap, VecDeque};

use crate::record::Position;

/// Outstanding offsets per partition.
#[derive(Debug, Default)]
pub(crate) struct CommitTracker {
    partitions: BTreeMap<u32, PartitionState>,
}

#[derive(Debug, Default)]
struct PartitionState {
    /// Offsets read and not yet acknowledged.
    outstanding: Outstanding,
    /// The offset after the last one read.
    next: u64,
    /// The last position committed (or `None` before the first commit).
    committed: Option<u64>,
    /// Acknowledged groups with more than one record here, and the leading edge's
    /// conversations: first offset -> last offset. Pruned once committed past.
    spans: BTreeMap<u64, u64>,
    /// First offsets of the leading edge's conversations that may still continue.
    held: Outstanding,
}

impl PartitionState {
    /// The latest position at or below the low watermark that no acknowledged group spans.
    fn clean_cut(&self) -> u64 {
        let mut cut = match (self.outstanding.first(), self.held.first()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(self.next),
        };
        // One pass, latest first: a span that straddles the cut moves it to the span's first
        // offset, and every span after it in this order starts earlier still, so none is missed.
        for (&first, &last) in self.spans.range(..cut).rev() {
            if last >= cut {
                cut = first;
            }
        }
        cut
    }
}

/// A set of offsets that mostly arrive in order and leave roughly in order: a window of flags
/// from the lowest member up, so that adding and removing are O(1) (a `BTreeSet` here cost more
/// than decoding a record). Offsets inside the window that were never added (gaps in the log)
/// are simply absent.
#[derive(Debug, Default)]
struct Outstanding {
    /// The offset of `flags[0]`: the lowest member, whenever there is one.
    base: u64,
    /// `flags[i]`: whether `base + i` is a member. Never starts with `false`.
    flags: VecDeque<bool>,
    len: usize,
}

impl Outstanding {
    fn insert(&mut self, offset: u64) {
        if self.flags.is_empty() {
            self.base = offset;
        }
        if offset < self.base {
            // Older than the window (a re-read): grow it downwards.
            for _ in offset + 1..self.base {
                self.flags.push_front(false);
            }
            self.flags.push_front(true);
            self.base = offset;
            self.len += 1;
            return;
        }
        let index = (offset - self.base) as usize;
        if index >= self.flags.len() {
            self.flags.resize(index, false);
            self.flags.push_back(true);
            self.len += 1;
        } else if !self.flags[index] {
            self.flags[index] = true;
            self.len += 1;
        }
    }

    fn remove(&mut self, offset: u64) {
        let Some(index) = offset.checked_sub(self.base).map(|i| i as usize) else {
            return;
        };
        if self.flags.get(index) != Some(&true) {
            return;
        }
        self.flags[index] = false;
        self.len -= 1;
        while self.flags.front() == Some(&false) {
            self.flags.pop_front();
            self.base += 1;
        }
    }

    fn first(&self) -> Option<u64> {
        (!self.flags.is_empty()).then_some(self.base)
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl CommitTracker {
    /// Records that `position` was read.
    pub(crate) fn read(&mut self, position: Position) {
        let state = self.partitions.entry(position.partition).or_default();
        state.outstanding.insert(position.offset);
        state.next = state.next.max(position.offset + 1);
    }

    /// Records that every sink acknowledged the record at `position` (a record outside any
    /// group, such as a dead letter).
    pub(crate) fn acked(&mut self, position: Position) {
        if let Some(state) = self.partitions.get_mut(&position.partition) {
            state.outstanding.remove(position.offset);
        }
    }

    /// Records that every sink acknowledged the group whose records sit at `positions`.
    pub(crate) fn acked_group(&mut self, positions: &[Position]) {
        // Per partition, the first and last offset: a group's records share one partition (keys
        // are partitioned), so a scan of this beats a map allocated per group.
        let mut ranges: Vec<(u32, (u64, u64))> = Vec::with_capacity(1);
        for p in positions {
            self.acked(*p);
            match ranges
                .iter_mut()
                .find(|(partition, _)| *partition == p.partition)
            {
                Some((_, range)) => {
                    range.0 = range.0.min(p.offset);
                    range.1 = range.1.max(p.offset);
                }
                None => ranges.push((p.partition, (p.offset, p.offset))),
            }
        }
        for (partition, (first, last)) in ranges {
            if let Some(state) = self.partitions.get_mut(&partition) {
                if last > first {
                    let end = state.spans.entry(first).or_insert(last);
                    *end = (*end).max(last);
                }
            }
        }
    }

    /// Holds `position` back like an unacknowledged record until [`CommitTracker::release`]
    /// (the first record of a conversation that may continue).
    pub(crate) fn hold(&mut self, position: Position) {
        if let Some(state) = self.partitions.get_mut(&position.partition) {
            state.held.insert(position.offset);
        }
    }

    /// Ends the hold of [`CommitTracker::hold`] on `offset` of `partition`.
    pub(crate) fn release(&mut self, partition: u32, offset: u64) {
        if let Some(state) = self.partitions.get_mut(&partition) {
            state.held.remove(offset);
        }
    }

    /// Notes that offsets `first..=last` of `partition` must not be committed apart (records of
    /// one conversation).
    pub(crate) fn span(&mut self, partition: u32, first: u64, last: u64) {
        if let Some(state) = self.partitions.get_mut(&partition) {
            if last > first {
                let end = state.spans.entry(first).or_insert(last);
                *end = (*end).max(last);
            }
        }
    }

    /// Records read and not yet acknowledged, over all partitions.
    pub(crate) fn outstanding(&self) -> usize {
        self.partitions.values().map(|s| s.outstanding.len()).sum()
    }

    /// For each partition whose committable position moved since the last call, that position.
    /// The caller commits them and then calls [`CommitTracker::committed`].
    pub(crate) fn committable(&self) -> Vec<Position> {
        self.partitions
            .iter()
            .filter_map(|(&partition, state)| {
                let offset = state.clean_cut();
                (state.committed != Some(offset)).then_some(Position { partition, offset })
            })
            .collect()
    }

    /// Notes that `positions` were committed.
    pub(crate) fn committed(&mut self, positions: &[Position]) {
        for p in positions {
            if let Some(state) = self.partitions.get_mut(&p.partition) {
                state.committed = Some(p.offset);
                state.spans.retain(|_, last| *last >= p.offset);
            }
        }
    }

    /// The last committed position of every partition.
    pub(crate) fn last_committed(&self) -> Vec<Position> {
        self.partitions
            .iter()
            .filter_map(|(&partition, s)| s.committed.map(|offset| Position { partition, offset }))
            .collect()
    }

    /// Stops tracking `partitions` (taken away by a rebalance).
    pub(crate) fn forget(&mut self, partitions: &[u32]) {
        for p in partitions {
            self.partitions.remove(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: u32, offset: u64) -> Position {
        Position { partition, offset }
    }

    #[test]
    fn out_of_order_acks_commit_only_the_low_watermark() {
        let mut t = CommitTracker::default();
        for o in 10..15 {
            t.read(at(0, o));
        }
        t.read(at(1, 3));
        t.acked(at(0, 12));
        t.acked(at(0, 13));
        assert_eq!(t.committable(), vec![at(0, 10), at(1, 3)]);
        t.committed(&[at(0, 10), at(1, 3)]);
        assert_eq!(t.committable(), vec![]);
        t.acked(at(0, 10));
        t.acked(at(0, 11));
        assert_eq!(t.committable(), vec![at(0, 14)]);
        t.acked(at(0, 14));
        t.acked(at(1, 3));
        assert_eq!(t.committable(), vec![at(0, 15), at(1, 4)]);
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn the_cut_follows_a_chain_of_overlapping_groups_back_to_its_start() {
        // Acknowledged groups {1,6}, {2,3}, {5,12}, {10,20}; offset 15 is still open. 15 lies
        // inside {10,20}, whose 10 lies inside {5,12}, whose 5 lies inside {1,6}: the only clean
        // cut at or below 15 is 1. {2,3} straddles none of these cuts and changes nothing.
        let mut t = CommitTracker::default();
        for o in 0..=20 {
            t.read(at(0, o));
        }
        t.acked(at(0, 0));
        for group in [[1, 6], [2, 3], [5, 12], [10, 20]] {
            t.acked_group(&group.map(|o| at(0, o)));
        }
        for o in (4..15)
            .chain(16..20)
            .filter(|o| ![5, 6, 10, 12].contains(o))
        {
            t.acked(at(0, o));
        }
        assert_eq!(t.committable(), vec![at(0, 1)]);
        t.acked(at(0, 15));
        assert_eq!(t.committable(), vec![at(0, 21)], "nothing open: the end");
    }

    #[test]
    fn a_commit_never_cuts_through_an_acknowledged_group() {
        // Offsets 0 and 2 form one group (key A); offset 1 (key B) is still open.
        let mut t = CommitTracker::default();
        for o in 0..3 {
            t.read(at(0, o));
        }
        t.acked_group(&[at(0, 0), at(0, 2)]);
        assert_eq!(
            t.committable(),
            vec![at(0, 0)],
            "not 1: that would split group A"
        );
        // Offset 1 and 3 form group B; 3 is read later.
        t.read(at(0, 3));
        t.acked_group(&[at(0, 1), at(0, 3)]);
        assert_eq!(t.committable(), vec![at(0, 4)]);
        t.committed(&[at(0, 4)]);
        assert_eq!(t.committable(), vec![]);
    }

    #[test]
    fn overlapping_groups_move_the_cut_back_to_the_earliest_head() {
        let mut t = CommitTracker::default();
        for o in 0..6 {
            t.read(at(0, o));
        }
        t.acked_group(&[at(0, 0), at(0, 3)]);
        t.acked_group(&[at(0, 2), at(0, 5)]);
        t.acked(at(0, 1));
        // Low watermark is 4; group [2, 5] spans it, and group [0, 3] spans 2.
        assert_eq!(t.committable(), vec![at(0, 0)]);
    }

    #[test]
    fn a_held_conversation_keeps_the_commit_at_its_first_record_and_its_span_after() {
        // Key A's conversation: offsets 1 and 4, each its own acknowledged group. Key B: 0, 2, 3.
        let mut t = CommitTracker::default();
        for o in 0..5 {
            t.read(at(0, o));
        }
        t.hold(at(0, 1));
        t.span(0, 1, 4);
        for o in 0..5 {
            t.acked(at(0, o));
        }
        assert_eq!(
            t.committable(),
            vec![at(0, 1)],
            "everything is acknowledged, but A may still continue"
        );
        t.release(0, 1);
        assert_eq!(t.committable(), vec![at(0, 5)], "A is over: the end");
        // A new conversation at 5, continued at 7: nothing between 5 and 7 once it ended.
        for o in 5..8 {
            t.read(at(0, o));
        }
        t.hold(at(0, 5));
        t.span(0, 5, 7);
        t.release(0, 5);
        t.acked(at(0, 5));
        t.acked(at(0, 6));
        assert_eq!(
            t.committable(),
            vec![at(0, 5)],
            "not 6 or 7: a replay from there would begin inside A's second conversation"
        );
        t.acked(at(0, 7));
        assert_eq!(t.committable(), vec![at(0, 8)]);
    }

    proptest::proptest! {
        /// The flag window behaves as the ordered set it replaced, for inserts and removals in
        /// any order, with gaps and re-reads below the window.
        #[test]
        fn outstanding_matches_an_ordered_set(ops in proptest::collection::vec((proptest::bool::ANY, 0u64..64), 0..200)) {
            let mut window = Outstanding::default();
            let mut set = std::collections::BTreeSet::new();
            for (add, offset) in ops {
                if add {
                    window.insert(offset);
                    set.insert(offset);
                } else {
                    window.remove(offset);
                    set.remove(&offset);
                }
                proptest::prop_assert_eq!(window.first(), set.first().copied());
                proptest::prop_assert_eq!(window.len(), set.len());
            }
        }
    }
}
