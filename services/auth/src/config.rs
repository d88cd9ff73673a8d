//! Configuration of the auth service: one serde struct, defaults in its `Default` impls, checked
//! by [`Config::validate`] before anything starts.
//!
//! Every table refuses unknown fields, so a typo is an error rather than a silently ignored
//! setting. Secrets ([`Secret`]) never appear in `Debug` output.

use confab_service_kit::server::ServerConfig;
use confab_token::{Algorithm, Secret, DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEFAULT_LEEWAY_SECS};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The whole configuration of the auth service.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// `postgres://user:password@host:port/db` for PostgreSQL, or `sqlite://path/to/file.db` for
    /// the embedded default (the file is created if missing). PostgreSQL connection options such
    /// as a schema go in the URL: `?options[search_path]=auth`.
    pub database_url: Secret,
    /// Connections in the database pool.
    pub max_db_connections: u32,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// When the service runs behind a reverse proxy: the header holding the client's address
    /// (`x-forwarded-for`: its last entry, the one the proxy added; or `x-real-ip`). Leave unset
    /// when clients connect directly, or they could choose their own address for throttling.
    pub client_address_header: Option<String>,
    /// Token signing.
    pub jwt: JwtConfig,
    /// Password rules and hashing.
    pub passwords: PasswordConfig,
    /// Failed-login and sign-up throttling.
    pub throttle: ThrottleConfig,
    /// Who may sign up: everybody (the default), holders of an invite, or nobody.
    pub signup: SignupConfig,
    /// A user created on start when no user of that name exists (the original system's
    /// FIRST_USER_USERNAME). An existing user's password is never changed.
    pub first_user: Option<FirstUser>,
    /// The Firebase token behind `POST /api/v1/auth/firebase-token` (realtime through
    /// Firestore in the web client). Unset: that endpoint answers 503 `firebase_not_configured`.
    pub firebase: Option<FirebaseConfig>,
    /// Connection limits and timeouts of the HTTP server (`confab auth`; `confab up` reads its
    /// own top-level `[server]` table).
    pub server: ServerConfig,
    /// Who can see the user directory (`GET /api/v1/users`).
    pub directory: DirectoryConfig,
}

/// How signed-in users find each other.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirectoryConfig {
    /// `"list"`: any signed-in user pages through every username (the default, as the original
    /// system did). `"search"`: only usernames starting with a typed prefix of at least
    /// `min_query_chars` are answered, so nobody can download the whole directory.
    pub mode: DirectoryMode,
    /// The shortest prefix a search must give in `"search"` mode.
    pub min_query_chars: usize,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            mode: DirectoryMode::List,
            min_query_chars: 3,
        }
    }
}

/// See [`DirectoryConfig::mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryMode {
    /// Every user, in pages.
    List,
    /// Prefix search only.
    Search,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            database_url: Secret::new("sqlite://confab-auth.db"),
            max_db_connections: 10,
            max_body_bytes: 16 * 1024,
            client_address_header: None,
            jwt: JwtConfig::default(),
            passwords: PasswordConfig::default(),
            throttle: ThrottleConfig::default(),
            signup: SignupConfig::default(),
            first_user: None,
            firebase: None,
            server: ServerConfig::default(),
            directory: DirectoryConfig::default(),
        }
    }
}

/// How access tokens are signed.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// `"EdDSA"` (Ed25519; verifiers need only the public key from `/.well-known/jwks.json`) or
    /// `"HS256"` (shared secret; every verifier can also mint tokens).
    pub algorithm: Algorithm,
    /// EdDSA: the Ed25519 private key, PKCS#8 PEM (`openssl genpkey -algorithm ed25519`). A
    /// missing file is created with a new key (mode 0600). Unset: a new key on every start,
    /// which logs everybody out on restart and suits only tests and demos.
    pub ed25519_private_key_file: Option<PathBuf>,
    /// EdDSA: public keys (PEM) of retired signing keys. They are still published and accepted
    /// so that tokens signed before a key rotation stay valid until they expire.
    pub retired_public_key_files: Vec<PathBuf>,
    /// HS256: the shared secret, at least 32 bytes of random data (`openssl rand -base64 32`).
    pub hs256_secret: Option<Secret>,
    /// The `iss` claim.
    pub issuer: String,
    /// The `aud` claim.
    pub audience: String,
    /// Lifetime of an access token, in seconds (at most an hour). Short, because a stolen one
    /// works until it expires or its session is revoked; clients renew it with the refresh
    /// token.
    pub expiry_secs: u64,
    /// Lifetime of a login session (its refresh tokens), in seconds: how long a device stays
    /// logged in without the password.
    pub refresh_expiry_secs: u64,
    /// Clock skew tolerated when this service verifies tokens, in seconds.
    pub leeway_secs: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::EdDSA,
            ed25519_private_key_file: None,
            retired_public_key_files: Vec::new(),
            hs256_secret: None,
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            expiry_secs: 600,
            refresh_expiry_secs: 30 * 24 * 3600,
            leeway_secs: DEFAULT_LEEWAY_SECS,
        }
    }
}

