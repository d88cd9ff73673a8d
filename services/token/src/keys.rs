//! Key ids and public JWKs, computed the same way by the signer and by every verifier.
//!
//! A key's `kid` is its RFC 7638 thumbprint (SHA-256, base64url), so a verifier given only the
//! public key (or the HS256 secret) derives the same `kid` the signer put in the token header,
//! and rotating to a new key changes the `kid` by itself.

use crate::KeyError;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{DecodingKey, EncodingKey};

/// The shortest HS256 secret accepted: 256 bits, the output size of SHA-256 (RFC 7518 §3.2).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// Turns a public Ed25519 JWK into the form confab publishes: `kid` set to its thumbprint,
/// `use: sig`, `alg: EdDSA`. Refuses anything but an Ed25519 key, and private material.
pub fn publishable_jwk(mut jwk: Jwk) -> Result<Jwk, KeyError> {
    crate::install_crypto_provider();
    match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(params)
            if params.curve == jsonwebtoken::jwk::EllipticCurve::Ed25519 => {}
        _ => {
            return Err(KeyError::Invalid {
                what: "JWK".into(),
                reason: "only Ed25519 (kty OKP, crv Ed25519) public keys are published".into(),
            })
        }
    }
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|err| KeyError::Invalid {
            what: "JWK".into(),
            reason: format!("cannot compute its thumbprint: {err}"),
        })?;
    jwk.common.key_id = Some(kid);
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(KeyAlgorithm::EdDSA);
    Ok(jwk)
}

/// The public JWK of an Ed25519 private key (PKCS#8), ready to publish.
pub(crate) fn public_jwk_of_private(key: &EncodingKey) -> Result<Jwk, KeyError> {
    crate::install_crypto_provider();
    let jwk = Jwk::from_encoding_key(key, jsonwebtoken::Algorithm::EdDSA).map_err(|err| {
        KeyError::Invalid {
            what: "Ed25519 private key".into(),
            reason: err.to_string(),
        }
    })?;
    publishable_jwk(jwk)
}

/// The `kid` of an HS256 secret: the RFC 7638 thumbprint of the symmetric JWK. Safe to put in a
/// token header: it is a SHA-256 of a secret of at least 256 bits, and the token's own HMAC
/// already depends on the same secret.
pub fn hs256_key_id(secret: &[u8]) -> Result<String, KeyError> {
    crate::install_crypto_provider();
    check_hs256_secret(secret)?;
    let jwk = Jwk::from_decoding_key(
        &DecodingKey::from_secret(secret),
        Some(jsonwebtoken::Algorithm::HS256),
    )
    .map_err(|err| KeyError::Invalid {
        what: "HS256 secret".into(),
        reason: err.to_string(),
    })?;
    jwk.thumbprint(ThumbprintHash::SHA256)
        .map_err(|err| KeyError::Invalid {
            what: "HS256 secret".into(),
            reason: err.to_string(),
        })
}

/// Refuses HS256 secrets shorter than [`MIN_HS256_SECRET_BYTES`].
pub(crate) fn check_hs256_secret(secret: &[u8]) -> Result<(), KeyError> {
    if secret.len() < MIN_HS256_SECRET_BYTES {
        return Err(KeyError::Invalid {
            what: "HS256 secret".into(),
            reason: format!(
                "it is {} bytes long; use at least {MIN_HS256_SECRET_BYTES} bytes of random data \
                 (e.g. `openssl rand -base64 32`)",
                secret.len()
            ),
        });
    }
    Ok(())
}

/// An Ed25519 private key as PKCS#8 DER, from its 32-byte seed (RFC 8410: a fixed 16-byte
/// prefix, then the seed). Used by the signer to load or generate keys without a PEM library.
pub fn ed25519_pkcs8_from_seed(seed: &[u8; 32]) -> Vec<u8> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = Vec::with_capacity(48);
    der.extend_from_slice(&PREFIX);
    der.extend_from_slice(seed);
    der
}

/// The public JWK (with `kid`) of an Ed25519 private key given as its 32-byte seed.
pub fn ed25519_public_jwk_from_seed(seed: &[u8; 32]) -> Result<Jwk, KeyError> {
    public_jwk_of_private(&EncodingKey::from_ed_der(&ed25519_pkcs8_from_seed(seed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_hs256_secrets_are_refused() {
        assert!(hs256_key_id(&[7u8; 31]).is_err());
        assert!(hs256_key_id(&[7u8; 32]).is_ok());
    }

    #[test]
    fn kid_is_stable_and_differs_between_keys() {
        let a = ed25519_public_jwk_from_seed(&[1; 32]).expect("jwk");
        let a2 = ed25519_public_jwk_from_seed(&[1; 32]).expect("jwk");
        let b = ed25519_public_jwk_from_seed(&[2; 32]).expect("jwk");
        assert_eq!(a.common.key_id, a2.common.key_id);
        assert_ne!(a.common.key_id, b.common.key_id);
        assert!(a
            .common
            .key_id
            .as_deref()
            .is_some_and(|kid| kid.len() == 43));
    }

    #[test]
    fn private_material_is_never_published() {
        let jwk = ed25519_public_jwk_from_seed(&[3; 32]).expect("jwk");
        let text = serde_json::to_string(&jwk).expect("json");
        assert!(!text.contains("\"d\""), "{text}");
        assert!(text.contains("\"kty\":\"OKP\""), "{text}");
    }
}
