//! The source side: a partitioned log the runtime reads from and commits to.
//!
//! Two traits, one runtime: a [`RecordSource`] yields typed records (an iterator or a stream of
//! them with [`from_iter`] and [`from_stream`]); a [`Source`] yields bytes (Kafka, Fluvio, the
//! in-memory log), which [`crate::Pipeline::run`] decodes with the pipeline's decoder, through
//! the same runtime, as a [`RecordSource`] of the decoded records.

use std::time::Duration;

use async_trait::async_trait;
use futures::{FutureExt as _, Stream, StreamExt as _};

use crate::record::Position;
use crate::sink::ErrorKind;

/// One undecoded record as read from a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// Where it sits in the log.
    pub position: Position,
    /// The record's key, if the log has keys (Kafka does).
    pub key: Option<Vec<u8>>,
    /// The record's bytes.
    pub payload: Vec<u8>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// What one poll of a source found: of a [`Source`], byte records; of a [`RecordSource`],
/// [`Read`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled<T = SourceRecord> {
    /// Records, in log order within each partition.
    Records(Vec<T>),
    /// Nothing to read now: every assigned partition is caught up. The runtime then lets the
    /// clock advance time, so idle groups complete.
    Idle,
    /// These partitions were taken away (a consumer-group rebalance). The runtime stops
    /// tracking them after committing what it may.
    Revoked(Vec<u32>),
    /// The input has ended (a file or a closed in-memory log). The runtime flushes and stops.
    End,
}

/// A source error, saying whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    /// Whether a retry can succeed.
    pub kind: ErrorKind,
    /// What went wrong, naming the thing and, where possible, the fix.
    pub message: String,
}

impl SourceError {
    /// A failure that a later retry may not see (a broker briefly away).
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Retryable,
            message: message.into(),
        }
    }
    /// A failure that will repeat (bad configuration, authorization).
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Fatal,
            message: message.into(),
        }
    }
}

/// A partitioned, replayable log with committable positions (Kafka, Fluvio, an in-memory log).
///
/// The runtime calls [`Source::commit`] only with positions below which every record was
/// acknowledged by every sink, so a restart from the committed positions loses nothing.
///
/// Here lines of text as a log of one partition, read by a pipeline that decodes each line:
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use confab_pipeline::memory::{MemoryDeadLetters, MemorySink};
/// use confab_pipeline::{async_trait, Aggregatable, Pipeline};
/// use confab_pipeline::{Polled, Position, Source, SourceError, SourceRecord};
///
/// /// `sensor,ts_ms` lines, read from `next`; commits go to `committed` (a real source would
/// /// store them where a restart finds them, and start there).
/// struct Lines {
///     lines: Vec<&'static str>,
///     next: usize,
///     committed: Arc<AtomicU64>,
/// }
///
/// #[async_trait]
/// impl Source for Lines {
///     async fn poll(&mut self, max: usize, _wait: Duration) -> Result<Polled, SourceError> {
///         if self.next == self.lines.len() {
///             return Ok(Polled::End); // a live log would answer Polled::Idle
///         }
///         let records: Vec<SourceRecord> = (self.next..self.lines.len())
///             .take(max)
///             .map(|offset| SourceRecord {
///                 position: Position { partition: 0, offset: offset as u64 },
///                 key: None,
///                 payload: self.lines[offset].as_bytes().to_vec(),
///                 headers: Vec::new(),
///             })
///             .collect();
///         self.next += records.len();
///         Ok(Polled::Records(records))
///     }
///
///     async fn commit(&mut self, next: &[Position]) -> Result<(), SourceError> {
///         // A server that is away would be `SourceError::retryable`: the runtime tries again.
///         for position in next {
///             self.committed.store(position.offset, Ordering::SeqCst);
///         }
///         Ok(())
///     }
/// }
///
/// #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
/// struct Reading {
///     sensor: String,
///     ts_ms: u64,
/// }
/// impl Aggregatable for Reading {
///     fn event_time_ms(&self) -> u64 {
///         self.ts_ms
///     }
/// }
///
/// /// A line as a reading; the error is the dead letter's reason.
/// fn decode(record: &SourceRecord) -> Result<Reading, String> {
///     let line = std::str::from_utf8(&record.payload).map_err(|e| e.to_string())?;
///     let (sensor, ts) = line.split_once(',').ok_or("no comma")?;
///     let ts_ms = ts.parse().map_err(|e| format!("bad time {ts:?}: {e}"))?;
///     Ok(Reading { sensor: sensor.to_string(), ts_ms })
/// }
///
/// # tokio::runtime::Runtime::new().expect("runtime").block_on(async {
/// let committed = Arc::new(AtomicU64::new(0));
/// let source = Lines {
///     lines: vec!["kitchen,0", "garden,5", "kitchen,20", "cellar"],
///     next: 0,
///     committed: Arc::clone(&committed),
/// };
/// let (groups, dead) = (MemorySink::default(), MemoryDeadLetters::default());
/// let report = Pipeline::new(|r: &Reading| r.sensor.clone(), decode, Arc::new(dead.clone()))
///     .sink(Arc::new(groups.clone()))
///     .event_time_only()
///     .run(source, std::future::pending())
///     .await
///     .expect("runs");
/// assert_eq!(groups.groups().len(), 2, "kitchen and garden");
/// assert_eq!(dead.letters()[0].reason, "no comma");
/// assert_eq!((report.messages_in, report.dead_letters), (4, 1));
/// assert_eq!(committed.load(Ordering::SeqCst), 4, "every line acknowledged: committed to the end");
/// # });
/// ```
#[async_trait]
pub trait Source: Send {
    /// Reads up to `max` records, waiting at most `wait` for the first one.
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Polled, SourceError>;