/// Password rules and the argon2id cost.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordConfig {
    /// Shortest password accepted, in characters (at least 8).
    pub min_chars: usize,
    /// Longest password accepted, in characters (at most 1024).
    pub max_chars: usize,
    /// argon2id memory cost in KiB. With `argon2_iterations` it must meet one of the OWASP
    /// Password Storage Cheat Sheet lines: m=47104 t=1, m=19456 t=2, m=12288 t=3, m=9216 t=4,
    /// m=7168 t=5.
    pub argon2_memory_kib: u32,
    /// argon2id time cost (passes).
    pub argon2_iterations: u32,
    /// argon2id parallelism (lanes).
    pub argon2_parallelism: u32,
    /// Least zxcvbn score (0 to 4) a new password needs: common passwords, repeats such as
    /// `aaaaaaaaaaaa`, keyboard walks and the username score low and are refused with a 422
    /// `invalid_password` that says why. Default 3 ("safely unguessable"); 0 turns the check
    /// off.
    pub min_strength: u8,
    /// Hashes computed at once: the number of hashing threads, each holding one buffer of
    /// `argon2_memory_kib` while busy (freed after 2 s idle). 0 means one per CPU, at most 4.
    pub max_concurrent_hashes: usize,
    /// Hashes (sign-ups and logins) waiting for a thread; beyond this the service answers 503
    /// with `Retry-After` at once.
    pub max_queued_hashes: usize,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            min_chars: 12,
            max_chars: 128,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            max_concurrent_hashes: 0,
            min_strength: 3,
            max_queued_hashes: 256,
        }
    }
}

/// Limits on failed logins and sign-ups. Counters live in this process: with several replicas
/// each keeps its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Failed logins for one username from one client address within the window before further
    /// attempts of that pair get 429. Per pair, not per username: guessing from one address
    /// cannot lock the owner out, who logs in from theirs.
    pub login_failures_per_username_and_address: u32,
    /// Failed logins from one client address (any usernames) within the window before further
    /// attempts from it get 429.
    pub login_failures_per_address: u32,
    /// The login window, in seconds, counted from the first failure.
    pub login_window_secs: u64,
    /// Sign-up attempts from one client address within the sign-up window.
    pub signups_per_address: u32,
    /// The sign-up window, in seconds.
    pub signup_window_secs: u64,
    /// Most keys (username and address pairs, addresses) tracked per counter; when full, the
    /// least recently used is forgotten, so memory stays bounded under a flood and a new key is
    /// never refused.
    pub max_tracked_keys: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            login_failures_per_username_and_address: 5,
            login_failures_per_address: 20,
            login_window_secs: 15 * 60,
            signups_per_address: 10,
            signup_window_secs: 60 * 60,
            max_tracked_keys: 100_000,
        }
    }
}

/// Who may create an account through `POST /api/v1/users`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignupMode {
    /// Anybody may sign up. The default, so existing deployments keep working unchanged.
    #[default]
    Open,
    /// Sign-up needs an unused, unexpired invite code, which any signed-in user can create
    /// with `POST /api/v1/invites`; without one the answer is 403 `invite_required`, with a bad
    /// one 403 `invalid_invite`.
    Invite,
    /// Nobody may sign up: 403 `signup_closed`. Existing users log in as before.
    Closed,
}

impl SignupMode {
    /// `"open"`, `"invite"` or `"closed"`, as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            SignupMode::Open => "open",
            SignupMode::Invite => "invite",
            SignupMode::Closed => "closed",
        }
    }
}

/// Sign-up mode and invites. The first user from `first_user` is seeded in every mode.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignupConfig {
    /// `"open"` (default: anybody may sign up), `"invite"` (an invite code is needed) or
    /// `"closed"` (nobody may).
    pub mode: SignupMode,
    /// How long an invite code stays usable, in seconds (default 7 days).
    pub invite_expiry_secs: u64,
    /// Most unused, unexpired invites one user may hold at once (default 10); more answer 422
    /// `too_many_invites` until one is used or expires.
    pub max_unused_invites_per_user: u32,
}

