//! The window policy: when an open group completes. Whichever limit is reached first wins:
//! inactivity (no new record for the key), a record count, a byte size, an age since the group's
//! first record, or the end of the input. An optional leading edge writes the first record after
//! a pause at once, alone, so that a conversation's first line is not held back by grouping.

use std::num::NonZeroUsize;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When a group completes. Times are event-time milliseconds.
///
/// Build one from [`Duration`]s with [`WindowPolicy::after_inactivity`], which starts with no
/// limit but the inactivity timeout, or fill the fields (each has its unit in its name) over
/// [`WindowPolicy::default`]. "No limit" is spelled [`WindowPolicy::NO_COUNT_LIMIT`] and
/// [`WindowPolicy::NO_AGE_LIMIT`].
///
/// ```
/// use std::num::NonZeroUsize;
/// use std::time::Duration;
/// use confab_pipeline::WindowPolicy;
///
/// let policy = WindowPolicy::after_inactivity(Duration::from_secs(2))
///     .max_records(NonZeroUsize::new(50).expect("not zero"));
/// assert_eq!(policy.inactivity_timeout_ms, 2_000);
/// assert_eq!(policy.max_age_ms, WindowPolicy::NO_AGE_LIMIT);
/// assert_eq!(policy.validate(), Ok(()));
/// ```
///
/// Under a [`Pipeline`](crate::Pipeline), one more thing closes groups: commit epochs
/// ([`RuntimeConfig::commit_epoch_ms`](crate::RuntimeConfig::commit_epoch_ms), 60 s of event
/// time by default). No group spans a multiple of the epoch, so a key whose records run across
/// one is split there (reason [`Epoch`](crate::CompletionReason::Epoch)). That is what lets
/// commits move through a busy log whose keys' groups all overlap; the price is at most one
/// extra group per key per epoch. Set it to 0 when every key pauses often enough for the log
/// to have points no group straddles (or for a finite input), and groups then follow this policy
/// alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowPolicy {
    /// A group completes when its key has had no record for this long (Camel's
    /// `completionTimeout`). A record joins the open group only if its time is before
    /// `last record time + inactivity_timeout_ms`.
    pub inactivity_timeout_ms: u64,
    /// A group completes as soon as it holds this many records (Camel's `completionSize`).
    pub max_messages: usize,
    /// A group completes before it would exceed this many bytes of records. Firestore documents
    /// are limited to 1 MiB, so keep this well below that.
    pub max_bytes: usize,
    /// A group completes once this long has passed since its first record, so that a busy chat
    /// still flushes. Must be at least `inactivity_timeout_ms`.
    pub max_age_ms: u64,
    /// The leading edge (0, the default, turns it off): a record whose key had no record for at
    /// least this long (event time), or none yet, completes at once as a group of one (reason
    /// `leading_edge`), and the key's next records are grouped as usual. A conversation's first
    /// line is then written without waiting, and its bursts still share documents. Must be 0
    /// or at least `inactivity_timeout_ms`: a key whose group is still open is not idle.
    pub leading_edge_idle_ms: u64,
}

impl Default for WindowPolicy {
    fn default() -> Self {
        Self {
            inactivity_timeout_ms: 3_000,
            max_messages: 100,
            max_bytes: 256 * 1024,
            max_age_ms: 10_000,
            leading_edge_idle_ms: 0,
        }
    }
}

/// A window policy that cannot work, with what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A limit is zero, so no group could ever hold a record.
    #[error("window policy `{0}` must be greater than 0")]
    Zero(&'static str),
    /// The inactivity timeout can never fire because the age limit always fires first.
    #[error(
        "window policy `inactivity_timeout_ms` ({inactivity}) must not exceed `max_age_ms` \
         ({max_age}): raise max_age_ms or lower inactivity_timeout_ms"
    )]
    TimeoutOverAge {
        /// The configured inactivity timeout.
        inactivity: u64,
        /// The configured maximum age.
        max_age: u64,
    },
    /// The leading edge would fire while the key's group is still open.
    #[error(
        "window policy `leading_edge_idle_ms` ({idle}) must be 0 (off) or at least \
         `inactivity_timeout_ms` ({inactivity}): a key whose group is still open is not idle"
    )]
    LeadingEdgeBelowTimeout {
        /// The configured leading-edge pause.
        idle: u64,
        /// The configured inactivity timeout.
        inactivity: u64,
    },
}

impl WindowPolicy {
    /// `max_messages` and `max_bytes` meaning "no limit". (The largest value a TOML or JSON
    /// config can write back, like [`WindowPolicy::NO_AGE_LIMIT`].)
    pub const NO_COUNT_LIMIT: usize = i64::MAX as usize;
    /// `max_age_ms` meaning "no limit": groups complete by inactivity, count or size only.
    /// (About 292 million years: the largest value a TOML config can hold.)
    pub const NO_AGE_LIMIT: u64 = i64::MAX as u64;

