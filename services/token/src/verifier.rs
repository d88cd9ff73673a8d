//! [`TokenVerifier`]: checks a token's algorithm, key, signature and claims.

use crate::cache::{Digest, VerifiedTokens};
use crate::keys::{check_hs256_secret, hs256_key_id, publishable_jwk};
use crate::Revocations;
use crate::{Algorithm, Claims, KeyError, TokenError, VerifierConfig};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{DecodingKey, Validation};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How often at most a token naming an unknown `kid` makes the verifier re-read its JWKS file.
pub const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// Longer "tokens" are refused before any parsing: ours are a few hundred bytes.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Verified tokens remembered per generation (two generations; a few hundred bytes each): the
/// tokens of the people sending in the last minutes, so their signatures are checked once.
const VERIFIED_TOKENS_PER_GENERATION: usize = 4_096;

/// What the claims of an accepted token must say, besides a valid signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: u64,
    /// Longest `exp - iat` accepted, in seconds.
    pub max_lifetime_secs: u64,
}

impl Default for Expectations {
    fn default() -> Self {
        Self {
            issuer: crate::DEFAULT_ISSUER.to_owned(),
            audience: crate::DEFAULT_AUDIENCE.to_owned(),
            leeway_secs: crate::DEFAULT_LEEWAY_SECS,
            max_lifetime_secs: crate::DEFAULT_MAX_LIFETIME_SECS,
        }
    }
}

/// Where a verifier's keys come from when they can be read again.
struct KeySource {
    jwks_file: PathBuf,
    /// When an unknown `kid` last made it re-read the file.
    last_refresh: Mutex<Option<Instant>>,
}

