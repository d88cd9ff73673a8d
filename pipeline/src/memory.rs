//! In-process source and sinks: a partitioned in-memory log with per-group committed offsets
//! (seek and commit, like a Kafka topic), a sink that keeps groups, and a dead-letter sink that
//! keeps letters. For tests, examples, the tuning harness and the embedded default.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::group::Group;
use crate::record::Position;
use crate::sink::{DeadLetter, DeadLetterSink, Sink, SinkError};
use crate::source::{Polled, Source, SourceError, SourceRecord};

/// An append-only, partitioned log in memory. Clones share the same log.
#[derive(Clone, Default)]
pub struct MemoryLog {
    inner: Arc<LogInner>,
}

#[derive(Default)]
struct LogInner {
    state: Mutex<LogState>,
    appended: Notify,
}

#[derive(Default)]
struct LogState {
    partitions: Vec<Vec<SourceRecord>>,
    committed: HashMap<String, HashMap<u32, u64>>,
    closed: bool,
}

impl MemoryLog {
    /// A log with `partitions` partitions (at least one).
    pub fn new(partitions: u32) -> Self {
        let log = Self::default();
        log.lock().partitions = (0..partitions.max(1)).map(|_| Vec::new()).collect();
        log
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `payload` under `key`; the key picks the partition, as Kafka's default partitioner
    /// does, so one key's records stay in order.
    pub fn append(&self, key: &[u8], payload: Vec<u8>) -> Position {
        #[allow(deprecated)]
        let mut hasher = std::hash::SipHasher::new();
        key.hash(&mut hasher);
        let mut state = self.lock();
        let partition = (hasher.finish() % state.partitions.len() as u64) as u32;
        let records = &mut state.partitions[partition as usize];
        let position = Position {
            partition,
            offset: records.len() as u64,
        };
        records.push(SourceRecord {
            position,
            key: Some(key.to_vec()),
            payload,
            headers: Vec::new(),
        });
        drop(state);
        self.inner.appended.notify_waiters();
        position
    }

    /// Marks the end of the log: readers that reach it see [`Polled::End`].
    pub fn close(&self) {
        self.lock().closed = true;
        self.inner.appended.notify_waiters();
    }

    /// Every record in the log, partition by partition, in offset order.
    pub fn records(&self) -> Vec<SourceRecord> {
        self.lock().partitions.concat()
    }

    /// Number of records in the log.
    pub fn len(&self) -> usize {
        self.lock().partitions.iter().map(Vec::len).sum()
    }

    /// Whether the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The end offset of each partition (the offset the next append would get).
    pub fn end_offsets(&self) -> Vec<Position> {
        self.lock()
            .partitions
            .iter()
            .enumerate()
            .map(|(p, records)| Position {
                partition: p as u32,
                offset: records.len() as u64,
            })
            .collect()
    }

    /// The committed offset of each partition for consumer `group` (0 where none).
    pub fn committed(&self, group: &str) -> Vec<Position> {
        let state = self.lock();
        let committed = state.committed.get(group);
        (0..state.partitions.len() as u32)
            .map(|partition| Position {
                partition,
                offset: committed
                    .and_then(|c| c.get(&partition))
                    .copied()
                    .unwrap_or(0),
            })
            .collect()
    }

    /// A reader of every partition for consumer `group`, starting at the group's committed
    /// offsets.
    pub fn source(&self, group: &str) -> MemorySource {
        let all: Vec<u32> = (0..self.lock().partitions.len() as u32).collect();
        self.source_assigned(group, &all)
    }

    /// A reader of the `partitions` assigned to it, for consumer `group`, starting at the group's
    /// committed offsets. [`MemorySource::revoker`] takes partitions away, as a rebalance would.
    pub fn source_assigned(&self, group: &str, partitions: &[u32]) -> MemorySource {
        let committed = self.committed(group);
        let next = partitions
            .iter()
            .map(|p| (*p, committed.get(*p as usize).map_or(0, |c| c.offset)))
            .collect();
        self.reader(group, next)
    }

    /// A reader for consumer `group` at the offsets `next` (partition to next offset).
    fn reader(&self, group: &str, next: HashMap<u32, u64>) -> MemorySource {
        MemorySource {
            log: self.clone(),
            group: group.to_string(),
            next,
            revoked: Revoker::default(),
            linger: Duration::ZERO,
        }
    }
}

impl MemoryLog {
    /// A reader of every partition for consumer `group`, starting at each partition's current
    /// end: a tail that sees only what is appended from now on (it need never commit).
    pub fn source_at_end(&self, group: &str) -> MemorySource {
        let next = self
            .end_offsets()
            .into_iter()
            .map(|p| (p.partition, p.offset))
            .collect();
        self.reader(group, next)
    }
}

/// Takes partitions away from a running [`MemorySource`]: its next poll reports
/// [`Polled::Revoked`] and it reads them no more.
#[derive(Clone, Default)]
pub struct Revoker(Arc<Mutex<Vec<u32>>>);

impl Revoker {
    /// Revokes `partitions` at the source's next poll.
    pub fn revoke(&self, partitions: &[u32]) {
        if let Ok(mut pending) = self.0.lock() {
            pending.extend_from_slice(partitions);
        }
    }

