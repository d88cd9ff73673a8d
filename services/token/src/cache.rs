//! [`VerifiedTokens`]: the tokens a verifier has already checked, so that a client sending many
//! requests with one access token pays for its signature once (an Ed25519 check is most of
//! what verifying costs).
//!
//! What a cached entry may skip, and what it may not:
//! - It is found by the SHA-256 of the whole token, never by a prefix or a shorter hash: only
//!   the very token that was verified matches, and no token text is kept.
//! - Only tokens that passed every check are stored; a refused token is checked in full each
//!   time it comes.
//! - The time claims are checked again on every use (`exp`, `nbf`, `iat` against the clock,
//!   with the verifier's leeway): a cached token expires exactly as an uncached one does.
//! - Revocation is not cached: the verifier checks the session on every use.
//! - Entries remember the key set they were verified under; replacing the keys (a re-read
//!   JWKS file) makes every earlier entry miss, so a key taken out stops working at once.
//!
//! Bounded: two generations of at most `per_generation` entries each
//! ([`TwoGenerations`](crate::generations::TwoGenerations)), so tokens in use stay while tokens
//! no longer presented age out.

use crate::generations::TwoGenerations;
use crate::Claims;

/// The SHA-256 of a token's text.
pub(crate) type Digest = [u8; 32];

/// A verified token: its claims, and the key set it was verified under.
#[derive(Clone)]
struct Entry {
    claims: Claims,
    keys: u64,
}

/// Tokens already verified, by digest. See the module documentation for what it may skip.
pub(crate) struct VerifiedTokens {
    entries: TwoGenerations<Digest, Entry>,
}

impl VerifiedTokens {
    /// A cache holding at most `2 * per_generation` tokens.
    pub(crate) fn new(per_generation: usize) -> Self {
        Self {
            entries: TwoGenerations::new(per_generation),
        }
    }

    /// The claims of the token with this digest, if it was verified under key set `keys`.
    pub(crate) fn get(&self, digest: &Digest, keys: u64) -> Option<Claims> {
        let entry = self.entries.get(*digest)?;
        (entry.keys == keys).then_some(entry.claims)
    }

    /// Remembers that the token with this digest was verified under key set `keys`.
    pub(crate) fn insert(&self, digest: Digest, claims: Claims, keys: u64) {
        self.entries.insert(digest, Entry { claims, keys });
    }

    /// Tokens held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn claims(exp: u64) -> Claims {
        let id = Uuid::new_v4();
        Claims {
            sub: id.to_string(),
            user_id: id,
            username: "ann".into(),
            iss: "i".into(),
            aud: "a".into(),
            iat: 0,
            nbf: 0,
            exp,
            jti: Uuid::new_v4(),
            sid: None,
        }
    }

    #[test]
    fn entries_match_their_digest_and_key_set_only() {
        let cache = VerifiedTokens::new(4);
        cache.insert([1; 32], claims(10), 0);
        assert_eq!(cache.get(&[1; 32], 0).map(|c| c.exp), Some(10));
        assert!(cache.get(&[2; 32], 0).is_none());
        assert!(cache.get(&[1; 32], 1).is_none(), "the keys were replaced");
    }

    #[test]
    fn it_holds_at_most_two_generations_and_keeps_what_is_used() {
        let cache = VerifiedTokens::new(2);
        for n in 0..10_u8 {
            cache.insert([n; 32], claims(u64::from(n)), 0);
            // Token 0 is presented all along: it survives every turn of the generations.
            assert!(cache.get(&[0; 32], 0).is_some(), "after {n}");
            assert!(cache.len() <= 4);
        }
        assert!(cache.get(&[1; 32], 0).is_none(), "unused, aged out");
    }
}
