//! The registry: who is connected, and each connected person's recent events.
//!
//! A [`Hub`] maps a user id to that person's [`Mailbox`] in one of [`SHARDS`] maps, so streams
//! of different people never wait on one lock. A mailbox exists while the person has a stream
//! open, and for the resume window after the last one closed. Publishing an event to a set of
//! people locks each one's shard for a lookup, then that person's mailbox to append; people with
//! no mailbox are skipped (they read history when they connect). The work per event is
//! therefore proportional to the people it is for, not to everyone connected.
//!
//! A mailbox is a bounded window of the person's last events, numbered by a per-person
//! sequence, shared by all of the person's streams: each stream keeps only its position in it.
//! That window is the one queue per person: a stream that falls behind its start is told
//! (`reset`) and jumps to the end, so memory never grows with a slow reader and nothing is
//! dropped silently. A reconnect names its last position (`Last-Event-ID`); the mailbox's random
//! `epoch` makes positions from another instance, or from a mailbox that has since been
//! forgotten, unusable rather than misleading.

use super::event::LiveEvent;
use crate::config::RealtimeConfig;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

/// Shards of the registry; a power of two well above the cores that publish into it.
const SHARDS: usize = 64;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (every update is a
    // single push, pop or counter change), so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a stream could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttachError {
    /// The person has `max_streams_per_user` streams open.
    PerUser(usize),
    /// The instance has `max_streams` streams open.
    Total(usize),
}

/// One shard of the registry: the mailboxes of the people whose id hashes to it.
type Shard = Mutex<HashMap<Uuid, Arc<Mailbox>>>;

/// The registry of connected people. Cheap to share behind an `Arc`.
pub(crate) struct Hub {
    shards: Box<[Shard]>,
    hasher: std::collections::hash_map::RandomState,
    config: RealtimeConfig,
    streams: AtomicUsize,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("streams", &self.streams())
            .finish_non_exhaustive()
    }
}

impl Hub {
    pub(crate) fn new(config: RealtimeConfig) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            config,
            streams: AtomicUsize::new(0),
        }
    }

    pub(crate) fn config(&self) -> &RealtimeConfig {
        &self.config
    }

    fn shard(&self, user: &Uuid) -> &Shard {
        &self.shards[self.hasher.hash_one(user) as usize % SHARDS]
    }

    /// Streams open in this instance.
    pub(crate) fn streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }

    /// People with a mailbox (connected, or within the resume window of their last stream).
    #[cfg(test)]
    pub(crate) fn mailboxes(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    /// Appends `event` to the mailbox of each of `users` that has one (each person once).
    pub(crate) fn publish(&self, users: &[Uuid], event: &Arc<LiveEvent>) {
        for (i, user) in users.iter().enumerate() {
            if users[..i].contains(user) {
                continue;
            }
            let mailbox = lock(self.shard(user)).get(user).cloned();
            if let Some(mailbox) = mailbox {
                mailbox.push(Arc::clone(event), &self.config);
            }
        }
    }

    /// Opens a stream for `user`, creating the mailbox if needed, positioned after `last` (the
    /// `Last-Event-ID` of a reconnect) when that position is still in the window, else at the
    /// end.
    pub(crate) fn attach(
        self: &Arc<Self>,
        user: Uuid,
        last: Option<&str>,
    ) -> Result<Attached, AttachError> {
        let total = self.streams.fetch_add(1, Ordering::Relaxed) + 1;
        if total > self.config.max_streams {
            self.streams.fetch_sub(1, Ordering::Relaxed);
            return Err(AttachError::Total(self.config.max_streams));
        }
        // Under the shard lock, so that the sweeper cannot forget the mailbox in between.
        let mut shard = lock(self.shard(&user));
        let mailbox = Arc::clone(
            shard
                .entry(user)
                .or_insert_with(|| Arc::new(Mailbox::new())),
        );
        let mut state = lock(&mailbox.state);
        if state.streams >= self.config.max_streams_per_user {
            drop(state);
            drop(shard);
            self.streams.fetch_sub(1, Ordering::Relaxed);
            return Err(AttachError::PerUser(self.config.max_streams_per_user));
        }
        state.streams += 1;
        state.idle_since = None;
        let resume = last.and_then(|last| state.resume_point(mailbox.epoch, last));
        let next = resume.unwrap_or(state.next_seq);
        drop(state);
        drop(shard);
        let cursor = Cursor {
            wake: mailbox.wake.subscribe(),
            mailbox,
            next,
            hub: Arc::clone(self),
        };
        Ok(Attached {
            resumed: resume.is_some(),
            cursor,
        })
    }

    /// Forgets the mailboxes whose last stream closed more than the resume window ago.
    pub(crate) fn sweep(&self) -> usize {
        let window = Duration::from_secs(self.config.resume_window_secs);
        let mut forgotten = 0;
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            shard.retain(|_, mailbox| {
                let state = lock(&mailbox.state);
                let keep = state.streams > 0
                    || state
                        .idle_since
                        .is_none_or(|since| since.elapsed() < window);
                forgotten += usize::from(!keep);
                keep
            });
        }
        forgotten
    }
}

