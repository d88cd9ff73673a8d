//! The auth service: users, login, JWT.
//!
//! - `POST /api/v1/users` signs up, `POST /api/v1/login` returns a signed access token,
//!   `GET /api/v1/users` and `GET /api/v1/users/{id}` (Bearer) list and show users.
//! - Sign-up is open, by invite or closed (`[signup] mode`, [`signup`]); `POST /api/v1/invites`
//!   (Bearer) makes a single-use, expiring invite code.
//! - `POST /api/v1/auth/firebase-token` (Bearer) returns the token the web client signs in to
//!   Firebase with, to listen to its chats in Firestore ([`firebase`]; 503 unless configured).
//! - `GET /healthz`, `GET /readyz` (checks the database), `GET /openapi.json`,
//!   `GET /.well-known/jwks.json` (the public keys; other services verify tokens with
//!   `confab-token`).
//! - Every error is JSON `{ "error": code, "message": text }` with a fitting status; malformed
//!   input is always a 4xx, never a 5xx or a panic.
//!
//! Storage is PostgreSQL or SQLite through one code path ([`store`]); migrations are embedded
//! and applied on start ([`AppState::build`]) or alone ([`migrate`]). Passwords are argon2id with
//! OWASP parameters; failed logins are throttled per username and per client address, sign-ups
//! per address; the first user can be seeded from configuration.
//!
//! The runner calls [`serve`]; tests build an [`AppState`] and drive [`app`] directly.
#![warn(missing_docs)]

pub mod config;
mod discovery;
pub mod error;
pub mod extract;
pub mod firebase;
mod hash_pool;
mod health;
pub mod keys;
mod login;
pub mod password;
pub mod sessions;
pub mod signup;
pub mod store;
pub mod throttle;
mod users;

pub use config::{
    Config, ConfigError, DirectoryConfig, DirectoryMode, FirebaseConfig, FirstUser, JwtConfig,
    PasswordConfig, SignupConfig, SignupMode, ThrottleConfig,
};
pub use discovery::ApiDoc;
pub use error::ApiError;
pub use firebase::{FirebaseTokenResponse, FirebaseTokens};
pub use health::Status;
pub use login::{LoginForm, LoginRequest, TokenResponse};
pub use signup::InviteResponse;
pub use users::{
    normalize_username, ListQuery, NewUser, UserPage, UserView, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE,
    USERNAME_MAX_CHARS, USERNAME_MIN_CHARS,
};

use axum::extract::FromRef;
use axum::http::HeaderName;
use axum::Router;
use confab_service_kit::http::{service_layers, shutdown_signal};
use confab_token::{KeyError, TokenVerifier};
use keys::Signer;
use password::{PasswordError, Passwords};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::{Store, StoreError, User};
use throttle::Limiter;
use tokio::net::TcpListener;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A configuration value is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be reached or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signing or verification keys could not be loaded.
    #[error("cannot load the token keys: {0}")]
    Keys(#[from] KeyError),
    /// The Firebase service account could not be loaded.
    #[error("cannot load the Firebase service account: {0}")]
    Firebase(KeyError),
    /// The password hasher could not be set up.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The configured first user could not be created.
    #[error("cannot seed the first user {username:?}: {reason}")]
    Seed {
        /// The configured username.
        username: String,
        /// Why.
        reason: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// The failed-login and sign-up counters.
#[derive(Debug)]
pub struct Throttles {
    /// Failed logins per (username, client address) pair.
    pub login_by_username_and_address: Limiter,
    /// Failed logins per client address.
    pub login_by_address: Limiter,
    /// Sign-ups per client address.
    pub signups: Limiter,
}

impl Throttles {
    fn new(config: &ThrottleConfig) -> Self {
        let login_window = Duration::from_secs(config.login_window_secs);
        let signup_window = Duration::from_secs(config.signup_window_secs);
        Self {
            login_by_username_and_address: Limiter::new(
                config.login_failures_per_username_and_address,
                login_window,
                config.max_tracked_keys,
            ),
            login_by_address: Limiter::new(
                config.login_failures_per_address,
                login_window,
                config.max_tracked_keys,
            ),
            signups: Limiter::new(
                config.signups_per_address,
                signup_window,
                config.max_tracked_keys,
            ),
        }
    }
}

struct Inner {
    store: Store,
    passwords: Passwords,
    signer: Signer,
    verifier: Arc<TokenVerifier>,
    throttles: Throttles,
    firebase: Option<FirebaseTokens>,
    client_address_header: Option<HeaderName>,
    max_body_bytes: usize,
    signup: SignupConfig,
    server: confab_service_kit::server::ServerConfig,
    directory: config::DirectoryConfig,
    /// How long a session lasts.
    refresh_expiry: chrono::TimeDelta,
    /// Seconds after a revocation until every token of the session has expired anyway.
    access_lifetime_secs: u64,
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.inner.store.backend())
            .field("signer", &self.inner.signer)
            .finish_non_exhaustive()
    }
}

