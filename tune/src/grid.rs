//! The candidate policies: a grid over timeouts, sizes, ages, keys and leading edges, plus the
//! seed's baseline.

use confab_pipeline::{ChatKey, WindowPolicy};
use serde::{Deserialize, Serialize};

/// One policy to evaluate: a key choice and a window policy, with a name for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Short name shown in reports.
    pub name: String,
    /// How messages are grouped.
    pub key: ChatKey,
    /// When groups complete.
    pub policy: WindowPolicy,
}

impl Candidate {
    /// The seed's Camel route: key `from_user-chat_id`, completionSize 10, completionTimeout 3 s.
    pub fn seed_baseline() -> Self {
        Self {
            name: "seed: from_user+chat_id, size 10, timeout 3s".into(),
            key: ChatKey::ChatAndSender,
            policy: WindowPolicy::seed(),
        }
    }

    /// No grouping at all: one write per message (what a naive chat does).
    pub fn per_message() -> Self {
        Self {
            name: "no grouping: one write per message".into(),
            key: ChatKey::Chat,
            policy: WindowPolicy {
                inactivity_timeout_ms: 1,
                max_messages: 1,
                max_bytes: 1024 * 1024,
                max_age_ms: 1,
                leading_edge_idle_ms: 0,
            },
        }
    }
}

/// A grid of policies: every combination of the listed values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Grid {
    /// Inactivity timeouts to try, in ms.
    pub inactivity_timeouts_ms: Vec<u64>,
    /// Maximum group sizes to try.
    pub max_messages: Vec<usize>,
    /// Maximum group ages to try, in ms.
    pub max_ages_ms: Vec<u64>,
    /// Key choices to try.
    pub keys: Vec<ChatKey>,
    /// Leading edges to try, in ms (0: none): the first message after a chat was idle this long
    /// is written at once, alone. A leading edge shorter than a combination's timeout is skipped.
    pub leading_edges_ms: Vec<u64>,
    /// Maximum group size in bytes (one value: Firestore's document limit decides it).
    pub max_bytes: usize,
}

impl Default for Grid {
    fn default() -> Self {
        Self {
            inactivity_timeouts_ms: vec![250, 500, 1_000, 2_000, 3_000, 5_000],
            max_messages: vec![10, 50, 200],
            max_ages_ms: vec![5_000, 15_000, 60_000],
            keys: vec![ChatKey::Chat, ChatKey::ChatAndSender],
            leading_edges_ms: vec![0, 5_000, 15_000],
            max_bytes: 256 * 1024,
        }
    }
}

impl Grid {
    /// Every valid combination (a timeout longer than the age limit, or a leading edge shorter
    /// than the timeout, is skipped), without a leading edge first, then the seed's baseline and
    /// the no-grouping reference.
    pub fn candidates(&self) -> Vec<Candidate> {
        let mut out = Vec::new();
        for &lead in &self.leading_edges_ms {
            for &key in &self.keys {
                for &timeout in &self.inactivity_timeouts_ms {
                    for &size in &self.max_messages {
                        for &age in &self.max_ages_ms {
                            let policy = WindowPolicy {
                                inactivity_timeout_ms: timeout,
                                max_messages: size,
                                max_bytes: self.max_bytes,
                                max_age_ms: age,
                                leading_edge_idle_ms: lead,
                            };
                            if policy.validate().is_err() {
                                continue;
                            }
                            let mut name = format!(
                                "{}: timeout {}, size {size}, age {}",
                                key.as_str(),
                                ms_text(timeout),
                                ms_text(age)
                            );
                            if lead != 0 {
                                name.push_str(&format!(", lead {}", ms_text(lead)));
                            }
                            out.push(Candidate { name, key, policy });
                        }
                    }
                }
            }
        }
        out.push(Candidate::seed_baseline());
        out.push(Candidate::per_message());
        out
    }
}

/// Milliseconds as short text: 250ms, 3s, 1.5s, 2m.
pub fn ms_text(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{:.1}s", ms as f64 / 1_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_skips_invalid_combinations_and_includes_the_baselines() {
        let grid = Grid {
            inactivity_timeouts_ms: vec![1_000, 10_000],
            max_messages: vec![10],
            max_ages_ms: vec![5_000],
            keys: vec![ChatKey::Chat],
            leading_edges_ms: vec![0, 500, 5_000],
            max_bytes: 1_000,
        };
        let c = grid.candidates();
        assert_eq!(c.len(), 4, "{c:?}");
        assert_eq!(c[0].name, "chat: timeout 1s, size 10, age 5s");
        assert_eq!(c[1].name, "chat: timeout 1s, size 10, age 5s, lead 5s");
        assert_eq!(c[1].policy.leading_edge_idle_ms, 5_000);
        assert_eq!(c[2], Candidate::seed_baseline());
        assert_eq!(ms_text(1_500), "1.5s");
    }
}
