//! Chat traffic to tune against: a seeded synthetic generator, or messages read from JSON lines.
//!
//! The generator models what makes grouping pay off or hurt: conversations come in sessions whose
//! start rate follows a diurnal curve; chats differ in popularity (Zipf); within a session the two
//! members take turns, and the gaps between messages are heavy-tailed (log-normal), so most follow
//! quickly and some come minutes later; a sender often fires a short burst of messages.

use std::io::BufRead;

use confab_pipeline::chat::{iso_from_ms, timeuuid_from_ms};
use confab_pipeline::{Aggregatable, ChatMessage};
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal, Zipf};
use serde::{Deserialize, Serialize};

/// The shape of a synthetic workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadSpec {
    /// Seed of the random generator: the same spec always yields the same messages.
    pub seed: u64,
    /// About how many messages to generate (sessions are whole, so slightly more or fewer).
    pub messages: usize,
    /// Number of users.
    pub users: usize,
    /// Number of 1:1 chats (random pairs of users).
    pub chats: usize,
    /// Length of the simulated period, in ms.
    pub duration_ms: u64,
    /// Start of the simulated period, in ms since the Unix epoch.
    pub start_ms: u64,
    /// How much the session rate swings over a day: 0 flat, 0.9 a strong evening peak.
    pub diurnal_amplitude: f64,
    /// Mean number of messages in a conversation session.
    pub mean_session_messages: f64,
    /// Probability that the next message comes from the other member (a reply).
    pub reply_probability: f64,
    /// Median gap between consecutive messages of a session, in ms.
    pub median_gap_ms: f64,
    /// Spread of the log-normal gap distribution (its sigma): higher means heavier tail.
    pub gap_sigma: f64,
    /// Zipf exponent of chat popularity (0 uniform; 1 a few chats are much busier).
    pub chat_popularity_exponent: f64,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        Self {
            seed: 42,
            messages: 200_000,
            users: 2_000,
            chats: 5_000,
            duration_ms: 24 * 3_600_000,
            start_ms: 1_767_225_600_000, // 2026-01-01T00:00:00Z
            diurnal_amplitude: 0.7,
            mean_session_messages: 12.0,
            reply_probability: 0.6,
            median_gap_ms: 4_000.0,
            gap_sigma: 1.4,
            chat_popularity_exponent: 1.0,
        }
    }
}

/// Why a workload could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkloadError {
    /// A parameter is out of range.
    #[error("workload parameter `{0}`: {1}")]
    Invalid(&'static str, String),
    /// A line of a JSON-lines file is not a chat message.
    #[error("line {line}: {reason}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// Why it was rejected.
        reason: String,
    },
    /// The file could not be read.
    #[error("reading messages: {0}")]
    Io(#[from] std::io::Error),
}

impl WorkloadSpec {
    /// Checks every parameter can produce traffic.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        let bad = |name, why: &str| Err(WorkloadError::Invalid(name, why.to_string()));
        if self.users < 2 {
            return bad("users", "at least 2 users are needed for a chat");
        }
        if self.chats == 0 {
            return bad("chats", "must be at least 1");
        }
        if self.duration_ms == 0 {
            return bad("duration_ms", "must be positive");
        }
        if !(0.0..1.0).contains(&self.diurnal_amplitude) {
            return bad("diurnal_amplitude", "must be in [0, 1)");
        }
        if self.mean_session_messages.is_nan() || self.mean_session_messages < 1.0 {
            return bad("mean_session_messages", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.reply_probability) {
            return bad("reply_probability", "must be in [0, 1]");
        }
        if self.median_gap_ms.is_nan()
            || self.median_gap_ms <= 0.0
            || self.gap_sigma.is_nan()
            || self.gap_sigma < 0.0
        {
            return bad(
                "median_gap_ms",
                "median must be positive and sigma non-negative",
            );
        }
        if self.chat_popularity_exponent.is_nan() || self.chat_popularity_exponent < 0.0 {
            return bad("chat_popularity_exponent", "must be non-negative");
        }
        Ok(())
    }
}

