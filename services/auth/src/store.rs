//! The user store: PostgreSQL in production, SQLite as the embedded default, one code path.
//!
//! Why an enum of two typed pools rather than `sqlx::Any`: `Any` only carries the types every
//! driver shares (integers, floats, text, bytes), so PostgreSQL would lose its native `uuid` and
//! `timestamptz` columns, and the DDL would still differ per database. Here each query is written
//! once, as one literal SQL string with `$n` placeholders (which both PostgreSQL and SQLite
//! accept), and `on_pool!` compiles that same code against each driver with its native
//! encodings. Only the migrations differ (`migrations/postgres`, `migrations/sqlite`); both are
//! embedded in the binary and applied by [`Store::migrate`].
//!
//! Guarantees: usernames are unique (a database constraint, so concurrent sign-ups of one name
//! yield exactly one row); listing is ordered by id, which is a UUIDv7 and therefore follows
//! creation time and is stable across pages.

use chrono::{DateTime, SubsecRound, Utc};
use confab_service_kit::sql::{self, ConnectError, SqlPool};
use confab_token::Secret;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use uuid::Uuid;

/// A user as stored, with its password hash.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRecord {
    /// UUIDv7 id.
    pub id: Uuid,
    /// Unique, lowercase username.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// When the user signed up.
    pub created_at: DateTime<Utc>,
}

// Hand-written: the password hash stays out of logs.
impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"***")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A user without secrets.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    /// UUIDv7 id.
    pub id: Uuid,
    /// Unique, lowercase username.
    pub username: String,
    /// When the user signed up.
    pub created_at: DateTime<Utc>,
}

/// Store failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported database URL {url:?}: use postgres://... or sqlite://...")]
    UnsupportedUrl {
        /// The URL, password removed.
        url: String,
    },
    /// The database could not be reached on start; retrying later can help.
    #[error("cannot reach the database at {url}: {source}{hint}")]
    Connect {
        /// The URL, password removed.
        url: String,
        /// What happened.
        source: sqlx::Error,
        /// How to start it, when we know.
        hint: &'static str,
    },
    /// The database stopped answering (connection, pool timeout, I/O); retrying later can help.
    #[error("the database is unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// Applying the migrations failed.
    #[error("cannot apply the auth migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The username exists already.
    #[error("the username {0:?} is already taken")]
    UsernameTaken(String),
    /// The invite code is unknown, used or expired.
    #[error("the invite code is unknown, used or expired")]
    InvalidInvite,
    /// Any other database error; retrying will not help.
    #[error("user database query failed: {0}")]
    Query(sqlx::Error),
}

/// The user store. Cheap to clone (pools are shared).
#[derive(Debug, Clone)]
pub enum Store {
    /// PostgreSQL.
    Postgres(PgPool),
    /// SQLite, the embedded default.
    Sqlite(SqlitePool),
}

/// Runs the same code against whichever pool the store holds; `$pool` is bound to a `&PgPool`
/// or a `&SqlitePool`, so `sqlx` encodes the binds natively for each.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            Store::Postgres($pool) => $body,
            Store::Sqlite($pool) => $body,
        }
    };
}

mod invites;

impl Store {
    /// Connects to `database_url` (`postgres://` or `sqlite://`) and checks the connection.
    pub async fn connect(database_url: &Secret, max_connections: u32) -> Result<Self, StoreError> {
        Ok(match sql::connect(database_url, max_connections).await? {
            SqlPool::Postgres(pool) => Store::Postgres(pool),
            SqlPool::Sqlite(pool) => Store::Sqlite(pool),
        })
    }

    /// Applies the migrations kept in `services/auth/migrations/` (embedded at build time).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Store::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
            Store::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
        }
        Ok(())
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Postgres(_) => "postgres",
            Store::Sqlite(_) => "sqlite",
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
            .map_err(classify)
    }

    /// Inserts a user; [`StoreError::UsernameTaken`] when the name exists.
    pub async fn insert_user(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<User, StoreError> {
        let user = User {
            id: Uuid::now_v7(),
            username: username.to_owned(),
            // PostgreSQL keeps microseconds: truncate so what we return is what we stored.
            created_at: Utc::now().trunc_subsecs(6),
        };
        let result = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(user.id)
            .bind(&user.username)
            .bind(password_hash)
            .bind(user.created_at)
            .execute(pool)
            .await
            .map(|_| ())
        });
        match result {
            Ok(_) => Ok(user),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                Err(StoreError::UsernameTaken(username.to_owned()))
            }
            Err(err) => Err(classify(err)),
        }
    }

    /// The user with this username, with its hash.
    pub async fn find_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_as::<_, UserRecord>(
                "SELECT id, username, password_hash, created_at FROM users WHERE username = $1",
            )
            .bind(username)
            .fetch_optional(pool)
            .await
        })
        .map_err(classify)
    }

    /// Whether a user with this username exists.
    pub async fn username_exists(&self, username: &str) -> Result<bool, StoreError> {
        Ok(self.find_by_username(username).await?.is_some())
    }

    /// The user with this id.
    pub async fn find_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_as::<_, User>("SELECT id, username, created_at FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .map_err(classify)
    }

    /// Up to `limit` users with an id greater than `after` (all when `None`), by id.
    pub async fn list_users(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        // The nil UUID sorts before every UUIDv7, so one query serves the first page too.
        let after = after.unwrap_or(Uuid::nil());
        let limit = i64::from(limit);
        on_pool!(self, pool => {
            sqlx::query_as::<_, User>(
                "SELECT id, username, created_at FROM users WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await
        })
        .map_err(classify)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}

/// Errors a retry can fix (connection, pool, I/O) become [`StoreError::Unavailable`].
fn classify(err: sqlx::Error) -> StoreError {
    if sql::is_connection_error(&err) {
        StoreError::Unavailable(err)
    } else {
        StoreError::Query(err)
    }
}

impl From<ConnectError> for StoreError {
    fn from(err: ConnectError) -> Self {
        match err {
            ConnectError::UnsupportedUrl { url } => StoreError::UnsupportedUrl { url },
            ConnectError::Connect { url, source, hint } => {
                StoreError::Connect { url, source, hint }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_record_does_not_show_its_hash_in_debug() {
        let record = UserRecord {
            id: Uuid::nil(),
            username: "ann".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            created_at: Utc::now(),
        };
        let text = format!("{record:?}");
        assert!(!text.contains("argon2id"), "{text}");
        assert!(text.contains("ann"), "{text}");
    }

    #[tokio::test]
    async fn a_url_that_does_not_parse_is_named_without_its_password() {
        let url = Secret::new("postgres://confab:pw@127.0.0.1:notaport/confab");
        let err = Store::connect(&url, 1).await.expect_err("no port");
        assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("postgres://confab:***@127.0.0.1:notaport/confab"),
            "{message}"
        );
        assert!(!message.contains(":pw@"), "{message}");
    }
}
