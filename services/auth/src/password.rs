//! Password rules and argon2id hashing.
//!
//! Rules ([`Passwords::check_rules`]): a length in characters, not only whitespace, and a
//! strength: [zxcvbn](https://docs.rs/zxcvbn) estimates how many guesses the password takes
//! from its dictionaries of common passwords, names and words, keyboard walks, repeats
//! (`aaaaaaaaaaaa`), sequences and dates, with the username as one more dictionary word; a
//! score below `passwords.min_strength` (0-4, default 3: "safely unguessable", about 10^10
//! guesses) is refused with zxcvbn's own warning and suggestions.
//!
//! Hashes use argon2id with the configured OWASP parameters (checked by
//! [`Config::validate`](crate::Config::validate)) and a fresh 16-byte salt, stored as PHC
//! strings, so hashes made with older parameters still verify. Hashing runs on a fixed pool of
//! `max_concurrent_hashes` threads that each reuse one `argon2_memory_kib` buffer
//! ([`crate::hash_pool`]), with at most `max_queued_hashes` waiting: memory stays bounded after
//! a burst of sign-ups, and a burst beyond the queue is answered 503 with `Retry-After`.
//!
//! [`Passwords::verify`] with no stored hash checks the password against a dummy hash made with
//! the same parameters, so a login for a missing user costs the same as a wrong password.
//! Passwords are never logged.

use crate::config::PasswordConfig;
use crate::hash_pool::HashPool;
pub use crate::hash_pool::PoolBusy;
use argon2::password_hash::SaltString;
use argon2::{Argon2, Params, Version};
use std::sync::atomic::{AtomicU64, Ordering};

/// Most hashing threads when `max_concurrent_hashes` is 0: their buffers (4 x 19 MiB on the
/// default parameters) are most of what the service holds, and four hashes at once already sign
/// up or log in dozens of people a second.
pub const DEFAULT_MAX_HASH_THREADS: usize = 4;

/// Hashing failed (a bug or a resource problem, never the caller's fault).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The argon2 parameters were refused.
    #[error("invalid argon2 parameters: {0}")]
    Params(argon2::Error),
    /// argon2 failed.
    #[error("password hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    /// The operating system gave no random bytes for the salt.
    #[error("no randomness for the salt: {0}")]
    Random(getrandom::Error),
    /// Every hashing thread is busy and the queue is full; retrying shortly can help.
    #[error(transparent)]
    Busy(#[from] PoolBusy),
}

/// The password hasher and verifier of the service.
pub struct Passwords {
    pool: HashPool,
    dummy_hash: String,
    verifications: AtomicU64,
    min_chars: usize,
    max_chars: usize,
    min_strength: u8,
}

// Hand-written: the dummy hash is a password hash, and hashes stay out of logs.
impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("min_chars", &self.min_chars)
            .field("max_chars", &self.max_chars)
            .field("min_strength", &self.min_strength)
            .finish_non_exhaustive()
    }
}

