//! Spam controls: a token bucket per user, and the content rules of a message.
//!
//! [`TokenBuckets`] gives each key (a user id) a bucket of `burst` tokens that refills at `rate`
//! tokens per second; an action takes one token or is refused with the time until the next token
//! (sent as `Retry-After`). Sends use one (a few per second with a burst), chat creation another
//! (`n` per hour, burst `n`). A token is taken *before* the work, so concurrent requests cannot
//! slip past the limit, and given back ([`TokenBuckets::refund`]) when the action turned out not
//! to count (the log was down, the chat existed already).
//!
//! Memory is bounded: at most `max_keys` buckets are tracked. When the table is full, buckets
//! that have refilled completely (indistinguishable from new ones) are dropped; if none has,
//! new keys are refused until one does. Counters are per process: N replicas behind a load
//! balancer allow up to N times the rate unless requests are routed by user.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Refused: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds, rounded up, at least 1 (the `Retry-After` header value).
    pub fn secs(self) -> u64 {
        let secs = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        secs.max(1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets per key.
#[derive(Debug)]
pub struct TokenBuckets {
    rate_per_sec: f64,
    burst: f64,
    max_keys: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl TokenBuckets {
    /// Buckets of `burst` tokens refilling at `rate_per_sec`, for at most `max_keys` keys.
    pub fn new(rate_per_sec: f64, burst: u32, max_keys: usize) -> Self {
        Self {
            rate_per_sec,
            burst: f64::from(burst.max(1)),
            max_keys: max_keys.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `per_hour` actions per hour, all of which may come at once.
    pub fn per_hour(per_hour: u32, max_keys: usize) -> Self {
        Self::new(f64::from(per_hour) / 3600.0, per_hour, max_keys)
    }

    /// Takes a token from `key`'s bucket, or says how long until one is there.
    pub fn acquire(&self, key: &str) -> Result<(), RetryAfter> {
        self.acquire_at(key, Instant::now())
    }

    /// Gives a token back to `key`'s bucket (never above the burst).
    pub fn refund(&self, key: &str) {
        let mut buckets = self.lock();
        if let Some(bucket) = buckets.get_mut(key) {
            bucket.tokens = (bucket.tokens + 1.0).min(self.burst);
        }
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate_per_sec).min(self.burst);
        bucket.updated = now;
    }

    fn wait_for_one(&self, tokens: f64) -> RetryAfter {
        let missing = (1.0 - tokens).max(0.0);
        RetryAfter(Duration::from_secs_f64(
            (missing / self.rate_per_sec).min(1e9),
        ))
    }

    fn acquire_at(&self, key: &str, now: Instant) -> Result<(), RetryAfter> {
        let mut buckets = self.lock();
        if let Some(bucket) = buckets.get_mut(key) {
            self.refill(bucket, now);
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                return Ok(());
            }
            return Err(self.wait_for_one(bucket.tokens));
        }
        if buckets.len() >= self.max_keys {
            let (rate, burst) = (self.rate_per_sec, self.burst);
            buckets.retain(|_, b| {
                let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
                b.tokens + elapsed * rate < burst
            });
            if buckets.len() >= self.max_keys {
                let fullest = buckets
                    .values()
                    .map(|b| {
                        let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
                        b.tokens + elapsed * rate
                    })
                    .fold(0.0_f64, f64::max);
                tracing::warn!(
                    tracked = buckets.len(),
                    "A rate-limit table is full; refusing new users until a bucket refills."
                );
                return Err(RetryAfter(Duration::from_secs_f64(
                    ((burst - fullest) / rate).clamp(0.0, 1e9),
                )));
            }
        }
        buckets.insert(
            key.to_owned(),
            Bucket {
                tokens: self.burst - 1.0,
                updated: now,
            },
        );
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bucket>> {
        // Each update is a single assignment, so a poisoned lock holds no half-updated bucket.
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why a message body was refused (422), with the rule's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyRefused {
    /// `empty_message`, `message_too_long` or `invalid_message`.
    pub code: &'static str,
    /// The rule.
    pub message: String,
}

/// Checks a message body: not empty or only whitespace (`empty_message`), at most `max_chars`
/// characters (`message_too_long`), and the content rules of [`crate::content`]
/// (`invalid_message`: no control characters, which also keeps NUL out of PostgreSQL text,
/// balanced bidirectional controls, something visible).
pub fn check_body(body: &str, max_chars: usize) -> Result<(), BodyRefused> {
    if body.trim().is_empty() {
        return Err(BodyRefused {
            code: "empty_message",
            message: "the message body is empty or only whitespace".into(),
        });
    }
    let chars = body.chars().count();
    if chars > max_chars {
        return Err(BodyRefused {
            code: "message_too_long",
            message: format!(
                "the message body is {chars} characters long; the limit is {max_chars}"
            ),
        });
    }
    crate::content::check_content(body).map_err(|message| BodyRefused {
        code: "invalid_message",
        message,
    })
}

/// Longest `client_message_id`, in bytes.
pub const CLIENT_MESSAGE_ID_MAX: usize = 64;

/// Checks a `client_message_id`: 1 to 64 printable ASCII characters (a UUID fits).
pub fn check_client_message_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > CLIENT_MESSAGE_ID_MAX {
        return Err(format!(
            "client_message_id must be 1 to {CLIENT_MESSAGE_ID_MAX} characters long"
        ));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "client_message_id may contain only printable ASCII characters without spaces".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let buckets = TokenBuckets::new(2.0, 3, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(buckets.acquire_at("u", t0), Ok(()));
        }
        let refused = buckets.acquire_at("u", t0).expect_err("burst spent");
        assert_eq!(refused.0, Duration::from_millis(500));
        assert_eq!(refused.secs(), 1);
        assert_eq!(buckets.acquire_at("v", t0), Ok(()), "keys are independent");
        let later = t0 + Duration::from_millis(500);
        assert_eq!(buckets.acquire_at("u", later), Ok(()), "one token refilled");
        assert!(buckets.acquire_at("u", later).is_err());
    }

    #[test]
    fn a_refund_gives_a_token_back_but_never_above_the_burst() {
        let buckets = TokenBuckets::new(1.0, 1, 100);
        let t0 = Instant::now();
        buckets.acquire_at("u", t0).expect("first");
        assert!(buckets.acquire_at("u", t0).is_err());
        buckets.refund("u");
        buckets.acquire_at("u", t0).expect("refunded");
        buckets.refund("u");
        buckets.refund("u");
        buckets.acquire_at("u", t0).expect("one");
        assert!(buckets.acquire_at("u", t0).is_err(), "capped at the burst");
    }

    #[test]
    fn per_hour_buckets_wait_minutes() {
        let buckets = TokenBuckets::per_hour(2, 100);
        let t0 = Instant::now();
        buckets.acquire_at("u", t0).expect("1");
        buckets.acquire_at("u", t0).expect("2");
        let refused = buckets.acquire_at("u", t0).expect_err("3");
        assert_eq!(refused.secs(), 1800);
    }

    #[test]
    fn a_full_table_drops_refilled_buckets_then_refuses_new_keys() {
        let buckets = TokenBuckets::new(1.0, 2, 2);
        let t0 = Instant::now();
        buckets.acquire_at("a", t0).expect("a");
        buckets.acquire_at("b", t0).expect("b");
        let refused = buckets.acquire_at("c", t0).expect_err("full");
        assert_eq!(refused.0, Duration::from_secs(1));
        buckets
            .acquire_at("a", t0)
            .expect("tracked keys keep working");
        buckets
            .acquire_at("c", t0 + Duration::from_millis(1500))
            .expect("b refilled and was dropped");
    }

    #[test]
    fn body_rules() {
        assert_eq!(check_body("hi", 10), Ok(()));
        assert_eq!(
            check_body(&"é".repeat(10), 10),
            Ok(()),
            "characters, not bytes"
        );
        for (body, code) in [
            ("", "empty_message"),
            (" \n\t\u{3000}", "empty_message"),
            ("elevenchars", "message_too_long"),
            ("a\0b", "invalid_message"),
            ("\u{200B}\u{200D}", "invalid_message"),
            ("\u{202E}evil", "invalid_message"),
        ] {
            assert_eq!(
                check_body(body, 10).map_err(|r| r.code),
                Err(code),
                "{body:?}"
            );
        }
    }

    #[test]
    fn client_message_id_rules() {
        assert!(check_client_message_id("0f9c-4a1b_x.y:z").is_ok());
        assert!(check_client_message_id(&"a".repeat(64)).is_ok());
        for bad in ["", "has space", "ünï", &"a".repeat(65), "tab\t"] {
            assert!(check_client_message_id(bad).is_err(), "{bad:?}");
        }
    }
}