/// Verifies confab access tokens with one pinned algorithm and a set of keys named by `kid`.
///
/// Cheap to share: wrap it in an `Arc` and put it in the axum state (see
/// [`CurrentUser`](crate::CurrentUser)).
pub struct TokenVerifier {
    algorithm: Algorithm,
    keys: RwLock<HashMap<String, DecodingKey>>,
    validation: Validation,
    leeway_secs: u64,
    max_lifetime_secs: u64,
    revocations: Arc<Revocations>,
    source: Option<KeySource>,
    /// Tokens that passed every check (see [`VerifiedTokens`] for what a hit skips).
    verified: VerifiedTokens,
    /// Counts replacements of `keys`: a token verified under an earlier key set is checked
    /// again in full.
    key_set: AtomicU64,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithm", &self.algorithm)
            .field("key_ids", &self.key_ids())
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
            max_lifetime_secs: config.max_lifetime_secs,
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
                    let mut verifier = Self::from_jwks(&read_jwks(path)?, expect)?;
                    verifier.source = Some(KeySource {
                        jwks_file: path.clone(),
                        last_refresh: Mutex::new(None),
                    });
                    Ok(verifier)
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
        Ok(Self::new(Algorithm::EdDSA, jwks_keys(jwks)?, &expect))
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
            keys: RwLock::new(keys),
            validation,
            leeway_secs: expect.leeway_secs,
            max_lifetime_secs: expect.max_lifetime_secs,
            revocations: Arc::default(),
            source: None,
            verified: VerifiedTokens::new(VERIFIED_TOKENS_PER_GENERATION),
            key_set: AtomicU64::new(0),
        }
    }

    /// This verifier sharing `revocations` (the auth service's, in the same process).
    #[must_use]
    pub fn with_revocations(mut self, revocations: Arc<Revocations>) -> Self {
        self.revocations = revocations;
        self
    }

    /// The revoked sessions this verifier refuses.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    fn read_keys(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, DecodingKey>> {
        // Keys are replaced whole: a poisoned lock still holds a complete set.
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Re-reads the JWKS file for an unknown `kid`, at most once per [`KEY_REFRESH_INTERVAL`]
    /// (so junk `kid`s cannot make it read the file on every request); whether it did.
    fn refresh_keys(&self) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        {
            let mut last = source
                .last_refresh
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < KEY_REFRESH_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match read_jwks(&source.jwks_file).and_then(|jwks| jwks_keys(&jwks)) {
            Ok(keys) => {
                tracing::info!(file = %source.jwks_file.display(), keys = keys.len(), "Re-read the token keys for an unknown key id.");
                *self
                    .keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
                // After the new keys are in: a verification that read the old count may have
                // used either set, and its entry will miss.
                self.key_set.fetch_add(1, Ordering::SeqCst);
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, "Cannot re-read the token keys; keeping the old ones.");
                false
            }
        }
    }

    /// The pinned algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The `kid`s of the trusted keys, sorted.
    pub fn key_ids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.read_keys().keys().cloned().collect();
        kids.sort_unstable();
        kids
    }

    /// Checks a token and returns its claims.
    ///
    /// A token this verifier accepted before is not parsed or checked for its signature again
    /// (see [`VerifiedTokens`]); its time claims and its session's revocation are checked on
    /// every call.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_at(token, unix_now())
    }

    /// [`Self::verify`] with the clock of a remembered token's time checks at `now` (seconds
    /// since the Unix epoch); a token checked in full reads the clock itself.
    pub(crate) fn verify_at(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let digest: Digest = Sha256::digest(token.as_bytes()).into();
        let key_set = self.key_set.load(Ordering::SeqCst);
        let claims = match self.verified.get(&digest, key_set) {
            Some(claims) => {
                self.check_times(&claims, now)?;
                claims
            }
            None => {
                let claims = self.verify_signed(token)?;
                self.verified.insert(digest, claims.clone(), key_set);
                claims
            }
        };
        if claims
            .sid
            .is_some_and(|sid| self.revocations.is_revoked(&sid))
        {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    /// Every check but revocation, from the token's text.
    fn verify_signed(&self, token: &str) -> Result<Claims, TokenError> {
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
        if !self.read_keys().contains_key(&kid) && !self.refresh_keys() {
            return Err(TokenError::UnknownKeyId { kid });
        }
        let claims = {
            let keys = self.read_keys();
            let key = keys
                .get(&kid)
                .ok_or_else(|| TokenError::UnknownKeyId { kid: kid.clone() })?;
            jsonwebtoken::decode::<Claims>(token, key, &self.validation)
                .map_err(|err| TokenError::from_jwt(&err))?
                .claims
        };
        if claims.sub != claims.user_id.to_string() {
            return Err(TokenError::InvalidClaims(
                "sub and user_id name different users".into(),
            ));
        }
        self.check_lifetime(&claims)?;
        Ok(claims)
    }

    /// The time checks of a verified token's claims at `now` (seconds since the Unix epoch), as
    /// `jsonwebtoken` and [`Self::check_lifetime`] make them.
    fn check_times(&self, claims: &Claims, now: u64) -> Result<(), TokenError> {
        if claims.exp.saturating_add(self.leeway_secs) < now {
            return Err(TokenError::Expired);
        }
        if claims.nbf > now.saturating_add(self.leeway_secs) {
            return Err(TokenError::NotYetValid);
        }
        if claims.iat > now.saturating_add(self.leeway_secs) {
            return Err(TokenError::Lifetime("it is issued in the future".into()));
        }
        Ok(())
    }

    fn check_lifetime(&self, claims: &Claims) -> Result<(), TokenError> {
        let now = unix_now();
        if claims.iat > now + self.leeway_secs {
            return Err(TokenError::Lifetime("it is issued in the future".into()));
        }
        let lifetime = claims.exp.saturating_sub(claims.iat);
        if lifetime > self.max_lifetime_secs {
            return Err(TokenError::Lifetime(format!(
                "it is valid for {lifetime} s, more than the {} s allowed",
                self.max_lifetime_secs
            )));
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch, as `jsonwebtoken` reads the clock.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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

fn read_jwks(path: &Path) -> Result<JwkSet, KeyError> {
    serde_json::from_slice(&read(path)?).map_err(|err| KeyError::Invalid {
        what: path.display().to_string(),
        reason: format!("not a JWKS document: {err}"),
    })
}

fn jwks_keys(jwks: &JwkSet) -> Result<HashMap<String, DecodingKey>, KeyError> {
    let mut keys = HashMap::new();
    for jwk in &jwks.keys {
        let (kid, key) = ed25519_decoding_key(jwk)?;
        keys.insert(kid, key);
    }
    if keys.is_empty() {
        return Err(KeyError::Config("the JWKS document holds no key".into()));
    }
    Ok(keys)
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })
}
