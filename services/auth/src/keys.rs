//! The token signer: loads or creates the signing key, issues access tokens, and publishes the
//! public keys as a JWKS.
//!
//! EdDSA (the default) signs with an Ed25519 key whose public half is served at
//! `/.well-known/jwks.json`, so other services verify without being able to sign. HS256 signs
//! with a shared secret of at least 256 bits and publishes nothing. Either way the `kid` is the
//! key's RFC 7638 thumbprint (see `confab_token`), and this service verifies its own tokens with
//! the same [`TokenVerifier`] the other services use.

use crate::config::JwtConfig;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use confab_token::jsonwebtoken::jwk::JwkSet;
use confab_token::jsonwebtoken::{self, EncodingKey, Header};
use confab_token::{
    ed25519_pkcs8_from_seed, hs256_key_id, publishable_jwk, Algorithm, Claims, Expectations,
    KeyError, TokenVerifier,
};
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// A freshly issued access token.
#[derive(Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

// Hand-written: a bearer token in a log is a stolen session.
impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"***")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Signs access tokens.
pub struct Signer {
    algorithm: Algorithm,
    kid: String,
    key: EncodingKey,
    jwks: JwkSet,
    issuer: String,
    audience: String,
    expiry_secs: u64,
    leeway_secs: u64,
    hs256_secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Builds the signer from configuration, reading (or creating) the key file.
    pub fn from_config(config: &JwtConfig) -> Result<Self, KeyError> {
        confab_token::install_crypto_provider();
        let (kid, key, jwks, hs256_secret) = match config.algorithm {
            Algorithm::EdDSA => {
                let seed = match &config.ed25519_private_key_file {
                    Some(path) => load_or_create_ed25519(path)?,
                    None => {
                        tracing::warn!(
                            "No jwt.ed25519_private_key_file configured: signing with a new key \
                             that lives only as long as this process."
                        );
                        random_seed()?
                    }
                };
                let jwk = confab_token::ed25519_public_jwk_from_seed(&seed)?;
                let kid = jwk.common.key_id.clone().unwrap_or_default();
                let mut keys = vec![jwk];
                for path in &config.retired_public_key_files {
                    keys.push(retired_public_jwk(path)?);
                }
                let key = EncodingKey::from_ed_der(&ed25519_pkcs8_from_seed(&seed));
                (kid, key, JwkSet { keys }, None)
            }
            Algorithm::HS256 => {
                let secret = config
                    .hs256_secret
                    .as_ref()
                    .ok_or_else(|| {
                        KeyError::Config("jwt.hs256_secret is required for HS256".into())
                    })?
                    .expose()
                    .as_bytes()
                    .to_vec();
                let kid = hs256_key_id(&secret)?;
                let key = EncodingKey::from_secret(&secret);
                (kid, key, JwkSet { keys: Vec::new() }, Some(secret))
            }
        };
        Ok(Self {
            algorithm: config.algorithm,
            kid,
            key,
            jwks,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            expiry_secs: config.expiry_secs,
            leeway_secs: config.leeway_secs,
            hs256_secret,
        })
    }

    /// Signs a token for the user `user_id` named `username`, in the login session `session`.
    pub fn issue(
        &self,
        user_id: Uuid,
        username: &str,
        session: Uuid,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = Claims {
            sub: user_id.to_string(),
            user_id,
            username: username.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + self.expiry_secs,
            jti: Uuid::new_v4(),
            sid: Some(session),
        };
        let mut header = Header::new(self.algorithm.to_jwt());
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key)?;
        Ok(IssuedToken {
            token,
            expires_in: self.expiry_secs,
        })
    }

    /// The public keys (current first, then retired ones); empty with HS256.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// The `kid` of the current signing key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A verifier accepting exactly what this signer issues (and the retired keys).
    pub fn verifier(&self) -> Result<TokenVerifier, KeyError> {
        let expect = Expectations {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway_secs: self.leeway_secs,
            max_lifetime_secs: self.expiry_secs,
        };
        match &self.hs256_secret {
            Some(secret) => TokenVerifier::hs256(secret, expect),
            None => TokenVerifier::from_jwks(&self.jwks, expect),
        }
    }
}

fn random_seed() -> Result<[u8; 32], KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|err| KeyError::Invalid {
        what: "new Ed25519 key".into(),
        reason: format!("the operating system gave no random bytes: {err}"),
    })?;
    Ok(seed)
}

