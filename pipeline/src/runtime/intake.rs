//! One poll's records on their way in: each record, as the source makes it, becomes an envelope
//! for the operator or a dead letter, in one pass and one batch.
//!
//! A decoded batch used to be collected once by the decoding source and again by the reader (two
//! vectors of a few hundred kilobytes per poll, each allocated afresh), with a lock and a hash
//! lookup per record for its partition's assignment generation. Here every record is handled as
//! the source hands it over, and what is per partition is looked up once per batch.

use crate::record::{Aggregatable, Envelope};
use crate::sink::DeadLetter;
use crate::source::Read;

use super::workers::Generations;

/// The records of one poll, sorted into those the operator takes and the dead letters.
pub(super) struct Intake<'a, R> {
    /// Decoded records, in the order read.
    pub(super) good: Vec<Envelope<R>>,
    /// Records that could not be decoded, with why.
    pub(super) bad: Vec<DeadLetter>,
    /// Per partition that delivered a decoded record: the latest event time among them.
    pub(super) seen: Vec<(u32, u64)>,
    generations: &'a Generations,
    /// Per partition of this batch: its assignment generation, read once.
    current: Vec<(u32, u32)>,
    /// Most records one poll hands over.
    max: usize,
    /// Records the previous poll handed over: the first allocation's guess.
    expected: usize,
}

impl<'a, R: Aggregatable> Intake<'a, R> {
    /// An empty batch of at most `max` records, read under `generations`, after a poll that
    /// handed over `expected`.
    pub(super) fn new(generations: &'a Generations, max: usize, expected: usize) -> Self {
        Self {
            good: Vec::new(),
            bad: Vec::new(),
            seen: Vec::new(),
            generations,
            current: Vec::new(),
            max,
            expected,
        }
    }

    /// Takes in one record read.
    pub(super) fn take(&mut self, read: Read<R>) {
        let partition = read.position.partition;
        let decoded = match read.record {
            Ok(decoded) => decoded,
            Err(reason) => {
                self.bad.push(DeadLetter {
                    position: read.position,
                    key: read.key,
                    payload: read.payload,
                    reason: reason.to_string(),
                });
                return;
            }
        };
        let time = decoded.event_time_ms();
        // A batch holds a few partitions: a scan beats a hash.
        match self.seen.iter_mut().find(|(p, _)| *p == partition) {
            Some((_, latest)) => *latest = (*latest).max(time),
            None => self.seen.push((partition, time)),
        }
        let generation = match self.current.iter().find(|(p, _)| *p == partition) {
            Some((_, generation)) => *generation,
            None => {
                let generation = self.generations.current(partition);
                self.current.push((partition, generation));
                generation
            }
        };
        // Bytes as read where there are any (what the caps promise to bound), the record's own
        // estimate for typed records.
        let size = match read.payload.len() {
            0 => decoded.size_bytes(),
            len => len,
        };
        // A record that holds its bytes whole (a chat message) gives them back for a dead
        // letter: one copy of each buffered record, not two.
        let payload = if decoded.source_bytes() == Some(read.payload.as_slice()) {
            Vec::new()
        } else {
            read.payload
        };
        if self.good.capacity() == 0 {
            // Under load most polls are full: one allocation for the batch rather than a
            // doubling series of copies. At a trickle most hand over a record or two, and a
            // full batch's few hundred kilobytes each time would be fresh pages to fault in.
            self.good.reserve(
                self.expected
                    .next_power_of_two()
                    .clamp(16, self.max.max(16)),
            );
        }
        self.good.push(Envelope {
            position: read.position,
            bytes: u32::try_from(size).unwrap_or(u32::MAX),
            generation,
            record: decoded,
            payload,
        });
    }
}
