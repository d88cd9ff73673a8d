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

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// It was the session's current token: the next one is stored and this one is used up.
    Rotated {
        /// The session.
        session: Uuid,
        /// Its user.
        user: Uuid,
        /// The user's name.
        username: String,
    },
    /// It was used before: somebody else holds a copy. The caller revokes the session.
    Reused {
        /// The session.
        session: Uuid,
        /// Its user.
        user: Uuid,
    },
    /// Its session expired or was revoked.
    Ended,
    /// No such token.
    Unknown,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    user_id: Uuid,
    username: String,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    used: bool,
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

    /// Replaces a user's password hash; whether the user exists.
    pub async fn update_password(
        &self,
        user: Uuid,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                .bind(user)
                .bind(password_hash)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
        .map_err(classify)
    }

    /// Starts a login session for `user` until `expires_at`, with its first refresh token.
    pub async fn create_session(
        &self,
        user: Uuid,
        expires_at: DateTime<Utc>,
        refresh_hash: &[u8; 32],
    ) -> Result<Uuid, StoreError> {
        let id = Uuid::now_v7();
        let now = Utc::now().trunc_subsecs(6);
        on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(user)
            .bind(now)
            .bind(expires_at.trunc_subsecs(6))
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, session_id, issued_at) VALUES ($1, $2, $3)",
            )
            .bind(&refresh_hash[..])
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        }.await)
        .map_err(classify)?;
        Ok(id)
    }

    /// Exchanges the refresh token hashed `used` for the one hashed `next`, once: see
    /// [`Rotation`].
    pub async fn rotate_refresh(
        &self,
        used: &[u8; 32],
        next: &[u8; 32],
    ) -> Result<Rotation, StoreError> {
        let now = Utc::now().trunc_subsecs(6);
        on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let found: Option<SessionRow> = sqlx::query_as(
                "SELECT s.id, s.user_id, u.username, s.expires_at, s.revoked_at, \
                        r.used_at IS NOT NULL AS used \
                 FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id \
                 JOIN users u ON u.id = s.user_id WHERE r.token_hash = $1",
            )
            .bind(&used[..])
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = found else {
                return Ok(Rotation::Unknown);
            };
            if row.revoked_at.is_some() || row.expires_at <= now {
                return Ok(Rotation::Ended);
            }
            let claimed = sqlx::query(
                "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
            )
            .bind(&used[..])
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if row.used || claimed == 0 {
                return Ok(Rotation::Reused {
                    session: row.id,
                    user: row.user_id,
                });
            }
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, session_id, issued_at) VALUES ($1, $2, $3)",
            )
            .bind(&next[..])
            .bind(row.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Rotation::Rotated {
                session: row.id,
                user: row.user_id,
                username: row.username,
            })
        }.await)
        .map_err(classify)
    }

    /// Revokes the session `id` of `user` (if it is theirs and still open); whether it did.
    pub async fn revoke_session(&self, user: Uuid, id: Uuid) -> Result<bool, StoreError> {
        let now = Utc::now().trunc_subsecs(6);
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE sessions SET revoked_at = $3 \
                 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
            )
            .bind(id)
            .bind(user)
            .bind(now)
            .execute(pool)
            .await
            .map(|done| done.rows_affected() == 1)
        })
        .map_err(classify)
    }

    /// Revokes every open session of `user`; their ids.
    pub async fn revoke_user_sessions(&self, user: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let now = Utc::now().trunc_subsecs(6);
        on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let ids: Vec<(Uuid,)> = sqlx::query_as(
                "SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
            )
            .bind(user)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                .bind(user)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(ids.into_iter().map(|(id,)| id).collect())
        }.await)
        .map_err(classify)
    }

    /// Sessions revoked after `since`: `(session, user, revoked_at)`.
    pub async fn revoked_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, Uuid, DateTime<Utc>)>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, user_id, revoked_at FROM sessions WHERE revoked_at > $1",
            )
            .bind(since)
            .fetch_all(pool)
            .await
        })
        .map_err(classify)
    }

    /// Deletes sessions (and their refresh tokens) that expired before `before`; how many.
    pub async fn prune_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "DELETE FROM refresh_tokens WHERE session_id IN \
                 (SELECT id FROM sessions WHERE expires_at < $1)",
            )
            .bind(before)
            .execute(&mut *tx)
            .await?;
            let pruned = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(pruned)
        }.await)
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
        // The same range on both; only the collation that makes it byte order differs.
        let sql = match self {
            Store::Postgres(_) => SEARCH_POSTGRES,
            Store::Sqlite(_) => SEARCH_SQLITE,
        };
        on_pool!(self, pool => {
            sqlx::query_as::<_, User>(sql)
                .bind(&low)
                .bind(&high)
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
