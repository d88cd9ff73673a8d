//! Fixed-window attempt counters for failed logins and sign-ups.
//!
//! A [`Limiter`] counts attempts per key (a username or a client address) in a window that starts
//! at the key's first counted attempt. Attempts are counted *before* the expensive work, so a
//! burst of concurrent requests cannot slip past the limit; a login that succeeds gives its count
//! back ([`Limiter::release`]). Once `max` attempts are counted, the next ones are refused with
//! the time left in the window (sent as `Retry-After`).
//!
//! Memory is bounded: at most `max_keys` keys are tracked. When the table fills, expired windows
//! are pruned, and if it is still full the least recently used key is forgotten: a flood of junk
//! keys can only make the limiter forget old counts (an attacker's own among them), never
//! refuse a key it has not seen, so it cannot lock anybody out. Counters are per process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Refused: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds, rounded up, at least 1 (the `Retry-After` header value).
    pub fn secs(self) -> u64 {
        let secs = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        secs.max(1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
    /// The key's last attempt, for evicting the least recently used key.
    used: Instant,
}

/// Counts attempts per key within a window.
#[derive(Debug)]
pub struct Limiter {
    max: u32,
    window: Duration,
    max_keys: usize,
    entries: Mutex<HashMap<String, Window>>,
}

impl Limiter {
    /// At most `max` attempts per key per `window`, tracking at most `max_keys` keys.
    pub fn new(max: u32, window: Duration, max_keys: usize) -> Self {
        Self {
            max,
            window,
            max_keys,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt for `key`, or refuses it when the key's window is full.
    pub fn acquire(&self, key: &str) -> Result<(), RetryAfter> {
        self.acquire_at(key, Instant::now())
    }

    /// Gives back one attempt (it turned out not to count, e.g. a successful login).
    pub fn release(&self, key: &str) {
        let mut entries = self.lock();
        if let Some(window) = entries.get_mut(key) {
            window.count = window.count.saturating_sub(1);
        }
    }

    /// Forgets every attempt of `key`.
    pub fn reset(&self, key: &str) {
        self.lock().remove(key);
    }

    fn acquire_at(&self, key: &str, now: Instant) -> Result<(), RetryAfter> {
        let mut entries = self.lock();
        if let Some(window) = entries.get_mut(key) {
            let elapsed = now.saturating_duration_since(window.started);
            window.used = now;
            if elapsed >= self.window {
                *window = Window {
                    started: now,
                    count: 1,
                    used: now,
                };
                return Ok(());
            }
            if window.count >= self.max {
                return Err(RetryAfter(self.window - elapsed));
            }
            window.count += 1;
            return Ok(());
        }
        if entries.len() >= self.max_keys {
            let window = self.window;
            entries.retain(|_, w| now.saturating_duration_since(w.started) < window);
            if entries.len() >= self.max_keys {
                let least_recent = entries
                    .iter()
                    .min_by_key(|(_, w)| w.used)
                    .map(|(k, _)| k.clone());
                if let Some(least_recent) = least_recent {
                    entries.remove(&least_recent);
                }
                tracing::debug!(
                    tracked = entries.len(),
                    "A throttle table is full; forgot its least recently used key."
                );
            }
        }
        entries.insert(
            key.to_owned(),
            Window {
                started: now,
                count: 1,
                used: now,
            },
        );
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Window>> {
        // A panic while holding this lock cannot leave a half-updated window behind (each update
        // is a single assignment), so a poisoned lock is still safe to use.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn the_attempt_after_max_is_refused_until_the_window_ends() {
        let limiter = Limiter::new(3, MIN, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.acquire_at("alice", t0), Ok(()));
        }
        let refused = limiter.acquire_at("alice", t0 + Duration::from_secs(20));
        assert_eq!(refused, Err(RetryAfter(Duration::from_secs(40))));
        assert_eq!(refused.err().map(RetryAfter::secs), Some(40));
        assert_eq!(
            limiter.acquire_at("bob", t0),
            Ok(()),
            "keys are independent"
        );
        assert_eq!(
            limiter.acquire_at("alice", t0 + MIN),
            Ok(()),
            "a new window"
        );
    }

    #[test]
    fn release_and_reset_give_attempts_back() {
        let limiter = Limiter::new(2, MIN, 100);
        let t0 = Instant::now();
        limiter.acquire_at("k", t0).expect("1");
        limiter.acquire_at("k", t0).expect("2");
        assert!(limiter.acquire_at("k", t0).is_err());
        limiter.release("k");
        limiter.acquire_at("k", t0).expect("released one");
        limiter.reset("k");
        limiter.acquire_at("k", t0).expect("reset");
        limiter.acquire_at("k", t0).expect("reset");
    }

    #[test]
    fn a_full_table_forgets_its_least_recently_used_key_and_never_refuses_a_new_one() {
        let limiter = Limiter::new(1, MIN, 2);
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        limiter.acquire_at("a", at(0)).expect("a");
        limiter.acquire_at("b", at(10)).expect("b");
        assert!(
            limiter.acquire_at("a", at(20)).is_err(),
            "a is at its limit"
        );
        // Full: a new key is admitted, and the least recently used one (b) is forgotten.
        limiter
            .acquire_at("junk", at(30))
            .expect("a new key is never refused");
        assert_eq!(limiter.lock().len(), 2);
        assert!(
            limiter.acquire_at("a", at(31)).is_err(),
            "a was used more recently than b and keeps its count"
        );
        limiter.acquire_at("b", at(32)).expect("b starts afresh");
    }

    #[test]
    fn retry_after_rounds_up_to_at_least_one_second() {
        assert_eq!(RetryAfter(Duration::from_millis(1)).secs(), 1);
        assert_eq!(RetryAfter(Duration::from_millis(1500)).secs(), 2);
        assert_eq!(RetryAfter(Duration::ZERO).secs(), 1);
    }
}