    /// Whether the source has reported every revocation asked for.
    pub fn is_done(&self) -> bool {
        self.0.lock().map(|p| p.is_empty()).unwrap_or(true)
    }
}

/// Reads a [`MemoryLog`] as one consumer of a consumer group.
pub struct MemorySource {
    log: MemoryLog,
    group: String,
    /// The assigned partitions and the next offset to read in each.
    next: HashMap<u32, u64>,
    revoked: Revoker,
    /// How long a poll that waited for the first record waits on for more.
    linger: Duration,
}

impl MemorySource {
    /// Reads a trickle in batches: a poll that had to wait for its first record waits up to
    /// `linger` more before taking what has come, as Kafka's `fetch.wait.max.ms` does. A reader
    /// that is behind never waits. Every batch handed over wakes the reader, the workers and
    /// the sinks once, so at a few hundred records a second a short linger saves most of those
    /// wake-ups for as many milliseconds of delay. Zero (the default) takes the first at once.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// A handle that revokes partitions from this source, as a consumer-group rebalance would.
    pub fn revoker(&self) -> Revoker {
        self.revoked.clone()
    }

    fn take(&mut self, max: usize) -> (Vec<SourceRecord>, bool) {
        let state = self.log.lock();
        let mut out = Vec::new();
        let mut assigned: Vec<u32> = self.next.keys().copied().collect();
        assigned.sort_unstable();
        for p in assigned {
            let Some(records) = state.partitions.get(p as usize) else {
                continue;
            };
            let Some(next) = self.next.get_mut(&p) else {
                continue;
            };
            let from = (*next as usize).min(records.len());
            let to = records.len().min(from + max.saturating_sub(out.len()));
            out.extend_from_slice(&records[from..to]);
            *next = to as u64;
        }
        (out, state.closed)
    }
}

#[async_trait]
impl Source for MemorySource {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Polled, SourceError> {
        let revoked: Vec<u32> = match self.revoked.0.lock() {
            Ok(mut pending) => pending.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        if !revoked.is_empty() {
            for p in &revoked {
                self.next.remove(p);
            }
            return Ok(Polled::Revoked(revoked));
        }
        let log = Arc::clone(&self.log.inner);
        let notified = log.appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (records, closed) = self.take(max);
        if !records.is_empty() {
            return Ok(Polled::Records(records));
        }
        if closed {
            return Ok(Polled::End);
        }
        if tokio::time::timeout(wait, notified).await.is_ok() && !self.linger.is_zero() {
            tokio::time::sleep(self.linger).await;
        }
        let (records, _) = self.take(max);
        Ok(if records.is_empty() {
            Polled::Idle
        } else {
            Polled::Records(records)
        })
    }

    fn caught_up(&self, partition: u32) -> Option<bool> {
        let end = self.log.lock().partitions.get(partition as usize)?.len() as u64;
        Some(self.next.get(&partition).is_none_or(|next| *next >= end))
    }

    fn assigned(&self) -> Option<Vec<u32>> {
        let mut assigned: Vec<u32> = self.next.keys().copied().collect();
        assigned.sort_unstable();
        Some(assigned)
    }

    async fn commit(&mut self, next: &[Position]) -> Result<(), SourceError> {
        let mut state = self.log.lock();
        let committed = state.committed.entry(self.group.clone()).or_default();
        for p in next {
            committed.insert(p.partition, p.offset);
        }
        Ok(())
    }
}

/// A sink that keeps every group it is given, in order. Clones share the same groups.
pub struct MemorySink<K, R> {
    groups: Arc<Mutex<Vec<Group<K, R>>>>,
}

impl<K, R> Clone for MemorySink<K, R> {
    fn clone(&self) -> Self {
        Self {
            groups: Arc::clone(&self.groups),
        }
    }
}

impl<K, R> Default for MemorySink<K, R> {
    fn default() -> Self {
        Self {
            groups: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl<K: Clone, R: Clone> MemorySink<K, R> {
    /// A copy of the groups written so far.
    pub fn groups(&self) -> Vec<Group<K, R>> {
        self.groups.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl<K: Clone + Send + Sync, R: Clone + Send + Sync> Sink<K, R> for MemorySink<K, R> {
    fn name(&self) -> &str {
        "memory"
    }
    async fn write(&self, groups: &[Group<K, R>]) -> Result<(), SinkError> {
        let mut kept = self
            .groups
            .lock()
            .map_err(|_| SinkError::fatal("memory sink poisoned"))?;
        kept.extend_from_slice(groups);
        Ok(())
    }
}

/// A dead-letter sink that keeps the letters. Clones share the same letters.
#[derive(Clone, Default)]
pub struct MemoryDeadLetters {
    letters: Arc<Mutex<Vec<DeadLetter>>>,
}

impl MemoryDeadLetters {
    /// A copy of the letters written so far.
    pub fn letters(&self) -> Vec<DeadLetter> {
        self.letters.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl DeadLetterSink for MemoryDeadLetters {
    async fn write(&self, letters: &[DeadLetter]) -> Result<(), SinkError> {
        self.letters
            .lock()
            .map_err(|_| SinkError::fatal("dead-letter memory poisoned"))?
            .extend_from_slice(letters);
        Ok(())
    }
}