    /// Commits, for each listed partition, the offset of the next record to read after a restart.
    async fn commit(&mut self, next: &[Position]) -> Result<(), SourceError>;

    /// Whether `partition` has been read to its current end: `Some(true)` caught up,
    /// `Some(false)` still behind, `None` when the source cannot tell (the default).
    ///
    /// Time waits for partitions that are behind, so a replay of a backlog forms the same groups
    /// however the partitions' fetches interleave; a caught-up partition does not hold time back.
    /// Without this information the runtime treats a partition silent for `lateness_ms` as
    /// caught up.
    fn caught_up(&self, partition: u32) -> Option<bool> {
        let _ = partition;
        None
    }

    /// The partitions this source reads now, or `None` when it cannot tell (the default).
    ///
    /// An assigned partition that is behind but has delivered no record yet holds time where it
    /// is: its backlog may be older than the other partitions' records, and letting time run
    /// ahead of it would make its records late, so that arrival timing, not the log, decided
    /// their groups (after a restart, or when a rebalance hands this consumer a partition).
    fn assigned(&self) -> Option<Vec<u32>> {
        None
    }
}

/// One record as a [`RecordSource`] read it.
#[derive(Debug)]
pub struct Read<R> {
    /// Where it sits in the log. When the record has no id of its own
    /// ([`Aggregatable::record_id`](crate::Aggregatable::record_id) empty), its group's id is
    /// derived from the position of the group's first record, so positions must be the same on
    /// every replay.
    pub position: Position,
    /// The record, or why it could not be made (it then goes to the dead-letter sink, with this
    /// error's text as the reason).
    pub record: Result<R, RecordError>,
    /// The record's key in the log, if any (kept for dead letters).
    pub key: Option<Vec<u8>>,
    /// The record's bytes as read, if it has any: dead letters carry them unchanged, and they
    /// count as the record's size. Empty for typed records, which count their `size_bytes`.
    pub payload: Vec<u8>,
}

impl<R> Read<R> {
    /// A typed record at `position`, with no bytes.
    pub fn record(position: Position, record: R) -> Self {
        Self {
            position,
            record: Ok(record),
            key: None,
            payload: Vec::new(),
        }
    }
}

/// A partitioned, replayable log of typed records with committable positions. The runtime's
/// contract is [`Source`]'s: it commits only positions below which every record was
/// acknowledged by every sink.
#[async_trait]
pub trait RecordSource<R>: Send {
    /// Reads up to `max` records, waiting at most `wait` for the first one.
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Polled<Read<R>>, SourceError>;

    /// Commits, for each listed partition, the offset of the next record to read after a restart.
    async fn commit(&mut self, next: &[Position]) -> Result<(), SourceError>;

