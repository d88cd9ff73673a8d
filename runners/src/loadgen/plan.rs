//! What the load generator will do, decided before it starts: who the users are, which pairs of
//! them chat, and which chat and sender each message goes to. Everything follows from the seed,
//! so two runs with the same options send the same traffic.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The username of user `i` (`loadgen-00042`): stable across runs, so a second run logs the
/// same users in instead of creating new ones.
pub(crate) fn username(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:05}")
}

/// `chats` distinct pairs of users out of `users`, each pair once, the first member the one who
/// creates the chat. Users take turns creating, so each creates about `chats / users` chats
/// (the chat service limits new chats per user per hour).
pub(crate) fn pairs(users: usize, chats: usize, seed: u64) -> Result<Vec<(usize, usize)>, String> {
    let possible = users.saturating_mul(users.saturating_sub(1)) / 2;
    if users < 2 {
        return Err("--users must be at least 2 (a chat is between two users)".into());
    }
    if chats == 0 || chats > possible {
        return Err(format!(
            "--chats {chats}: {users} users make 1 to {possible} distinct pairs; raise --users or lower --chats"
        ));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(chats);
    // Offsets walk outwards from neighbours (1, 2, ...), so the pairs are distinct and every
    // user is in about the same number of chats; the seed only decides who is next to whom.
    let mut order: Vec<usize> = (0..users).collect();
    shuffle(&mut order, &mut rng);
    'outer: for offset in 1..users {
        for (a, &x) in order.iter().enumerate() {
            let y = order[(a + offset) % users];
            if seen.insert((x.min(y), x.max(y))) {
                out.push((x, y));
                if out.len() == chats {
                    break 'outer;
                }
            }
        }
    }
    Ok(out)
}

/// Fisher-Yates with the seeded generator.
fn shuffle<T>(items: &mut [T], rng: &mut StdRng) {
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
    }
}

/// The chat and sender of each message, in order: every round visits each chat once, in a
/// seeded order that changes from round to round, and a chat's members take turns sending. So
/// each chat gets `rate / chats` messages per second and each member half of that.
pub(crate) struct Traffic {
    rng: StdRng,
    order: Vec<usize>,
    next: usize,
    turns: Vec<u8>,
}

impl Traffic {
    pub(crate) fn new(chats: usize, seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed ^ 0x5eed_c4a7),
            order: (0..chats).collect(),
            // At the end of a round: the first message starts (and shuffles) a new one.
            next: chats,
            turns: vec![0; chats],
        }
    }

    /// The next message's chat (an index into the plan's chats) and which member sends (0 or
    /// 1).
    pub(crate) fn next_message(&mut self) -> (usize, usize) {
        if self.next == self.order.len() {
            shuffle(&mut self.order, &mut self.rng);
            self.next = 0;
        }
        let chat = self.order[self.next];
        self.next += 1;
        let sender = usize::from(self.turns[chat]);
        self.turns[chat] ^= 1;
        (chat, sender)
    }
}

/// The highest send rate any one user gets (messages per second) when `rate` is spread evenly
/// over the chats of `pairs` and each chat's members take turns.
pub(crate) fn max_user_rate(pairs: &[(usize, usize)], users: usize, rate: f64) -> f64 {
    let per_chat_member = rate / pairs.len().max(1) as f64 / 2.0;
    let mut chats_of = vec![0usize; users];
    for &(a, b) in pairs {
        chats_of[a] += 1;
        chats_of[b] += 1;
    }
    chats_of.into_iter().max().unwrap_or(0) as f64 * per_chat_member
}

/// A message body of `bytes` bytes (at least its prefix), its padding seeded by `n`.
pub(crate) fn body(n: u64, bytes: usize) -> String {
    let mut text = format!("loadgen message {n} ");
    let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while text.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push(char::from(b'a' + (x % 26) as u8));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_distinct_spread_evenly_and_seeded() {
        let p = pairs(10, 30, 7).expect("possible");
        assert_eq!(p.len(), 30);
        let distinct: std::collections::HashSet<_> =
            p.iter().map(|&(a, b)| (a.min(b), a.max(b))).collect();
        assert_eq!(distinct.len(), 30);
        assert!(p.iter().all(|&(a, b)| a != b && a < 10 && b < 10));
        let mut created = [0; 10];
        for &(a, _) in &p {
            created[a] += 1;
        }
        assert!(created.iter().all(|&n| n == 3), "{created:?}");
        assert_eq!(p, pairs(10, 30, 7).expect("same seed"));
        assert_ne!(p, pairs(10, 30, 8).expect("other seed"));
        // Every pair of 10 users: 45.
        assert_eq!(pairs(10, 45, 1).expect("all pairs").len(), 45);
        assert!(pairs(10, 46, 1).is_err());
        assert!(pairs(1, 1, 1).is_err());
        assert!(pairs(10, 0, 1).is_err());
    }

    #[test]
    fn traffic_visits_every_chat_once_a_round_and_members_take_turns() {
        let mut traffic = Traffic::new(5, 3);
        let mut counts = [[0; 2]; 5];
        for round in 0..4 {
            let mut visited: Vec<usize> = (0..5).map(|_| traffic.next_message().0).collect();
            visited.sort_unstable();
            assert_eq!(visited, [0, 1, 2, 3, 4], "round {round}");
        }
        let mut traffic = Traffic::new(5, 3);
        for _ in 0..20 {
            let (chat, sender) = traffic.next_message();
            counts[chat][sender] += 1;
        }
        assert!(counts.iter().all(|c| *c == [2, 2]), "{counts:?}");
    }

    #[test]
    fn the_busiest_user_rate_counts_their_chats() {
        // User 0 is in two of the three chats: 2 chats x (30/3/2) = 10 messages/s.
        let rate = max_user_rate(&[(0, 1), (0, 2), (1, 2)], 3, 30.0);
        assert!((rate - 10.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn bodies_have_the_asked_size_and_usernames_are_valid() {
        assert_eq!(body(7, 64).len(), 64);
        assert!(body(7, 0).starts_with("loadgen message 7"));
        assert_ne!(body(7, 64), body(8, 64));
        assert_eq!(username("loadgen-", 42), "loadgen-00042");
    }
}
