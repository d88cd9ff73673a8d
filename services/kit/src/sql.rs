//! The SQL pool setup both services use: PostgreSQL in production, SQLite as the embedded
//! default, chosen by the URL.
//!
//! Each service keeps its own `Store` enum of two typed pools, its queries, its migrations and
//! its error classification; what is the same in both is how a URL becomes a pool: a bounded
//! wait for a pooled connection (so a request answers 503 rather than hanging), and for SQLite
//! a created-if-missing file in WAL mode with a busy timeout and foreign keys on, readable by its
//! owner only: the file (and so its `-wal` and `-shm`, which SQLite creates with the database's
//! mode) is created 0600, and an existing one with a wider mode is tightened and logged
//! ([`restrict_sqlite_files`]), because it holds password hashes and messages. The URL in
//! every message has its password replaced ([`redact`]). [`is_connection_error`] is the part of
//! the error classification both services agree on.

use confab_token::Secret;
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
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
            pool(options, max_connections, true, shown, hint).await?,
        ))
    } else if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(unparsable)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // SQLite's advice for WAL: a commit survives the process crashing; the last commits
            // can roll back at a power loss or an OS crash, never corrupting the file. FULL
            // syncs the WAL at every commit, a twentieth of `confab up`'s CPU per message.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true);
        let file = options.get_filename().to_owned();
        restrict_sqlite_files(&file).map_err(|err| unparsable(sqlx::Error::Io(err)))?;
        // No ping before each use: the connection is a file in this process, and the ping is a
        // round trip to its worker thread on every query.
        let pool = pool(options, max_connections, false, shown.clone(), "").await?;
        // WAL mode made the -wal and -shm files just now; an old pair may predate this check.
        restrict_sqlite_files(&file).map_err(|err| ConnectError::Connect {
            url: shown,
            source: sqlx::Error::Io(err),
            hint: "",
        })?;
        Ok(SqlPool::Sqlite(pool))
    } else {
        Err(ConnectError::UnsupportedUrl { url: shown })
    }
}

/// A pool of at most `max_connections` connections made with `options`, one of them opened now,
/// each checked before use when `test_before_acquire`; a failure names the URL as `shown`,
/// followed by `hint`.
async fn pool<DB: sqlx::Database>(
    options: <DB::Connection as sqlx::Connection>::Options,
    max_connections: u32,
    test_before_acquire: bool,
    shown: String,
    hint: &'static str,
) -> Result<sqlx::Pool<DB>, ConnectError> {
    PoolOptions::<DB>::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(test_before_acquire)
        .connect_with(options)
        .await
        .map_err(|source| ConnectError::Connect {
            url: shown,
            source,
            hint,
        })
}

/// Owner-only mode of the SQLite files.
#[cfg(unix)]
const SQLITE_FILE_MODE: u32 = 0o600;

/// Creates the SQLite database file 0600 when missing (SQLite then gives its `-wal` and `-shm`
/// the same mode), and tightens the file and its `-wal` and `-shm` to 0600 when they exist with
/// a wider mode, logging each change. In-memory databases have no file and are left alone.
pub fn restrict_sqlite_files(file: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let name = file.to_string_lossy();
        if name.is_empty() || name == ":memory:" || name.starts_with("file:") {
            return Ok(());
        }
        if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                // Left to SQLite, whose error names the missing folder.
                return Ok(());
            }
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(SQLITE_FILE_MODE)
            .open(file)
        {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
        for suffix in ["", "-wal", "-shm"] {
            let path = std::path::PathBuf::from(format!("{name}{suffix}"));
            let metadata = match std::fs::metadata(&path) {
                Ok(metadata) => metadata,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(SQLITE_FILE_MODE))?;
                tracing::warn!(
                    path = %path.display(),
                    was = format!("{mode:o}"),
                    now = "600",
                    "Tightened the mode of a SQLite file that others could read."
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
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

    #[cfg(unix)]
    fn mode_of(path: &std::path::Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_sqlite_database_and_its_wal_and_shm_are_owner_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("new.db");
        let url = Secret::new(format!("sqlite://{}", file.display()));
        let SqlPool::Sqlite(pool) = connect(&url, 1).await.expect("connect") else {
            panic!("sqlite");
        };
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&pool)
            .await
            .expect("write");
        for suffix in ["", "-wal", "-shm"] {
            let path = std::path::PathBuf::from(format!("{}{suffix}", file.display()));
            assert!(path.exists(), "{}", path.display());
            assert_eq!(mode_of(&path), 0o600, "{}", path.display());
        }
        pool.close().await;
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn an_existing_world_readable_sqlite_database_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("old.db");
        for suffix in ["", "-wal", "-shm"] {
            let path = format!("{}{suffix}", file.display());
            std::fs::write(&path, b"").expect("create");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        restrict_sqlite_files(&file).expect("restrict");
        for suffix in ["", "-wal", "-shm"] {
            let path = std::path::PathBuf::from(format!("{}{suffix}", file.display()));
            assert_eq!(mode_of(&path), 0o600, "{}", path.display());
        }
        restrict_sqlite_files(std::path::Path::new(":memory:")).expect("in memory: nothing");
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