    /// As [`Source::caught_up`].
    fn caught_up(&self, partition: u32) -> Option<bool> {
        let _ = partition;
        None
    }

    /// As [`Source::assigned`].
    fn assigned(&self) -> Option<Vec<u32>> {
        None
    }

    /// Reads as [`RecordSource::poll`] does, but hands each record to `each`, in order, as it
    /// is made; the [`Polled::Records`] returned is then empty. The runtime reads through this:
    /// a source that makes its records one by one ([`Decoding`]) need not collect a batch of
    /// them first. The default collects them with `poll`.
    #[doc(hidden)]
    async fn poll_each(
        &mut self,
        max: usize,
        wait: Duration,
        each: &mut (dyn FnMut(Read<R>) + Send),
    ) -> Result<Polled<Read<R>>, SourceError>
    where
        R: Send,
    {
        Ok(match self.poll(max, wait).await? {
            Polled::Records(records) => {
                records.into_iter().for_each(each);
                Polled::Records(Vec::new())
            }
            other => other,
        })
    }
}

/// A byte [`Source`] read as records: each payload over `max_bytes` or that `decode` refuses
/// becomes a dead letter with the reason. [`crate::Pipeline::run`] reads every byte source so.
pub struct Decoding<S, R> {
    source: S,
    decode: Decoder<R>,
    max_bytes: usize,
}

/// Turns source bytes into records, or says why not.
pub type Decoder<R> = std::sync::Arc<dyn Fn(&SourceRecord) -> Result<R, RecordError> + Send + Sync>;

/// Why a record read from a source could not become a record. It goes to the dead-letter sink,
/// with this error's text as the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The payload is larger than `max_record_bytes`.
    #[error("record is {size} bytes, over the max_record_bytes limit of {limit}")]
    TooLarge {
        /// The payload's size in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The decoder refused the payload; the reason is the decoder's error, word for word.
    #[error(transparent)]
    Decode(Box<dyn std::error::Error + Send + Sync>),
}

impl RecordError {
    /// The decoder's refusal: any error, or a `String` or `&str` saying why.
    pub fn decode(reason: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Decode(reason.into())
    }
}

impl<S, R> Decoding<S, R> {
    /// Reads `source` through `decode`, refusing payloads over `max_bytes`.
    pub fn new(source: S, decode: Decoder<R>, max_bytes: usize) -> Self {
        Self {
            source,
            decode,
            max_bytes,
        }
    }
}

impl<S, R> Decoding<S, R> {
    /// `record` decoded, or refused with the reason.
    fn decoded(&self, r: SourceRecord) -> Read<R> {
        let record = if r.payload.len() > self.max_bytes {
            Err(RecordError::TooLarge {
                size: r.payload.len(),
                limit: self.max_bytes,
            })
        } else {
            (self.decode)(&r)
        };
        Read {
            position: r.position,
            record,
            key: r.key,
            payload: r.payload,
        }
    }
}

#[async_trait]
impl<S: Source, R: Send> RecordSource<R> for Decoding<S, R> {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Polled<Read<R>>, SourceError> {
        Ok(match self.source.poll(max, wait).await? {
            Polled::Records(records) => {
                Polled::Records(records.into_iter().map(|r| self.decoded(r)).collect())
            }
            Polled::Idle => Polled::Idle,
            Polled::Revoked(partitions) => Polled::Revoked(partitions),
            Polled::End => Polled::End,
        })
    }

    /// Decodes each record straight into `each`: no batch of decoded records is collected (a
    /// few hundred kilobytes per poll, allocated afresh each time).
    async fn poll_each(
        &mut self,
        max: usize,
        wait: Duration,
        each: &mut (dyn FnMut(Read<R>) + Send),
    ) -> Result<Polled<Read<R>>, SourceError> {
        Ok(match self.source.poll(max, wait).await? {
            Polled::Records(records) => {
                for r in records {
                    each(self.decoded(r));
                }
                Polled::Records(Vec::new())
            }
            Polled::Idle => Polled::Idle,
            Polled::Revoked(partitions) => Polled::Revoked(partitions),
            Polled::End => Polled::End,
        })
    }