impl FromRef<AppState> for Arc<TokenVerifier> {
    fn from_ref(state: &AppState) -> Self {
        state.inner.verifier.clone()
    }
}

impl AppState {
    /// Validates the configuration, connects to the database, applies the migrations, loads the
    /// keys and seeds the first user.
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        config.validate()?;
        let signer = Signer::from_config(&config.jwt)?;
        let verifier = Arc::new(signer.verifier()?);
        let access_lifetime_secs = config.jwt.expiry_secs + config.jwt.leeway_secs;
        let firebase = config
            .firebase
            .as_ref()
            .map(FirebaseTokens::from_config)
            .transpose()
            .map_err(StartError::Firebase)?;
        let passwords = Passwords::new(&config.passwords).await?;
        let store = Store::connect(&config.database_url, config.max_db_connections).await?;
        store.migrate().await?;
        let client_address_header = config
            .client_address_header
            .as_deref()
            .map(HeaderName::try_from)
            .transpose()
            .map_err(|_| ConfigError {
                field: "client_address_header",
                reason: "is not a valid header name".into(),
            })?;
        let state = AppState {
            inner: Arc::new(Inner {
                store,
                passwords,
                signer,
                verifier,
                throttles: Throttles::new(&config.throttle),
                firebase,
                client_address_header,
                max_body_bytes: config.max_body_bytes,
                signup: config.signup.clone(),
                server: config.server.clone(),
                directory: config.directory.clone(),
                refresh_expiry: chrono::TimeDelta::seconds(
                    i64::try_from(config.jwt.refresh_expiry_secs).unwrap_or(i64::MAX / 1000),
                ),
                access_lifetime_secs,
            }),
        };
        state.load_revocations().await?;
        tokio::spawn(prune_sessions_forever(state.store().clone()));
        if let Some(first) = &config.first_user {
            state.seed_first_user(first).await?;
        }
        tracing::info!(
            database = state.store().backend(),
            signup = config.signup.mode.as_str(),
            algorithm = ?state.verifier().algorithm(),
            kid = state.signer().kid(),
            "The auth service is ready."
        );
        Ok(state)
    }

    /// Refuses again, after a restart, the sessions revoked within the last token lifetime.
    async fn load_revocations(&self) -> Result<(), StoreError> {
        let lifetime = self.inner.access_lifetime_secs;
        let since = chrono::Utc::now()
            - chrono::TimeDelta::seconds(i64::try_from(lifetime).unwrap_or(i64::MAX / 1000));
        let revoked = self.store().revoked_since(since).await?;
        let count = revoked.len();
        self.verifier()
            .revocations()
            .merge(
                revoked
                    .into_iter()
                    .map(|(session, user, at)| confab_token::Revoked {
                        session,
                        user,
                        until: at.timestamp().max(0).unsigned_abs() + lifetime,
                    }),
            );
        if count > 0 {
            tracing::info!(
                count,
                "Loaded the sessions revoked within the last token lifetime."
            );
        }
        Ok(())
    }

    async fn seed_first_user(&self, first: &FirstUser) -> Result<(), StartError> {
        let seed_error = |reason: String| StartError::Seed {
            username: first.username.clone(),
            reason,
        };
        let username = normalize_username(&first.username).map_err(seed_error)?;
        if self.store().username_exists(&username).await? {
            tracing::info!(%username, "The first user exists already; leaving it unchanged.");
            return Ok(());
        }
        match self
            .create_user(&username, first.password.expose().to_owned())
            .await
        {
            Ok(user) => {
                tracing::info!(user_id = %user.id, %username, "Seeded the first user.");
                Ok(())
            }
            // Another replica seeded it at the same moment.
            Err(ApiError::UsernameTaken(_)) => Ok(()),
            Err(err) => Err(seed_error(err.to_string())),
        }
    }

    /// Checks the rules, hashes the password and stores the user (whatever the sign-up mode:
    /// the HTTP sign-up checks the mode first, the seeding of the first user does not).
    pub async fn create_user(
        &self,
        raw_username: &str,
        password: String,
    ) -> Result<User, ApiError> {
        self.create_user_invited(raw_username, password, None).await
    }

    /// [`AppState::create_user`], using the invite with this code hash in the same transaction
    /// when one is given (403 `invalid_invite` when it is unknown, used or expired).
    pub async fn create_user_invited(
        &self,
        raw_username: &str,
        password: String,
        invite: Option<[u8; 32]>,
    ) -> Result<User, ApiError> {
        let username = normalize_username(raw_username).map_err(ApiError::InvalidUsername)?;
        self.passwords()
            .check_rules_for(&password, &[&username])
            .map_err(ApiError::InvalidPassword)?;
        // Saves an argon2 hash for the common case; the unique constraint still decides races.
        if self.store().username_exists(&username).await? {
            return Err(ApiError::UsernameTaken(username));
        }
        // Also saves the hash for a code that cannot work; the transaction below decides races.
        if let Some(code_hash) = &invite {
            let now = chrono::Utc::now();
            if !self.store().invite_is_open(code_hash, now).await? {
                return Err(signup::invalid_invite());
            }
        }
        let hash = self
            .passwords()
            .hash(password)
            .await
            .map_err(ApiError::from)?;
        Ok(match &invite {
            Some(code_hash) => {
                self.store()
                    .insert_user_with_invite(&username, &hash, code_hash)
                    .await?
            }
            None => self.store().insert_user(&username, &hash).await?,
        })
    }

    /// The user store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The password hasher.
    pub fn passwords(&self) -> &Passwords {
        &self.inner.passwords
    }

    /// The token signer.
    pub fn signer(&self) -> &Signer {
        &self.inner.signer
    }

    /// The verifier for this service's own tokens.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.inner.verifier
    }

    /// The sign-up mode and invite settings.
    pub fn signup_config(&self) -> &SignupConfig {
        &self.inner.signup
    }

    /// Who can see the user directory.
    pub fn directory(&self) -> &DirectoryConfig {
        &self.inner.directory
    }

    /// The throttling counters.
    pub fn throttles(&self) -> &Throttles {
        &self.inner.throttles
    }

    /// The Firebase token minter, when configured.
    pub fn firebase(&self) -> Option<&FirebaseTokens> {
        self.inner.firebase.as_ref()
    }

    fn client_address_header(&self) -> Option<&HeaderName> {
        self.inner.client_address_header.as_ref()
    }
}