/// Reads an Ed25519 PKCS#8 PEM key, or creates the file (mode 0600) with a new key.
fn load_or_create_ed25519(path: &Path) -> Result<[u8; 32], KeyError> {
    match std::fs::read(path) {
        Ok(pem) => seed_from_pem(&pem).map_err(|reason| KeyError::Invalid {
            what: path.display().to_string(),
            reason,
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let seed = random_seed()?;
            let der = ed25519_pkcs8_from_seed(&seed);
            let pem = format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                STANDARD.encode(der)
            );
            write_new_private_file(path, pem.as_bytes()).map_err(|source| KeyError::Read {
                path: path.to_owned(),
                source,
            })?;
            tracing::info!(path = %path.display(), "Created a new Ed25519 signing key.");
            Ok(seed)
        }
        Err(source) => Err(KeyError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn write_new_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// The 32-byte seed of an Ed25519 PKCS#8 PEM (as written by us or by
/// `openssl genpkey -algorithm ed25519`).
fn seed_from_pem(pem: &[u8]) -> Result<[u8; 32], String> {
    let text = std::str::from_utf8(pem).map_err(|_| "not a PEM text file".to_owned())?;
    let body: String = text
        .lines()
        .skip_while(|line| !line.starts_with("-----BEGIN PRIVATE KEY-----"))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .collect();
    if body.is_empty() {
        return Err("no `-----BEGIN PRIVATE KEY-----` block (PKCS#8) found".into());
    }
    let der = STANDARD
        .decode(body.trim())
        .map_err(|err| format!("the PEM body is not base64: {err}"))?;
    let expected_prefix = &ed25519_pkcs8_from_seed(&[0; 32])[..16];
    if der.len() != 48 || &der[..16] != expected_prefix {
        return Err("not an Ed25519 PKCS#8 private key (generate one with \
                    `openssl genpkey -algorithm ed25519`)"
            .into());
    }
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&der[16..]);
    Ok(seed)
}

fn retired_public_jwk(path: &Path) -> Result<confab_token::jsonwebtoken::jwk::Jwk, KeyError> {
    let pem = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |reason: String| KeyError::Invalid {
        what: path.display().to_string(),
        reason,
    };
    let key =
        jsonwebtoken::DecodingKey::from_ed_pem(&pem).map_err(|err| invalid(err.to_string()))?;
    let jwk = jsonwebtoken::jwk::Jwk::from_decoding_key(&key, Some(jsonwebtoken::Algorithm::EdDSA))
        .map_err(|err| invalid(err.to_string()))?;
    publishable_jwk(jwk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_does_not_show_in_debug() {
        let issued = IssuedToken {
            token: "eyJhbGciOiJFZERTQSJ9.payload.signature".into(),
            expires_in: 60,
        };
        let text = format!("{issued:?}");
        assert!(
            !text.contains("eyJ") && !text.contains("signature"),
            "{text}"
        );
    }

    fn eddsa_config(path: Option<&Path>) -> JwtConfig {
        JwtConfig {
            ed25519_private_key_file: path.map(Path::to_owned),
            ..JwtConfig::default()
        }
    }

    #[test]
    fn a_missing_key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/auth.pem");
        let first = Signer::from_config(&eddsa_config(Some(&path))).expect("create");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = Signer::from_config(&eddsa_config(Some(&path))).expect("reload");
        assert_eq!(first.kid(), second.kid());
        let token = first
            .issue(Uuid::now_v7(), "alice", Uuid::now_v7())
            .expect("sign");
        assert!(second
            .verifier()
            .expect("verifier")
            .verify(&token.token)
            .is_ok());
    }

    #[test]
    fn an_openssl_style_pem_is_read() {
        // `openssl genpkey -algorithm ed25519` output for the RFC 8032 test 1 secret key.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
                   -----END PRIVATE KEY-----\n";
        let seed = seed_from_pem(pem.as_bytes()).expect("seed");
        assert_eq!(seed[0], 0x9d);
        assert!(
            seed_from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err()
        );
        assert!(seed_from_pem(b"garbage").is_err());
    }

    #[test]
    fn a_retired_key_is_published_and_still_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old_path = dir.path().join("old.pem");
        let old = Signer::from_config(&eddsa_config(Some(&old_path))).expect("old");
        let old_token = old
            .issue(Uuid::now_v7(), "alice", Uuid::now_v7())
            .expect("sign");

        let seed = load_or_create_ed25519(&old_path).expect("seed");
        let public = confab_token::ed25519_public_jwk_from_seed(&seed).expect("jwk");
        let x = match public.algorithm {
            confab_token::jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) => p.x,
            _ => unreachable!("Ed25519"),
        };
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(x)
            .expect("b64");
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend(raw);
        let public_path = dir.path().join("old.pub.pem");
        std::fs::write(
            &public_path,
            format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                STANDARD.encode(spki)
            ),
        )
        .expect("write");

        let mut config = eddsa_config(Some(&dir.path().join("new.pem")));
        config.retired_public_key_files = vec![public_path];
        let new = Signer::from_config(&config).expect("new");
        assert_eq!(new.jwks().keys.len(), 2);
        assert_ne!(new.kid(), old.kid());
        let verifier = new.verifier().expect("verifier");
        assert!(verifier.verify(&old_token.token).is_ok());
        assert!(verifier
            .verify(
                &new.issue(Uuid::now_v7(), "bob", Uuid::now_v7())
                    .expect("sign")
                    .token
            )
            .is_ok());
    }

    #[test]
    fn hs256_publishes_no_key() {
        let config = JwtConfig {
            algorithm: Algorithm::HS256,
            hs256_secret: Some("k".repeat(32).as_str().into()),
            ..JwtConfig::default()
        };
        let signer = Signer::from_config(&config).expect("signer");
        assert!(signer.jwks().keys.is_empty());
        let token = signer
            .issue(Uuid::now_v7(), "alice", Uuid::now_v7())
            .expect("sign");
        assert!(signer
            .verifier()
            .expect("verifier")
            .verify(&token.token)
            .is_ok());
    }
}
