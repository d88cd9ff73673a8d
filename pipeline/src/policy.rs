//! The window policy: when an open group completes. Whichever limit is reached first wins:
//! inactivity (no new record for the key), a record count, a byte size, an age since the group's
//! first record, or the end of the input. An optional leading edge writes the first record after
//! a pause at once, alone, so that a conversation's first line is not held back by grouping.

use serde::{Deserialize, Serialize};

/// When a group completes. Times are event-time milliseconds.
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