    async fn commit(&mut self, next: &[Position]) -> Result<(), SourceError> {
        self.source.commit(next).await
    }

    fn caught_up(&self, partition: u32) -> Option<bool> {
        self.source.caught_up(partition)
    }

    fn assigned(&self) -> Option<Vec<u32>> {
        self.source.assigned()
    }
}

/// A [`RecordSource`] over an iterator: one partition (0), the record's index its offset, the
/// end of the iterator the end of the input. Commits are kept in [`IterSource::committed`].
pub struct IterSource<I> {
    records: I,
    next: u64,
    committed: Option<u64>,
}

/// A source of the records `records` yields, in order (see [`IterSource`]).
///
/// ```
/// use confab_pipeline::source::{from_iter, Polled, RecordSource};
/// # tokio::runtime::Runtime::new().expect("runtime").block_on(async {
/// let mut source = from_iter(["a", "b", "c"]);
/// let Ok(Polled::Records(read)) = source.poll(2, std::time::Duration::ZERO).await else {
///     panic!("two records");
/// };
/// assert_eq!(read.len(), 2);
/// assert_eq!(read[1].position.offset, 1);
/// # });
/// ```
pub fn from_iter<I: IntoIterator>(records: I) -> IterSource<I::IntoIter> {
    IterSource {
        records: records.into_iter(),
        next: 0,
        committed: None,
    }
}

impl<I> IterSource<I> {
    /// The offset the runtime committed last: every record before it was acknowledged.
    pub fn committed(&self) -> Option<u64> {
        self.committed
    }
}

#[async_trait]
impl<R: Send, I: Iterator<Item = R> + Send> RecordSource<R> for IterSource<I> {
    async fn poll(&mut self, max: usize, _wait: Duration) -> Result<Polled<Read<R>>, SourceError> {
        let mut read = Vec::new();
        for record in self.records.by_ref().take(max) {
            let position = Position {
                partition: 0,
                offset: self.next,
            };
            self.next += 1;
            read.push(Read::record(position, record));
        }
        Ok(if read.is_empty() {
            Polled::End
        } else {
            Polled::Records(read)
        })
    }

    async fn commit(&mut self, next: &[Position]) -> Result<(), SourceError> {
        if let Some(p) = next.iter().find(|p| p.partition == 0) {
            self.committed = Some(p.offset);
        }
        Ok(())
    }
}

/// A [`RecordSource`] over a stream: one partition (0), the record's index its offset, the
/// end of the stream the end of the input; a stream with nothing ready within the poll's wait
/// is idle (and the idle clock may complete groups). Commits are kept in
/// [`StreamSource::committed`].
pub struct StreamSource<S> {
    records: S,
    next: u64,
    committed: Option<u64>,
}

/// A source of the records `records` yields, in order (see [`StreamSource`]).
pub fn from_stream<S: Stream + Send + Unpin>(records: S) -> StreamSource<S> {
    StreamSource {
        records,
        next: 0,
        committed: None,
    }
}

impl<S> StreamSource<S> {
    /// The offset the runtime committed last: every record before it was acknowledged.
    pub fn committed(&self) -> Option<u64> {
        self.committed
    }
}

#[async_trait]
impl<R: Send, S: Stream<Item = R> + Send + Unpin> RecordSource<R> for StreamSource<S> {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Polled<Read<R>>, SourceError> {
        let first = match tokio::time::timeout(wait, self.records.next()).await {
            Err(_) => return Ok(Polled::Idle),
            Ok(None) => return Ok(Polled::End),
            Ok(Some(record)) => record,
        };
        let mut records = vec![first];
        while records.len() < max {
            match self.records.next().now_or_never() {
                Some(Some(record)) => records.push(record),
                _ => break,
            }
        }
        let read = records
            .into_iter()
            .map(|record| {
                let position = Position {
                    partition: 0,
                    offset: self.next,
                };
                self.next += 1;
                Read::record(position, record)
            })
            .collect();
        Ok(Polled::Records(read))
    }

    async fn commit(&mut self, next: &[Position]) -> Result<(), SourceError> {
        if let Some(p) = next.iter().find(|p| p.partition == 0) {
            self.committed = Some(p.offset);
        }
        Ok(())
    }
}