/// Generates the workload `spec` describes, sorted by time (ties in generation order).
pub fn generate(spec: &WorkloadSpec) -> Result<Vec<ChatMessage>, WorkloadError> {
    spec.validate()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(spec.seed);
    let pairs: Vec<(usize, usize)> = (0..spec.chats)
        .map(|_| {
            let a = rng.random_range(0..spec.users);
            let mut b = rng.random_range(0..spec.users - 1);
            if b >= a {
                b += 1;
            }
            (a, b)
        })
        .collect();
    let popularity = Zipf::new(spec.chats as f64, spec.chat_popularity_exponent.max(1e-9))
        .map_err(|e| WorkloadError::Invalid("chat_popularity_exponent", e.to_string()))?;
    let gaps = LogNormal::new(spec.median_gap_ms.ln(), spec.gap_sigma)
        .map_err(|e| WorkloadError::Invalid("gap_sigma", e.to_string()))?;
    let sessions = (spec.messages as f64 / spec.mean_session_messages).ceil() as usize;
    let continue_probability = 1.0 - 1.0 / spec.mean_session_messages;
    let mut raw: Vec<(u64, usize, bool)> = Vec::with_capacity(spec.messages + 64);
    for _ in 0..sessions {
        let start = diurnal_time(&mut rng, spec);
        let chat = (popularity.sample(&mut rng) as usize)
            .saturating_sub(1)
            .min(spec.chats - 1);
        let mut sender_is_first = rng.random_bool(0.5);
        let mut t = start;
        loop {
            raw.push((t, chat, sender_is_first));
            if !rng.random_bool(continue_probability) {
                break;
            }
            if rng.random_bool(spec.reply_probability) {
                sender_is_first = !sender_is_first;
                t += gaps.sample(&mut rng) as u64;
            } else {
                // The same sender again: usually a quick follow-up.
                t += (gaps.sample(&mut rng) / 4.0) as u64;
            }
        }
    }
    raw.sort_by_key(|(t, _, _)| *t);
    let mut messages = Vec::with_capacity(raw.len());
    for (i, (t, chat, first)) in raw.into_iter().enumerate() {
        let (a, b) = pairs[chat];
        let (from, to) = if first { (a, b) } else { (b, a) };
        messages.push(ChatMessage {
            message_id: format!("msg-{i:08}").into(),
            chat_id: format!("chat-{chat:06}").into(),
            from_user: format!("user-{from:06}").into(),
            to_user: format!("user-{to:06}").into(),
            body: "x".repeat(24 + i % 40).into(),
            time: timeuuid_from_ms(t, (i % 10_000) as u16, [0x0c, 0x0f, 0x0a, 0x0b, 0, 1]),
            time_iso: iso_from_ms(t).into(),
        });
    }
    Ok(messages)
}

/// A session start time: uniform over the period, thinned by the diurnal curve (peak at 20:00).
fn diurnal_time(rng: &mut impl rand::Rng, spec: &WorkloadSpec) -> u64 {
    const DAY: f64 = 86_400_000.0;
    loop {
        let offset = rng.random_range(0..spec.duration_ms);
        let t = spec.start_ms + offset;
        let phase = ((t as f64 % DAY) / DAY - 20.0 / 24.0) * std::f64::consts::TAU;
        let rate = 1.0 + spec.diurnal_amplitude * phase.cos();
        if rng.random_bool((rate / (1.0 + spec.diurnal_amplitude)).clamp(0.0, 1.0)) {
            return t;
        }
    }
}

/// Reads chat messages, one JSON object per line (blank lines skipped), and sorts them by time.
pub fn read_jsonl(reader: impl BufRead) -> Result<Vec<ChatMessage>, WorkloadError> {
    let mut messages = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let m = ChatMessage::decode(line.as_bytes(), usize::MAX).map_err(|e| {
            WorkloadError::BadLine {
                line: i + 1,
                reason: e.to_string(),
            }
        })?;
        messages.push(m);
    }
    messages.sort_by_key(|m| m.event_time_ms());
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_traffic_and_times_are_sorted() {
        let spec = WorkloadSpec {
            messages: 2_000,
            ..WorkloadSpec::default()
        };
        let a = generate(&spec).expect("valid");
        let b = generate(&spec).expect("valid");
        assert_eq!(a, b);
        assert!(a.len() > 1_500 && a.len() < 2_600, "{}", a.len());
        assert!(a
            .windows(2)
            .all(|w| w[0].event_time_ms() <= w[1].event_time_ms()));
        let other = generate(&WorkloadSpec { seed: 7, ..spec }).expect("valid");
        assert_ne!(a, other);
    }

    #[test]
    fn senders_take_turns_and_stay_within_their_chat() {
        let spec = WorkloadSpec {
            messages: 5_000,
            reply_probability: 0.9,
            ..WorkloadSpec::default()
        };
        let messages = generate(&spec).expect("valid");
        let mut last_sender: std::collections::HashMap<&str, &str> = Default::default();
        let (mut switches, mut same) = (0, 0);
        for m in &messages {
            assert_ne!(m.from_user, m.to_user);
            if let Some(prev) = last_sender.insert(&m.chat_id, &m.from_user) {
                if prev == m.from_user {
                    same += 1
                } else {
                    switches += 1
                }
            }
        }
        assert!(
            switches > same * 2,
            "replies dominate: {switches} switches, {same} repeats"
        );
    }

    #[test]
    fn invalid_specs_name_the_parameter() {
        let err = generate(&WorkloadSpec {
            users: 1,
            ..WorkloadSpec::default()
        })
        .expect_err("invalid");
        assert!(err.to_string().contains("users"));
    }

    #[test]
    fn jsonl_lines_that_are_not_messages_are_reported_by_line_number() {
        let good = String::from_utf8(
            generate(&WorkloadSpec {
                messages: 3,
                ..WorkloadSpec::default()
            })
            .expect("valid")[0]
                .encode(),
        )
        .expect("utf8");
        let text = format!("{good}\n\n{{\"chat_id\": 1}}\n");
        let err = read_jsonl(text.as_bytes()).expect_err("bad line");
        assert!(err.to_string().starts_with("line 3:"), "{err}");
        assert_eq!(
            read_jsonl(format!("{good}\n").as_bytes())
                .expect("ok")
                .len(),
            1
        );
    }
}