/// A stream just opened: its cursor, and whether it resumed from the given position (otherwise
/// a reconnect must refetch what it may have missed).
pub(crate) struct Attached {
    pub(crate) resumed: bool,
    pub(crate) cursor: Cursor,
}

/// One person's recent events.
pub(crate) struct Mailbox {
    /// Random per mailbox: positions of other mailboxes (another instance, or this person's
    /// mailbox before it was forgotten) never match.
    epoch: u64,
    state: Mutex<MailboxState>,
    /// The sequence number of the newest event, for streams to wait on.
    wake: watch::Sender<u64>,
}

struct MailboxState {
    /// The sequence number the next event gets (the first is 1).
    next_seq: u64,
    /// The window, oldest first; sequence numbers are consecutive.
    events: VecDeque<Entry>,
    /// Streams open on this mailbox.
    streams: usize,
    /// When the last stream closed; `None` while one is open.
    idle_since: Option<Instant>,
}

struct Entry {
    at: Instant,
    event: Arc<LiveEvent>,
}

impl Mailbox {
    fn new() -> Self {
        // Only resume accuracy depends on the epoch; the clock stands in if the OS has no
        // randomness to give.
        let epoch = getrandom::u64().unwrap_or_else(|_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        Self {
            epoch,
            state: Mutex::new(MailboxState {
                next_seq: 1,
                events: VecDeque::new(),
                streams: 0,
                idle_since: None,
            }),
            wake: watch::channel(0).0,
        }
    }

    fn push(&self, event: Arc<LiveEvent>, config: &RealtimeConfig) {
        let now = Instant::now();
        let window = Duration::from_secs(config.resume_window_secs);
        let mut state = lock(&self.state);
        let seq = state.next_seq;
        state.next_seq += 1;
        state.events.push_back(Entry { at: now, event });
        while state.events.len() > config.window_events
            || state
                .events
                .front()
                .is_some_and(|e| now.duration_since(e.at) > window)
        {
            state.events.pop_front();
        }
        drop(state);
        self.wake.send_replace(seq);
    }

    /// The text of position `seq` in this mailbox, for the SSE `id`.
    pub(crate) fn position(&self, seq: u64) -> String {
        format!("{:x}-{seq}", self.epoch)
    }
}

impl MailboxState {
    /// The oldest sequence number still in the window (`next_seq` when it is empty).
    fn first_seq(&self) -> u64 {
        self.next_seq - self.events.len() as u64
    }

