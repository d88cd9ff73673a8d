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
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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

    /// Up to `limit` users whose username starts with `prefix`, after the username `after`
    /// (all when `None`), in username (byte) order. A range on the username, so an index serves
    /// it: SQLite's unique index (its default collation is byte order), and PostgreSQL's
    /// `users_username_bytes` (migration 0002).
    pub async fn search_users(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        let (low, high) = prefix_range(prefix);
        let after = after.unwrap_or("");
        let limit = i64::from(limit);
        match self {
            Store::Postgres(pool) => {
                sqlx::query_as::<_, User>(SEARCH_POSTGRES)
                    .bind(&low)
                    .bind(&high)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(pool)
                    .await
            }
            Store::Sqlite(pool) => {
                sqlx::query_as::<_, User>(SEARCH_SQLITE)
                    .bind(&low)
                    .bind(&high)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(pool)
                    .await
            }
        }
        .map_err(classify)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}

/// The user search on PostgreSQL: `$1 <= username < $2`, after `$3`, at most `$4`, compared
/// in byte order (`COLLATE "C"`) so that the range is the prefix whatever the database's
/// collation. Public for the test that checks an index serves it.
#[doc(hidden)]
pub const SEARCH_POSTGRES: &str = r#"SELECT id, username, created_at FROM users
    WHERE (username COLLATE "C") >= $1 AND (username COLLATE "C") < $2
      AND (username COLLATE "C") > $3
    ORDER BY (username COLLATE "C") LIMIT $4"#;

/// The user search on SQLite (whose default collation is byte order already).
#[doc(hidden)]
pub const SEARCH_SQLITE: &str = "SELECT id, username, created_at FROM users \
    WHERE username >= $1 AND username < $2 AND username > $3 ORDER BY username LIMIT $4";

/// The byte-order range `[low, high)` holding exactly the usernames that start with `prefix`:
/// every character a username may hold sorts below `~`, so `prefix~` is above all of them and
/// below any name that leaves the prefix.
fn prefix_range(prefix: &str) -> (String, String) {
    (prefix.to_owned(), format!("{prefix}~"))
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
    fn the_prefix_range_holds_exactly_the_names_with_the_prefix() {
        let (low, high) = prefix_range("al");
        let inside = |name: &str| name >= low.as_str() && name < high.as_str();
        for name in ["al", "al.x", "al-", "al_", "al9", "alice", "alzzzz"] {
            assert!(inside(name), "{name}");
        }
        for name in ["a", "a.l", "ak", "am", "b", "0al", "bal"] {
            assert!(!inside(name), "{name}");
        }
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