impl Passwords {
    /// Builds the hasher, and the dummy hash used for missing users.
    pub async fn new(config: &PasswordConfig) -> Result<Self, PasswordError> {
        let params = Params::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
            None,
        )
        .map_err(PasswordError::Params)?;
        let argon2 = Argon2::new(argon2::Algorithm::Argon2id, Version::V0x13, params);
        let threads = match config.max_concurrent_hashes {
            0 => std::thread::available_parallelism()
                .map_or(2, usize::from)
                .min(DEFAULT_MAX_HASH_THREADS),
            n => n,
        };
        let mut passwords = Self {
            pool: HashPool::start(argon2, threads, config.max_queued_hashes),
            dummy_hash: String::new(),
            verifications: AtomicU64::new(0),
            min_chars: config.min_chars,
            max_chars: config.max_chars,
            min_strength: config.min_strength,
        };
        let mut random = [0u8; 24];
        getrandom::fill(&mut random).map_err(PasswordError::Random)?;
        let dummy_password: String = random.iter().map(|b| format!("{b:02x}")).collect();
        passwords.dummy_hash = passwords.hash(dummy_password).await?;
        Ok(passwords)
    }

    /// Checks the password rules: length in characters, not made only of whitespace, and at
    /// least the configured zxcvbn strength. Prefer [`Passwords::check_rules_for`] with the
    /// username wherever it is known.
    pub fn check_rules(&self, password: &str) -> Result<(), String> {
        self.check_rules_for(password, &[])
    }

    /// [`Passwords::check_rules`], with `user_inputs` (the username) counted as words an
    /// attacker tries first.
    pub fn check_rules_for(&self, password: &str, user_inputs: &[&str]) -> Result<(), String> {
        let chars = password.chars().count();
        if chars < self.min_chars {
            return Err(format!(
                "the password must be at least {} characters long",
                self.min_chars
            ));
        }
        if chars > self.max_chars {
            return Err(format!(
                "the password must be at most {} characters long",
                self.max_chars
            ));
        }
        if password.trim().is_empty() {
            return Err("the password must not be only whitespace".into());
        }
        self.check_strength(password, user_inputs)
    }

    fn check_strength(&self, password: &str, user_inputs: &[&str]) -> Result<(), String> {
        if self.min_strength == 0 {
            return Ok(());
        }
        // zxcvbn reads only the first 100 characters, which bounds its work.
        let estimate = zxcvbn::zxcvbn(password, user_inputs);
        let score = u8::from(estimate.score());
        if score >= self.min_strength {
            return Ok(());
        }
        let mut message = String::from("the password is too easy to guess");
        if let Some(feedback) = estimate.feedback() {
            if let Some(warning) = feedback.warning() {
                message.push_str(&format!(" ({})", warning.to_string().trim_end_matches('.')));
            }
            let tips: Vec<String> = feedback
                .suggestions()
                .iter()
                .map(|s| s.to_string())
                .collect();
            if !tips.is_empty() {
                message.push_str(": ");
                message.push_str(&tips.join(" "));
            }
        }
        if !message.ends_with('.') {
            message.push('.');
        }
        message.push_str(&format!(
            " Its strength is {score} of 4; at least {} is needed. A few uncommon words, or \
             a password manager's random password, pass.",
            self.min_strength
        ));
        Err(message)
    }

    /// Hashes a password with a new salt; returns the PHC string.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(PasswordError::Random)?;
        let salt = SaltString::encode_b64(&salt).map_err(PasswordError::Hash)?;
        self.pool
            .hash(password, salt.as_str().to_owned())
            .await?
            .map_err(PasswordError::Hash)
    }

    /// How many threads hash at once.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Whether `password` matches `stored` (a PHC string). With `None` (no such user) it verifies
    /// against the dummy hash and returns `false`, taking about as long as a real check.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, PasswordError> {
        let exists = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let matches = match self.pool.verify(password, hash).await? {
            Ok(matches) => matches,
            Err(err) => {
                tracing::error!(error = %err, "A stored password hash cannot be parsed.");
                false
            }
        };
        Ok(exists && matches)
    }

    /// How many verifications ran (for metrics, and to check that logins of missing users do
    /// the same work).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_the_configured_cost_and_verify() {
        let passwords = Passwords::new(&PasswordConfig::default())
            .await
            .expect("hasher");
        let hash = passwords
            .hash("correct horse battery".into())
            .await
            .expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(passwords
            .verify("correct horse battery".into(), Some(hash.clone()))
            .await
            .expect("verify"));
        assert!(!passwords
            .verify("wrong horse battery".into(), Some(hash.clone()))
            .await
            .expect("verify"));
        let again = passwords
            .hash("correct horse battery".into())
            .await
            .expect("hash");
        assert_ne!(hash, again, "salts must differ");
    }

    #[tokio::test]
    async fn a_missing_user_still_costs_a_verification() {
        let passwords = Passwords::new(&PasswordConfig::default())
            .await
            .expect("hasher");
        let before = passwords.verifications();
        assert!(!passwords
            .verify("anything at all".into(), None)
            .await
            .expect("verify"));
        assert_eq!(passwords.verifications(), before + 1);
        assert!(passwords.dummy_hash.starts_with("$argon2id$"));
    }

    #[tokio::test]
    async fn rules_count_characters_not_bytes() {
        let passwords = Passwords::new(&PasswordConfig::default())
            .await
            .expect("hasher");
        assert!(passwords.check_rules("short").is_err());
        assert!(passwords.check_rules("ébène çà où Ü").is_ok());
        assert!(passwords.check_rules(&"x".repeat(129)).is_err());
        assert!(passwords.check_rules(&" ".repeat(20)).is_err());
        assert!(passwords.check_rules("twelve chars").is_ok());
    }

    #[tokio::test]
    async fn common_and_trivial_passwords_are_refused_with_a_reason() {
        let passwords = Passwords::new(&PasswordConfig::default())
            .await
            .expect("hasher");
        for weak in [
            "aaaaaaaaaaaa",
            "password1234",
            "123456789012",
            "qwertyuiopasdf",
            "iloveyou1234",
            "abcdefghijkl",
            "passwordpassword",
        ] {
            let message = passwords.check_rules(weak).expect_err(weak);
            assert!(message.contains("too easy to guess"), "{weak}: {message}");
            assert!(
                !message.contains(weak),
                "the password is not echoed: {message}"
            );
        }
        // The username is a word an attacker tries first.
        assert!(passwords
            .check_rules_for("zanzibarquux2031", &["zanzibarquux"])
            .is_err());
    }

    #[tokio::test]
    async fn min_strength_zero_keeps_only_the_length_rules() {
        let config = PasswordConfig {
            min_strength: 0,
            ..PasswordConfig::default()
        };
        let passwords = Passwords::new(&config).await.expect("hasher");
        assert!(passwords.check_rules("aaaaaaaaaaaa").is_ok());
    }

    #[tokio::test]
    async fn debug_shows_no_hash() {
        let passwords = Passwords::new(&PasswordConfig::default())
            .await
            .expect("hasher");
        let text = format!("{passwords:?}");
        assert!(!text.contains("$argon2id$"), "{text}");
        assert!(!text.contains(&passwords.dummy_hash), "{text}");
    }
}
