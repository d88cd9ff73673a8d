//! Password rules and argon2id hashing.
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
#[derive(Debug)]
pub struct Passwords {
    pool: HashPool,
    dummy_hash: String,
    verifications: AtomicU64,
    min_chars: usize,
    max_chars: usize,
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
        };
        let mut random = [0u8; 24];
        getrandom::fill(&mut random).map_err(PasswordError::Random)?;
        let dummy_password: String = random.iter().map(|b| format!("{b:02x}")).collect();
        passwords.dummy_hash = passwords.hash(dummy_password).await?;
        Ok(passwords)
    }

    /// Checks the password rules: length in characters, and not made only of whitespace.
    pub fn check_rules(&self, password: &str) -> Result<(), String> {
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
        Ok(())
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
        assert!(passwords.check_rules(&"é".repeat(12)).is_ok());
        assert!(passwords.check_rules(&"x".repeat(129)).is_err());
        assert!(passwords.check_rules(&" ".repeat(20)).is_err());
        assert!(passwords.check_rules("twelve chars").is_ok());
    }
}
