//! A per-chat token bucket: how long a write for a chat must wait so that one chat's documents
//! are written at most `burst` at once and then one per `interval`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Chats idle long enough to have a full bucket are forgotten past this many entries.
const PRUNE_ABOVE: usize = 10_000;

/// Spaces writes per chat. Reservations add up, so concurrent writers share the budget.
#[derive(Debug)]
pub struct ChatRateGuard {
    interval: Duration,
    burst: u32,
    chats: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// The instant at which the bucket is full again, if the chat writes nothing more (theoretical
    /// arrival time of GCRA).
    full_at: Instant,
}

impl ChatRateGuard {
    /// At most `burst` writes at once per chat, then one per `interval`. A zero `interval`
    /// allows everything.
    pub fn new(interval: Duration, burst: u32) -> Self {
        Self {
            interval,
            burst: burst.max(1),
            chats: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves one write for each chat in `chats` (repeats count) at `now`; returns how long the
    /// caller must wait before writing them all.
    pub fn reserve<'a>(&self, chats: impl IntoIterator<Item = &'a str>, now: Instant) -> Duration {
        self.reserve_each(chats, now)
            .into_iter()
            .max()
            .unwrap_or_default()
    }

    /// Reserves one write for each chat in `chats` (repeats count) at `now`; returns, for each,
    /// how long that write must wait. Writes of other chats need not wait for a busy one.
    pub fn reserve_each<'a>(
        &self,
        chats: impl IntoIterator<Item = &'a str>,
        now: Instant,
    ) -> Vec<Duration> {
        let chats = chats.into_iter();
        if self.interval.is_zero() {
            return chats.map(|_| Duration::ZERO).collect();
        }
        let window = self.interval * self.burst;
        let mut map = self.chats.lock().unwrap_or_else(|p| p.into_inner());
        let waits = chats
            .map(|chat| {
                let bucket = map
                    .entry(chat.to_string())
                    .or_insert(Bucket { full_at: now });
                // GCRA: each write pushes `full_at` one interval later; a write may go once
                // `full_at` is less than a burst window ahead.
                let full_at = bucket.full_at.max(now) + self.interval;
                let allowed_at = full_at.checked_sub(window).unwrap_or(now).max(now);
                bucket.full_at = full_at;
                allowed_at - now
            })
            .collect();
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, b| b.full_at > now);
        }
        waits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_writes_are_spaced_by_the_interval() {
        let guard = ChatRateGuard::new(Duration::from_millis(100), 3);
        let t0 = Instant::now();
        let waits: Vec<u128> = (0..5)
            .map(|_| guard.reserve(["c1"], t0).as_millis())
            .collect();
        assert_eq!(waits, [0, 0, 0, 100, 200]);
        // Another chat has its own budget.
        assert_eq!(guard.reserve(["c2"], t0), Duration::ZERO);
        // After the bucket refills, a burst passes again.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(guard.reserve(["c1", "c1", "c1"], later), Duration::ZERO);
    }

    #[test]
    fn a_zero_interval_never_waits() {
        let guard = ChatRateGuard::new(Duration::ZERO, 1);
        let now = Instant::now();
        assert_eq!(guard.reserve(["c"; 100], now), Duration::ZERO);
    }
}
