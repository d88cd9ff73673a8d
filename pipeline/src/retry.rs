//! Exponential backoff with jitter: the one retry schedule of the runtime and of confab's
//! connectors.
//!
//! Each delay is drawn between half and all of a ceiling that starts at `initial` and doubles
//! after every delay, up to `max`. The random half spreads out the retries of many clients that
//! failed together (every consumer of a broker that restarted), so they do not come back in step;
//! the fixed half keeps a floor under each wait, so a retry never hammers a server that is away.
//!
//! Who retries what: the runtime retries every failed [`Source`](crate::Source),
//! [`Sink`](crate::Sink) and [`DeadLetterSink`](crate::DeadLetterSink) call the error says may
//! succeed ([`ErrorKind::Retryable`](crate::ErrorKind::Retryable)), with the schedule of
//! [`RuntimeConfig::retry_initial_ms`](crate::RuntimeConfig::retry_initial_ms) and
//! `retry_max_ms`. A connector therefore tries each call once and says whether a retry can help;
//! it uses [`Backoff`] only for what the runtime never sees (a background reader reconnecting).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::time::Duration;

/// The delays between the attempts of one operation: exponential, capped, jittered.
///
/// ```
/// use std::time::Duration;
/// use confab_pipeline::retry::Backoff;
///
/// let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
/// let delays: Vec<Duration> = (0..6).map(|_| backoff.next_delay()).collect();
/// // Between half and all of 100, 200, 400, 800, 1000, 1000 ms.
/// for (delay, ceiling) in delays.iter().zip([100, 200, 400, 800, 1000, 1000]) {
///     let ceiling = Duration::from_millis(ceiling);
///     assert!(*delay >= ceiling / 2 && *delay <= ceiling, "{delay:?} for {ceiling:?}");
/// }
/// assert_eq!(backoff.attempts(), 6);
/// backoff.reset(); // the operation succeeded: the next failure starts over
/// assert!(backoff.next_delay() <= Duration::from_millis(100));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    ceiling: Duration,
    attempts: u32,
    /// xorshift64 state: jitter needs spread, not unpredictability, and this keeps the crate free
    /// of a random-number dependency.
    state: u64,
}

impl Backoff {
    /// Delays starting at `initial` and doubling up to `max`. An `initial` of zero counts as one
    /// millisecond (a retry loop that never waits is a busy loop), and a `max` below `initial` as
    /// `initial`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        // A different sequence per Backoff: RandomState is seeded per process and per instance.
        let seed = RandomState::new().build_hasher().finish();
        Self {
            initial,
            max: max.max(initial),
            ceiling: initial,
            attempts: 0,
            state: seed | 1,
        }
    }

    /// [`Backoff::new`] with both bounds in milliseconds, as configurations give them.
    pub fn from_millis(initial_ms: u64, max_ms: u64) -> Self {
        Self::new(
            Duration::from_millis(initial_ms),
            Duration::from_millis(max_ms),
        )
    }

    /// How long to wait before the next attempt: between half and all of the current ceiling,
    /// which then doubles (up to the maximum).
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = ceiling.saturating_mul(2).min(self.max);
        self.attempts = self.attempts.saturating_add(1);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(self.random() % spread.saturating_add(1))
    }

    /// Starts over from the initial delay (after a success).
    pub fn reset(&mut self) {
        self.ceiling = self.initial;
        self.attempts = 0;
    }

    /// How many delays were handed out since the start or the last [`Backoff::reset`].
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    fn random(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_between_half_and_all_of_a_doubling_capped_ceiling() {
        let mut backoff = Backoff::from_millis(10, 100);
        let mut ceiling = 10;
        for _ in 0..20 {
            let delay = backoff.next_delay();
            let c = Duration::from_millis(ceiling);
            assert!(delay >= c / 2 && delay <= c, "{delay:?} outside {c:?}");
            ceiling = (ceiling * 2).min(100);
        }
    }

    #[test]
    fn jitter_spreads_the_delays_of_clients_that_failed_together() {
        let firsts: std::collections::BTreeSet<Duration> = (0..50)
            .map(|_| Backoff::from_millis(1_000, 1_000).next_delay())
            .collect();
        assert!(firsts.len() > 40, "only {} distinct delays", firsts.len());
    }

    #[test]
    fn zero_and_inverted_bounds_still_wait() {
        let mut backoff = Backoff::from_millis(0, 0);
        for _ in 0..5 {
            let delay = backoff.next_delay();
            assert!(delay >= Duration::from_micros(500) && delay <= Duration::from_millis(1));
        }
        let mut inverted = Backoff::from_millis(50, 10);
        assert!(inverted.next_delay() >= Duration::from_millis(25));
    }
}
