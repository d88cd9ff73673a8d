//! Commit-after-ack bookkeeping: which source positions may be committed.
//!
//! Groups complete out of order, so a partition's committable position is its low watermark: the
//! smallest offset read and not yet acknowledged, or, when every read record is acknowledged, the
//! offset after the last one read.

use std::collections::{BTreeMap, BTreeSet};

use crate::record::Position;

/// Outstanding offsets per partition.
#[derive(Debug, Default)]
pub(crate) struct CommitTracker {
    partitions: BTreeMap<u32, PartitionState>,
}

#[derive(Debug, Default)]
struct PartitionState {
    /// Offsets read and not yet acknowledged.
    outstanding: BTreeSet<u64>,
    /// The offset after the last one read.
    next: u64,
    /// The last position committed (or `None` before the first commit).
    committed: Option<u64>,
}

impl CommitTracker {
    /// Records that `position` was read.
    pub(crate) fn read(&mut self, position: Position) {
        let state = self.partitions.entry(position.partition).or_default();
        state.outstanding.insert(position.offset);
        state.next = state.next.max(position.offset + 1);
    }

    /// Records that every sink acknowledged the record at `position`.
    pub(crate) fn acked(&mut self, position: Position) {
        if let Some(state) = self.partitions.get_mut(&position.partition) {
            state.outstanding.remove(&position.offset);
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
                let offset = state.outstanding.first().copied().unwrap_or(state.next);
                (state.committed != Some(offset)).then_some(Position { partition, offset })
            })
            .collect()
    }

    /// Notes that `positions` were committed.
    pub(crate) fn committed(&mut self, positions: &[Position]) {
        for p in positions {
            if let Some(state) = self.partitions.get_mut(&p.partition) {
                state.committed = Some(p.offset);
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
}
