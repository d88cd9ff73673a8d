//! The SQL pool setup both services use: PostgreSQL in production, SQLite as the embedded
//! default, chosen by the URL.
//!
//! Each service keeps its own `Store` enum of two typed pools, its queries, its migrations and
//! its error classification; what is the same in both is how a URL becomes a pool: a bounded
//! wait for a pooled connection (so a request answers 503 rather than hanging), and for SQLite
//! a created-if-missing file in WAL mode with a busy timeout and foreign keys on. The URL in
//! every message has its password replaced ([`redact`]). [`is_connection_error`] is the part of
//! the error classification both services agree on.

use confab_token::Secret;
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// How long a request waits for a pooled connection before answering 503.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a SQLite statement waits for a lock held by another connection.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected pool, of whichever database the URL named.
#[derive(Debug, Clone)]
pub enum SqlPool {
    /// PostgreSQL.
    Postgres(PgPool),
    /// SQLite, the embedded default.
    Sqlite(SqlitePool),
}

/// Why [`connect`] failed. The services turn it into their `StoreError`'s variants of the same
/// names, messages unchanged. Exhaustive on purpose: a new case must be handled by both.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL names no supported database.
    #[error("unsupported database URL {url:?}: use postgres://... or sqlite://...")]
    UnsupportedUrl {
        /// The URL, password removed.
        url: String,
    },
    /// The database could not be reached (or the URL not parsed); retrying later can help when
    /// it could not be reached.
    #[error("cannot reach the database at {url}: {source}{hint}")]
    Connect {
        /// The URL, password removed.
        url: String,
        /// What happened.
        source: sqlx::Error,
        /// How to start it, when we know.
        hint: &'static str,
    },
}

/// Connects to `database_url` (`postgres://`, `postgresql://` or `sqlite:`) with at most
/// `max_connections` connections, and checks the connection.
pub async fn connect(database_url: &Secret, max_connections: u32) -> Result<SqlPool, ConnectError> {
    let url = database_url.expose();
    let shown = redact(url);
    let unparsable = |source| ConnectError::Connect {
        url: shown.clone(),
        source,
        hint: "",
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = PgConnectOptions::from_str(url).map_err(unparsable)?;
        let hint = " (locally: start it with scripts/infra up postgres)";
        Ok(SqlPool::Postgres(
            pool(options, max_connections, shown, hint).await?,
        ))
    } else if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(unparsable)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true);
        Ok(SqlPool::Sqlite(
            pool(options, max_connections, shown, "").await?,
        ))
    } else {
        Err(ConnectError::UnsupportedUrl { url: shown })
    }
}

/// A pool of at most `max_connections` connections made with `options`, one of them opened now;
/// a failure names the URL as `shown`, followed by `hint`.
async fn pool<DB: sqlx::Database>(
    options: <DB::Connection as sqlx::Connection>::Options,
    max_connections: u32,
    shown: String,
    hint: &'static str,
) -> Result<sqlx::Pool<DB>, ConnectError> {
    PoolOptions::<DB>::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| ConnectError::Connect {
            url: shown,
            source,
            hint,
        })
}

/// Whether the error is the connection's, not the statement's (I/O, TLS, a pool that timed out
/// or closed, a crashed worker): the database may answer again, so a retry can help.
pub fn is_connection_error(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

/// The URL with its password replaced, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://confab:pw@127.0.0.1:5432/confab"),
            "postgres://confab:***@127.0.0.1:5432/confab"
        );
        assert_eq!(redact("sqlite://confab-auth.db"), "sqlite://confab-auth.db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[tokio::test]
    async fn an_unsupported_url_is_named_without_its_password() {
        let err = connect(&Secret::new("mysql://root:hunter2@db/x"), 1)
            .await
            .expect_err("mysql is not supported");
        let message = err.to_string();
        assert!(message.contains("mysql://root:***@db/x"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