    /// The next sequence number to deliver after `last`, when `last` is a position of this
    /// mailbox from which nothing has been lost.
    fn resume_point(&self, epoch: u64, last: &str) -> Option<u64> {
        let (their_epoch, seq) = last.trim().split_once('-')?;
        if u64::from_str_radix(their_epoch, 16).ok()? != epoch {
            return None;
        }
        let next = seq.parse::<u64>().ok()?.checked_add(1)?;
        (self.first_seq()..=self.next_seq)
            .contains(&next)
            .then_some(next)
    }
}

/// What a stream reads next.
pub(crate) enum Batch {
    /// Events in order, each with its sequence number.
    Events(Vec<(u64, Arc<LiveEvent>)>),
    /// The stream fell behind the window: events were lost to it; it continues at the end.
    Lagged,
}

/// One stream's position in its person's mailbox. Closing it (dropping) detaches the stream.
pub(crate) struct Cursor {
    mailbox: Arc<Mailbox>,
    wake: watch::Receiver<u64>,
    /// The sequence number to deliver next.
    next: u64,
    hub: Arc<Hub>,
}

impl Cursor {
    /// The position of the last event delivered (the SSE `id` a reconnect sends back).
    pub(crate) fn position(&self) -> String {
        self.mailbox.position(self.next - 1)
    }

    /// The position of event `seq` of this mailbox.
    pub(crate) fn position_of(&self, seq: u64) -> String {
        self.mailbox.position(seq)
    }

    /// Up to `max` events after the position, without waiting; `None` when there are none.
    pub(crate) fn take(&mut self, max: usize) -> Option<Batch> {
        let state = lock(&self.mailbox.state);
        if self.next >= state.next_seq {
            return None;
        }
        let first = state.first_seq();
        if self.next < first {
            self.next = state.next_seq;
            return Some(Batch::Lagged);
        }
        let skip = (self.next - first) as usize;
        let events: Vec<(u64, Arc<LiveEvent>)> = state
            .events
            .iter()
            .skip(skip)
            .take(max)
            .enumerate()
            .map(|(i, e)| (self.next + i as u64, Arc::clone(&e.event)))
            .collect();
        self.next += events.len() as u64;
        Some(Batch::Events(events))
    }