impl Default for SignupConfig {
    fn default() -> Self {
        Self {
            mode: SignupMode::Open,
            invite_expiry_secs: 7 * 24 * 3600,
            max_unused_invites_per_user: 10,
        }
    }
}

/// The user seeded on start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirstUser {
    /// Its username (same rules as sign-up).
    pub username: String,
    /// Its password (same rules as sign-up).
    pub password: Secret,
}

/// Longest lifetime Firebase accepts for a custom token, in seconds.
pub const FIREBASE_MAX_EXPIRY_SECS: u64 = 3600;

/// How the Firebase token a web client signs in with is minted. Its uid is the confab user id,
/// which `firestore.rules` compares with a group document's `members`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FirebaseConfig {
    /// A real Firebase project: a custom token (RS256 JWT) signed with a service account's
    /// private key, which the client exchanges with `signInWithCustomToken`.
    ServiceAccount {
        /// The service account's JSON key file (Firebase console, Project settings, Service
        /// accounts, Generate new private key). Read once on start; the key is never logged.
        service_account_file: PathBuf,
        /// Lifetime of a custom token, in seconds (1 to 3600, Firebase's limit). The client
        /// exchanges it at once; Firebase refreshes the ID token it gets in exchange.
        #[serde(default = "default_firebase_expiry_secs")]
        expiry_secs: u64,
    },
    /// The Firestore emulator: an unsigned ID token (`alg: none`) that the client passes to
    /// `connectFirestoreEmulator(..., { mockUserToken })`. The emulator does not check
    /// signatures; never use this for a real project, whose servers refuse such a token.
    Emulator {
        /// The emulator's project id (default `$FIRESTORE_PROJECT_ID`, else `confab-local`, as
        /// for the Firestore sink): the token's issuer and audience.
        #[serde(default = "default_firebase_project_id")]
        project_id: String,
        /// Lifetime of the token, in seconds (1 to 3600).
        #[serde(default = "default_firebase_expiry_secs")]
        expiry_secs: u64,
    },
}

fn default_firebase_expiry_secs() -> u64 {
    FIREBASE_MAX_EXPIRY_SECS
}

fn default_firebase_project_id() -> String {
    std::env::var("FIRESTORE_PROJECT_ID")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "confab-local".to_owned())
}

impl FirebaseConfig {
    /// The token lifetime, in seconds.
    pub fn expiry_secs(&self) -> u64 {
        match self {
            FirebaseConfig::ServiceAccount { expiry_secs, .. }
            | FirebaseConfig::Emulator { expiry_secs, .. } => *expiry_secs,
        }
    }
}

/// A configuration value that cannot work, with the field to fix.
#[derive(Debug, thiserror::Error)]
#[error("invalid auth configuration: {field}: {reason}")]
pub struct ConfigError {
    /// The offending field, e.g. `passwords.argon2_memory_kib`.
    pub field: &'static str,
    /// What is wrong and what would be accepted.
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        reason: reason.into(),
    }
}

/// The OWASP argon2id lines: (iterations, minimum memory in KiB).
const OWASP_ARGON2ID: [(u32, u32); 5] = [
    (1, 47_104),
    (2, 19_456),
    (3, 12_288),
    (4, 9_216),
    (5, 7_168),
];

/// The least memory (KiB) OWASP accepts for argon2id with `iterations` passes.
pub(crate) fn owasp_min_memory_kib(iterations: u32) -> Option<u32> {
    if iterations == 0 {
        return None;
    }
    let capped = iterations.min(5);
    OWASP_ARGON2ID
        .iter()
        .find(|(t, _)| *t == capped)
        .map(|(_, m)| *m)
}