    /// A group completes after `timeout` without a record for its key, and by nothing else
    /// until a limit is added with the methods below (no count, size or age limit).
    pub fn after_inactivity(timeout: Duration) -> Self {
        Self {
            inactivity_timeout_ms: millis(timeout),
            max_messages: Self::NO_COUNT_LIMIT,
            max_bytes: Self::NO_COUNT_LIMIT,
            max_age_ms: Self::NO_AGE_LIMIT,
            leading_edge_idle_ms: 0,
        }
    }

    /// A group also completes once it holds `records` records.
    pub fn max_records(self, records: NonZeroUsize) -> Self {
        Self {
            max_messages: records.get(),
            ..self
        }
    }

    /// A group also completes before its records would exceed `bytes` bytes.
    pub fn max_bytes(self, bytes: NonZeroUsize) -> Self {
        Self {
            max_bytes: bytes.get(),
            ..self
        }
    }

    /// A group also completes once `age` has passed since its first record (event time), so a
    /// key that never pauses still flushes. Must be at least the inactivity timeout.
    pub fn max_age(self, age: Duration) -> Self {
        Self {
            max_age_ms: millis(age),
            ..self
        }
    }

    /// Writes a record alone, at once, when its key had no record for `idle` (see
    /// `leading_edge_idle_ms`). Must be at least the inactivity timeout.
    pub fn leading_edge(self, idle: Duration) -> Self {
        Self {
            leading_edge_idle_ms: millis(idle),
            ..self
        }
    }

    /// The seed's Camel route: 10 messages or 3 s of inactivity, no age or size limit to speak of.
    pub fn seed() -> Self {
        Self {
            inactivity_timeout_ms: 3_000,
            max_messages: 10,
            max_bytes: 1024 * 1024,
            max_age_ms: u64::MAX / 4,
            leading_edge_idle_ms: 0,
        }
    }

    /// Checks that every limit can be reached.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.inactivity_timeout_ms == 0 {
            return Err(PolicyError::Zero("inactivity_timeout_ms"));
        }
        if self.max_messages == 0 {
            return Err(PolicyError::Zero("max_messages"));
        }
        if self.max_bytes == 0 {
            return Err(PolicyError::Zero("max_bytes"));
        }
        if self.max_age_ms == 0 {
            return Err(PolicyError::Zero("max_age_ms"));
        }
        if self.inactivity_timeout_ms > self.max_age_ms {
            return Err(PolicyError::TimeoutOverAge {
                inactivity: self.inactivity_timeout_ms,
                max_age: self.max_age_ms,
            });
        }
        if self.leading_edge_idle_ms != 0 && self.leading_edge_idle_ms < self.inactivity_timeout_ms
        {
            return Err(PolicyError::LeadingEdgeBelowTimeout {
                idle: self.leading_edge_idle_ms,
                inactivity: self.inactivity_timeout_ms,
            });
        }
        Ok(())
    }
}

/// `d` in whole milliseconds, at most [`WindowPolicy::NO_AGE_LIMIT`] (no limit).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis())
        .unwrap_or(u64::MAX)
        .min(WindowPolicy::NO_AGE_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_seed_policy_are_valid() {
        assert_eq!(WindowPolicy::default().validate(), Ok(()));
        assert_eq!(WindowPolicy::seed().validate(), Ok(()));
    }

    #[test]
    fn impossible_policies_are_rejected_with_the_field_to_fix() {
        let p = WindowPolicy::default();
        let zero_size = WindowPolicy {
            max_messages: 0,
            ..p
        };
        assert!(zero_size
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max_messages"));
        let zero_timeout = WindowPolicy {
            inactivity_timeout_ms: 0,
            ..p
        };
        assert!(zero_timeout
            .validate()
            .unwrap_err()
            .to_string()
            .contains("inactivity"));
        let over = WindowPolicy {
            inactivity_timeout_ms: 20_000,
            max_age_ms: 10_000,
            ..p
        };
        assert!(over
            .validate()
            .unwrap_err()
            .to_string()
            .contains("raise max_age_ms"));
        let short_edge = WindowPolicy {
            leading_edge_idle_ms: 1_000,
            ..p
        };
        assert!(short_edge
            .validate()
            .unwrap_err()
            .to_string()
            .contains("leading_edge_idle_ms"));
        let edge = WindowPolicy {
            leading_edge_idle_ms: p.inactivity_timeout_ms,
            ..p
        };
        assert_eq!(edge.validate(), Ok(()));
    }
}
