//! Chooses `jsonwebtoken`'s crypto backend for the whole process.
//!
//! `jsonwebtoken` picks its backend from its cargo features, and panics at the first signature
//! when both `rust_crypto` (ours) and `aws_lc_rs` are enabled. That happens as soon as one binary
//! also links the Firestore client (its Google auth crate enables `aws_lc_rs`). So this crate
//! installs the pure-Rust provider explicitly, once, before its own first use of `jsonwebtoken`.
//! A runner that links such clients should call [`install_crypto_provider`] first thing in
//! `main`, before another crate can make `jsonwebtoken` settle on its (panicking) default.

use jsonwebtoken::crypto::{rust_crypto, CryptoProvider};
use std::sync::Once;

/// Installs the RustCrypto provider as the process default for `jsonwebtoken`, once. If another
/// provider was installed first it stays (it signs and verifies the same algorithms).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if CryptoProvider::install_default(&rust_crypto::DEFAULT_PROVIDER).is_err() {
            tracing::debug!("A jsonwebtoken crypto provider was already installed; keeping it.");
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn installing_twice_is_harmless() {
        super::install_crypto_provider();
        super::install_crypto_provider();
    }
}