impl Config {
    /// Checks values that would start a weak or broken service.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server
            .validate()
            .map_err(|reason| invalid("server", reason))?;
        if !(1..=crate::USERNAME_MAX_CHARS).contains(&self.directory.min_query_chars) {
            return Err(invalid(
                "directory.min_query_chars",
                "must be between 1 and the longest username (32)",
            ));
        }
        if !(1..=confab_token::DEFAULT_MAX_LIFETIME_SECS).contains(&self.jwt.expiry_secs) {
            return Err(invalid(
                "jwt.expiry_secs",
                "must be between 1 and 3600: access tokens are short-lived, clients refresh them",
            ));
        }
        if self.jwt.refresh_expiry_secs < self.jwt.expiry_secs {
            return Err(invalid(
                "jwt.refresh_expiry_secs",
                "must be at least jwt.expiry_secs",
            ));
        }
        let p = &self.passwords;
        if p.min_chars < 8 {
            return Err(invalid("passwords.min_chars", "must be at least 8"));
        }
        if p.max_chars < p.min_chars || p.max_chars > 1024 {
            return Err(invalid(
                "passwords.max_chars",
                "must be at least passwords.min_chars and at most 1024",
            ));
        }
        match owasp_min_memory_kib(p.argon2_iterations) {
            None => return Err(invalid("passwords.argon2_iterations", "must be at least 1")),
            Some(min) if p.argon2_memory_kib < min => {
                return Err(invalid(
                    "passwords.argon2_memory_kib",
                    format!(
                        "{} KiB with {} iteration(s) is below the OWASP minimum of {min} KiB",
                        p.argon2_memory_kib, p.argon2_iterations
                    ),
                ))
            }
            Some(_) => {}
        }
        if p.min_strength > 4 {
            return Err(invalid(
                "passwords.min_strength",
                "must be a zxcvbn score from 0 (off) to 4",
            ));
        }
        if p.argon2_parallelism == 0 {
            return Err(invalid(
                "passwords.argon2_parallelism",
                "must be at least 1",
            ));
        }
        let t = &self.throttle;
        for (field, value) in [
            (
                "throttle.login_failures_per_username_and_address",
                t.login_failures_per_username_and_address,
            ),
            (
                "throttle.login_failures_per_address",
                t.login_failures_per_address,
            ),
            ("throttle.signups_per_address", t.signups_per_address),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        if t.login_window_secs == 0 || t.signup_window_secs == 0 {
            return Err(invalid(
                "throttle.*_window_secs",
                "must be at least 1 second",
            ));
        }
        if t.max_tracked_keys == 0 {
            return Err(invalid("throttle.max_tracked_keys", "must be at least 1"));
        }
        if self.signup.invite_expiry_secs == 0 || self.signup.invite_expiry_secs > 365 * 24 * 3600 {
            return Err(invalid(
                "signup.invite_expiry_secs",
                "must be from 1 second to 365 days",
            ));
        }
        if self.signup.max_unused_invites_per_user == 0 {
            return Err(invalid(
                "signup.max_unused_invites_per_user",
                "must be at least 1",
            ));
        }
        if self.jwt.expiry_secs == 0 {
            return Err(invalid("jwt.expiry_secs", "must be at least 1 second"));
        }
        if self.max_db_connections == 0 {
            return Err(invalid("max_db_connections", "must be at least 1"));
        }
        if self.max_body_bytes < 256 {
            return Err(invalid("max_body_bytes", "must be at least 256"));
        }
        match self.jwt.algorithm {
            Algorithm::EdDSA if self.jwt.hs256_secret.is_some() => {
                return Err(invalid(
                    "jwt.hs256_secret",
                    "is only used with algorithm = \"HS256\"",
                ))
            }
            Algorithm::HS256 if self.jwt.hs256_secret.is_none() => {
                return Err(invalid(
                    "jwt.hs256_secret",
                    "is required with algorithm = \"HS256\"",
                ))
            }
            Algorithm::HS256 if self.jwt.ed25519_private_key_file.is_some() => {
                return Err(invalid(
                    "jwt.ed25519_private_key_file",
                    "is only used with algorithm = \"EdDSA\"",
                ))
            }
            _ => {}
        }
        if let Some(firebase) = &self.firebase {
            if !(1..=FIREBASE_MAX_EXPIRY_SECS).contains(&firebase.expiry_secs()) {
                return Err(invalid(
                    "firebase.expiry_secs",
                    format!("must be between 1 and {FIREBASE_MAX_EXPIRY_SECS} (Firebase's limit)"),
                ));
            }
            if let FirebaseConfig::Emulator { project_id, .. } = firebase {
                if project_id.is_empty() {
                    return Err(invalid("firebase.project_id", "must not be empty"));
                }
            }
        }
        if let Some(header) = &self.client_address_header {
            if axum::http::HeaderName::try_from(header.as_str()).is_err() {
                return Err(invalid(
                    "client_address_header",
                    "is not a valid header name",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<Config, serde_json::Error> {
        serde_json::from_value(json)
    }

    #[test]
    fn the_defaults_are_valid_and_owasp_compliant() {
        let config = Config::default();
        config.validate().expect("defaults validate");
        assert_eq!(config.passwords.argon2_memory_kib, 19_456);
        assert_eq!(config.passwords.argon2_iterations, 2);
        assert_eq!(config.listen.to_string(), "127.0.0.1:8000");
    }

    #[test]
    fn an_empty_document_gives_the_defaults() {
        let config = parse(serde_json::json!({})).expect("parses");
        assert_eq!(config.jwt.expiry_secs, JwtConfig::default().expiry_secs);
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        assert!(parse(serde_json::json!({"listn": "127.0.0.1:1"})).is_err());
        assert!(parse(serde_json::json!({"jwt": {"expiry": 5}})).is_err());
        assert!(parse(serde_json::json!({"passwords": {"min": 5}})).is_err());
        assert!(parse(serde_json::json!({"throttle": {"x": 5}})).is_err());
        assert!(parse(
            serde_json::json!({"first_user": {"username": "a", "password": "b", "c": 1}})
        )
        .is_err());
    }

    #[test]
    fn argon2_below_owasp_is_refused() {
        for (m, t) in [(19_455, 2), (47_103, 1), (7_167, 9), (65_536, 0)] {
            let mut config = Config::default();
            config.passwords.argon2_memory_kib = m;
            config.passwords.argon2_iterations = t;
            assert!(config.validate().is_err(), "m={m} t={t}");
        }
        for (m, t) in [(47_104, 1), (12_288, 3), (9_216, 4), (7_168, 5), (7_168, 8)] {
            let mut config = Config::default();
            config.passwords.argon2_memory_kib = m;
            config.passwords.argon2_iterations = t;
            assert!(config.validate().is_ok(), "m={m} t={t}");
        }
    }

    #[test]
    fn hs256_needs_its_secret_and_eddsa_refuses_one() {
        let mut config = Config::default();
        config.jwt.algorithm = Algorithm::HS256;
        assert!(config.validate().is_err());
        config.jwt.hs256_secret = Some(Secret::new("x".repeat(32)));
        assert!(config.validate().is_ok());
        config.jwt.algorithm = Algorithm::EdDSA;
        assert!(config.validate().is_err());
    }

    #[test]
    fn firebase_is_off_by_default_and_each_mode_parses() {
        assert_eq!(Config::default().firebase, None);
        let config = parse(serde_json::json!({"firebase": {
            "type": "service_account", "service_account_file": "/etc/confab/sa.json"
        }}))
        .expect("parses");
        assert_eq!(
            config.firebase,
            Some(FirebaseConfig::ServiceAccount {
                service_account_file: "/etc/confab/sa.json".into(),
                expiry_secs: 3600
            })
        );
        let config = parse(serde_json::json!({"firebase": {
            "type": "emulator", "project_id": "demo", "expiry_secs": 60
        }}))
        .expect("parses");
        assert_eq!(
            config.firebase.as_ref().map(FirebaseConfig::expiry_secs),
            Some(60)
        );
        config.validate().expect("valid");
        assert!(
            parse(serde_json::json!({"firebase": {"type": "emulator", "projct": "x"}})).is_err()
        );
        assert!(parse(serde_json::json!({"firebase": {"type": "service_account"}})).is_err());
        assert!(parse(serde_json::json!({"firebase": {"type": "nosuch"}})).is_err());
    }

    #[test]
    fn a_firebase_token_lives_at_most_an_hour() {
        for (expiry_secs, ok) in [(0, false), (1, true), (3600, true), (3601, false)] {
            let config = Config {
                firebase: Some(FirebaseConfig::Emulator {
                    project_id: "p".into(),
                    expiry_secs,
                }),
                ..Config::default()
            };
            assert_eq!(config.validate().is_ok(), ok, "{expiry_secs}");
        }
    }

    #[test]
    fn signup_is_open_by_default_and_each_mode_parses() {
        assert_eq!(Config::default().signup.mode, SignupMode::Open);
        for (text, mode) in [
            ("open", SignupMode::Open),
            ("invite", SignupMode::Invite),
            ("closed", SignupMode::Closed),
        ] {
            let config = parse(serde_json::json!({"signup": {"mode": text}})).expect(text);
            assert_eq!(config.signup.mode, mode);
            assert_eq!(mode.as_str(), text);
            config.validate().expect("valid");
        }
        assert!(parse(serde_json::json!({"signup": {"mode": "invited"}})).is_err());
        assert!(parse(serde_json::json!({"signup": {"mod": "open"}})).is_err());
        let mut config = Config::default();
        config.signup.max_unused_invites_per_user = 0;
        assert!(config.validate().is_err());
        config = Config::default();
        config.signup.invite_expiry_secs = 0;
        assert!(config.validate().is_err());
        config = Config::default();
        config.passwords.min_strength = 5;
        assert!(config.validate().is_err());
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let config = parse(serde_json::json!({
            "database_url": "postgres://confab:topsecretpw@localhost/confab",
            "first_user": {"username": "admin", "password": "another-top-secret"}
        }))
        .expect("parses");
        let text = format!("{config:?}");
        assert!(
            !text.contains("topsecretpw") && !text.contains("another-top-secret"),
            "{text}"
        );
    }
}
