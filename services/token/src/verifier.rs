//! [`TokenVerifier`]: checks a token's algorithm, key, signature and claims.

use crate::keys::{check_hs256_secret, hs256_key_id, publishable_jwk};
use crate::{Algorithm, Claims, KeyError, TokenError, VerifierConfig};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{DecodingKey, Validation};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// Longer "tokens" are refused before any parsing: ours are a few hundred bytes.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// What the claims of an accepted token must say, besides a valid signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

impl Default for Expectations {
    fn default() -> Self {
        Self {
            issuer: crate::DEFAULT_ISSUER.to_owned(),
            audience: crate::DEFAULT_AUDIENCE.to_owned(),
            leeway_secs: crate::DEFAULT_LEEWAY_SECS,
        }
    }
}

/// Verifies confab access tokens with one pinned algorithm and a set of keys named by `kid`.
///
/// Cheap to share: wrap it in an `Arc` and put it in the axum state (see
/// [`CurrentUser`](crate::CurrentUser)).
pub struct TokenVerifier {
    algorithm: Algorithm,
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("TokenVerifier")
            .field("algorithm", &self.algorithm)
            .field("key_ids", &kids)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Builds a verifier from configuration, reading the key files it names.
    pub fn from_config(config: &VerifierConfig) -> Result<Self, KeyError> {
        let expect = Expectations {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway_secs: config.leeway_secs,
        };
        let sources = [
            config.jwks_file.is_some(),
            config.public_key_pem_file.is_some(),
            config.hs256_secret.is_some(),
        ];
        if sources.iter().filter(|set| **set).count() != 1 {
            return Err(KeyError::Config(
                "set exactly one of jwks_file, public_key_pem_file (for EdDSA) or hs256_secret \
                 (for HS256)"
                    .into(),
            ));
        }
        match config.algorithm {
            Algorithm::EdDSA => {
                if let Some(path) = &config.jwks_file {
                    let text = read(path)?;
                    let jwks: JwkSet =
                        serde_json::from_slice(&text).map_err(|err| KeyError::Invalid {
                            what: path.display().to_string(),
                            reason: format!("not a JWKS document: {err}"),
                        })?;
                    Self::from_jwks(&jwks, expect)
                } else if let Some(path) = &config.public_key_pem_file {
                    Self::from_ed25519_pem(&read(path)?, expect)
                } else {
                    Err(KeyError::Config(
                        "algorithm EdDSA needs jwks_file or public_key_pem_file, not hs256_secret"
                            .into(),
                    ))
                }
            }
            Algorithm::HS256 => match &config.hs256_secret {
                Some(secret) => Self::hs256(secret.expose().as_bytes(), expect),
                None => Err(KeyError::Config(
                    "algorithm HS256 needs hs256_secret, not a public key".into(),
                )),
            },
        }
    }

    /// An EdDSA verifier trusting every Ed25519 key of a JWKS document (each needs a `kid`).
    pub fn from_jwks(jwks: &JwkSet, expect: Expectations) -> Result<Self, KeyError> {
        crate::install_crypto_provider();
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            let (kid, key) = ed25519_decoding_key(jwk)?;
            keys.insert(kid, key);
        }
        if keys.is_empty() {
            return Err(KeyError::Config("the JWKS document holds no key".into()));
        }
        Ok(Self::new(Algorithm::EdDSA, keys, &expect))
    }

    /// An EdDSA verifier trusting one Ed25519 public key (PEM, `BEGIN PUBLIC KEY`); its `kid` is
    /// the key's thumbprint, as the auth service names it.
    pub fn from_ed25519_pem(pem: &[u8], expect: Expectations) -> Result<Self, KeyError> {
        crate::install_crypto_provider();
        let invalid = |reason: String| KeyError::Invalid {
            what: "Ed25519 public key PEM".into(),
            reason,
        };
        let key = DecodingKey::from_ed_pem(pem).map_err(|err| invalid(err.to_string()))?;
        let jwk = Jwk::from_decoding_key(&key, Some(jsonwebtoken::Algorithm::EdDSA))
            .map_err(|err| invalid(err.to_string()))?;
        let jwk = publishable_jwk(jwk)?;
        Self::from_jwks(&JwkSet { keys: vec![jwk] }, expect)
    }

    /// An HS256 verifier with a shared secret of at least 256 bits.
    pub fn hs256(secret: &[u8], expect: Expectations) -> Result<Self, KeyError> {
        check_hs256_secret(secret)?;
        let kid = hs256_key_id(secret)?;
        let keys = HashMap::from([(kid, DecodingKey::from_secret(secret))]);
        Ok(Self::new(Algorithm::HS256, keys, &expect))
    }

    fn new(
        algorithm: Algorithm,
        keys: HashMap<String, DecodingKey>,
        expect: &Expectations,
    ) -> Self {
        crate::install_crypto_provider();
        let mut validation = Validation::new(algorithm.to_jwt());
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = expect.leeway_secs;
        validation.set_issuer(&[&expect.issuer]);
        validation.set_audience(&[&expect.audience]);
        Self {
            algorithm,
            keys,
            validation,
        }
    }

    /// The pinned algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The `kid`s of the trusted keys, sorted.
    pub fn key_ids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.keys.keys().cloned().collect();
        kids.sort_unstable();
        kids
    }

    /// Checks a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        // An unknown `alg` such as "none" fails to parse here.
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let expected = self.algorithm.to_jwt();
        if header.alg != expected {
            return Err(TokenError::AlgorithmNotAllowed {
                found: format!("{:?}", header.alg),
                expected: format!("{expected:?}"),
            });
        }
        if header.crit.is_some() {
            return Err(TokenError::UnsupportedCritical);
        }
        let kid = header.kid.ok_or(TokenError::MissingKeyId)?;
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| TokenError::UnknownKeyId { kid: kid.clone() })?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|err| TokenError::from_jwt(&err))?;
        let claims = data.claims;
        if claims.sub != claims.user_id.to_string() {
            return Err(TokenError::InvalidClaims(
                "sub and user_id name different users".into(),
            ));
        }
        Ok(claims)
    }
}

fn ed25519_decoding_key(jwk: &Jwk) -> Result<(String, DecodingKey), KeyError> {
    let kid = jwk.common.key_id.clone().ok_or_else(|| KeyError::Invalid {
        what: "JWKS key".into(),
        reason: "it has no kid".into(),
    })?;
    let invalid = |reason: &str| KeyError::Invalid {
        what: format!("JWKS key {kid:?}"),
        reason: reason.to_owned(),
    };
    match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(params) if params.curve == EllipticCurve::Ed25519 => {}
        _ => {
            return Err(invalid(
                "only Ed25519 keys (kty OKP, crv Ed25519) are accepted",
            ))
        }
    }
    if jwk
        .common
        .key_algorithm
        .is_some_and(|alg| alg != KeyAlgorithm::EdDSA)
    {
        return Err(invalid("its alg is not EdDSA"));
    }
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|usage| *usage != PublicKeyUse::Signature)
    {
        return Err(invalid("its use is not sig"));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|err| invalid(&err.to_string()))?;
    Ok((kid, key))
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })
}