/// The HTTP API. Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so that
/// throttling sees client addresses (as [`serve_on`] does).
pub fn app(state: AppState) -> Router {
    let max_body_bytes = state.inner.max_body_bytes;
    let routes = Router::new()
        .merge(users::router())
        .merge(signup::router())
        .merge(login::router())
        .merge(sessions::router())
        .merge(firebase::router())
        .merge(health::router())
        .merge(discovery::router());
    service_layers(routes, max_body_bytes).with_state(state)
}

/// Deletes expired sessions and their refresh tokens every hour, forever (spawned by
/// [`AppState::build`]).
async fn prune_sessions_forever(store: Store) {
    let mut interval = tokio::time::interval(Duration::from_secs(3600));
    loop {
        interval.tick().await;
        match store.prune_sessions(chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "Forgot expired sessions."),
            Err(err) => tracing::warn!(error = %err, "Could not prune expired sessions."),
        }
    }
}

/// Connects to the configured database and applies the migrations, nothing else
/// (`confab auth migrate`).
pub async fn migrate(config: &Config) -> Result<(), StartError> {
    config.validate()?;
    let store = Store::connect(&config.database_url, 1).await?;
    store.migrate().await?;
    tracing::info!(database = store.backend(), "Applied the auth migrations.");
    store.close().await;
    Ok(())
}

/// Starts the service as configured and serves until Ctrl-C or SIGTERM (`confab auth`).
pub async fn serve(config: Config) -> Result<(), StartError> {
    let state = AppState::build(&config).await?;
    let listener =
        confab_service_kit::server::bind(config.listen).map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    serve_on(listener, state, shutdown_signal("auth")).await
}

/// Serves [`app`] on a bound listener until `shutdown` completes, then finishes the requests in
/// flight.
pub async fn serve_on(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "The auth service is listening.");
    }
    let store = state.store().clone();
    let server = state.inner.server.clone();
    let result = confab_service_kit::server::serve(listener, app(state), &server, shutdown)
        .await
        .map_err(StartError::Serve);
    store.close().await;
    result
}