    /// Waits until an event newer than the ones taken may be there (or the mailbox is gone).
    pub(crate) async fn changed(&mut self) {
        let next = self.next;
        // The watch holds the newest sequence number; seen values do not wake twice.
        if *self.wake.borrow_and_update() >= next {
            return;
        }
        if self.wake.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        let mut state = lock(&self.mailbox.state);
        state.streams = state.streams.saturating_sub(1);
        if state.streams == 0 {
            state.idle_since = Some(Instant::now());
        }
        drop(state);
        self.hub.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::event::Kind;

    fn hub(window_events: usize) -> Arc<Hub> {
        Arc::new(Hub::new(RealtimeConfig {
            window_events,
            max_streams_per_user: 2,
            max_streams: 3,
            ..RealtimeConfig::default()
        }))
    }

    fn event(n: u32) -> Arc<LiveEvent> {
        Arc::new(LiveEvent::new(
            Kind::Typing,
            Uuid::nil(),
            format!("{{\"n\":{n}}}"),
        ))
    }

    fn data(batch: Option<Batch>) -> Vec<String> {
        match batch {
            Some(Batch::Events(events)) => {
                events.iter().map(|(_, e)| e.data().to_owned()).collect()
            }
            Some(Batch::Lagged) => vec!["lagged".into()],
            None => Vec::new(),
        }
    }

    #[test]
    fn events_reach_only_the_people_they_are_for_and_each_once() {
        let hub = hub(16);
        let (ann, bob, cid) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut a = hub.attach(ann, None).expect("attach").cursor;
        let mut b = hub.attach(bob, None).expect("attach").cursor;
        hub.publish(&[ann, ann, cid], &event(1));
        assert_eq!(data(a.take(10)), ["{\"n\":1}"]);
        assert!(b.take(10).is_none(), "bob is not in that event");
        assert_eq!(hub.mailboxes(), 2, "no mailbox for someone not connected");
    }

    #[test]
    fn a_reconnect_resumes_after_its_position_and_a_foreign_position_does_not() {
        let hub = hub(16);
        let ann = Uuid::new_v4();
        let mut first = hub.attach(ann, None).expect("attach").cursor;
        hub.publish(&[ann], &event(1));
        assert_eq!(data(first.take(10)), ["{\"n\":1}"]);
        let last = first.position();
        drop(first);
        hub.publish(&[ann], &event(2));
        hub.publish(&[ann], &event(3));
        let resumed = hub.attach(ann, Some(&last)).expect("attach");
        assert!(resumed.resumed);
        let mut cursor = resumed.cursor;
        assert_eq!(data(cursor.take(10)), ["{\"n\":2}", "{\"n\":3}"]);
        drop(cursor);
        for bogus in ["0-1", "zz-1", "", "1"] {
            let attached = hub.attach(ann, Some(bogus)).expect("attach");
            assert!(!attached.resumed, "{bogus:?}");
        }
        let future = format!("{}-99", last.split_once('-').expect("id").0);
        assert!(!hub.attach(ann, Some(&future)).expect("attach").resumed);
    }

    #[test]
    fn a_stream_behind_the_window_is_told_and_continues_at_the_end() {
        let hub = hub(2);
        let ann = Uuid::new_v4();
        let mut cursor = hub.attach(ann, None).expect("attach").cursor;
        for n in 1..=5 {
            hub.publish(&[ann], &event(n));
        }
        assert_eq!(data(cursor.take(10)), ["lagged"]);
        hub.publish(&[ann], &event(6));
        assert_eq!(data(cursor.take(10)), ["{\"n\":6}"]);
        let stale = hub.attach(ann, Some(&cursor.position().replace("-6", "-2")));
        assert!(!stale.expect("attach").resumed, "2 has left the window");
    }

    #[test]
    fn stream_caps_hold_and_closing_frees_them() {
        let hub = hub(4);
        let ann = Uuid::new_v4();
        let a1 = hub.attach(ann, None).expect("first");
        let _a2 = hub.attach(ann, None).expect("second");
        assert_eq!(hub.attach(ann, None).err(), Some(AttachError::PerUser(2)));
        let _b = hub.attach(Uuid::new_v4(), None).expect("bob");
        assert_eq!(
            hub.attach(Uuid::new_v4(), None).err(),
            Some(AttachError::Total(3))
        );
        drop(a1);
        assert_eq!(hub.streams(), 2);
        assert!(hub.attach(Uuid::new_v4(), None).is_ok());
    }

    #[test]
    fn the_sweeper_forgets_only_idle_mailboxes_past_the_window() {
        let hub = Arc::new(Hub::new(RealtimeConfig {
            resume_window_secs: 1,
            ..RealtimeConfig::default()
        }));
        let (ann, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let _a = hub.attach(ann, None).expect("attach");
        drop(hub.attach(bob, None).expect("attach"));
        assert_eq!(hub.sweep(), 0, "bob's window has not passed");
        std::thread::sleep(Duration::from_millis(1_100));
        assert_eq!(hub.sweep(), 1);
        assert_eq!(hub.mailboxes(), 1);
    }

    #[tokio::test]
    async fn a_waiting_stream_wakes_on_its_next_event() {
        let hub = hub(4);
        let ann = Uuid::new_v4();
        let mut cursor = hub.attach(ann, None).expect("attach").cursor;
        let publisher = Arc::clone(&hub);
        let task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            publisher.publish(&[ann], &event(7));
        });
        tokio::time::timeout(Duration::from_secs(5), cursor.changed())
            .await
            .expect("woken");
        assert_eq!(data(cursor.take(10)), ["{\"n\":7}"]);
        task.await.expect("publisher");
    }
}
