//! Cassandra / ScyllaDB through the scylla driver: the chat history.
//!
//! - [`schema`]: the one place that defines the keyspace's tables and their versioned
//!   migrations (the chat service runs the same [`migrate`]).
//! - [`CassandraSink`]: every message of every group as one row of `messages`, partitioned by
//!   `(chat_id, bucket)` and clustered by its `time` TimeUUID, newest first. Rows are keyed by
//!   their time, so writing a group again rewrites the same rows: replays are harmless.
//! - [`History`]: the pagination query `(chat_id, before, limit)`, newest first, walking a
//!   chat's non-empty buckets from the newest down (never `ALLOW FILTERING`).
//!
//! Buckets bound partition size (Discord's design): a message's bucket is the start, in
//! milliseconds since the Unix epoch, of the `bucket_size_ms` window holding its time. Storing
//! the start rather than a bucket number lets a reader walk buckets without knowing the size;
//! the size must still stay fixed for a keyspace, or a rewrite of an old message would land in a
//! second partition.

mod config;
mod history;
pub mod schema;
mod sink;

pub use config::{CassandraConfig, ConsistencyLevel};
pub use history::History;
pub use schema::{migrate, Migration, MIGRATIONS};
pub use sink::CassandraSink;

use std::sync::Arc;
use std::time::Duration;

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};

/// Why a Cassandra operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CassandraError {
    /// No contact point answered.
    #[error(
        "cannot reach Cassandra at {nodes} ({message}): start it with \
         `scripts/infra up cassandra` or set CASSANDRA_NODES"
    )]
    Unreachable {
        /// The contact points tried.
        nodes: String,
        /// The driver's explanation.
        message: String,
    },
    /// A setting is invalid.
    #[error("invalid Cassandra configuration: {0}")]
    Config(String),
    /// A schema migration failed.
    #[error("Cassandra schema migration {version} ({name}) failed: {message}")]
    Migration {
        /// The migration's version.
        version: i32,
        /// The migration's name.
        name: &'static str,
        /// The driver's explanation.
        message: String,
    },
    /// A statement or query failed; `retryable` says whether trying again can help.
    #[error("Cassandra {what} failed: {message}")]
    Query {
        /// What was being done.
        what: &'static str,
        /// The driver's explanation.
        message: String,
        /// Whether trying again can help (a timeout, an overloaded or unavailable node).
        retryable: bool,
    },
    /// A pagination cursor is not a version-1 TimeUUID.
    #[error("history cursor {0} is not a version-1 TimeUUID")]
    InvalidCursor(uuid::Uuid),
}

impl CassandraError {
    pub(crate) fn query(what: &'static str, error: impl std::fmt::Display) -> Self {
        Self::Query {
            what,
            message: error.to_string(),
            retryable: false,
        }
    }

    pub(crate) fn execution(what: &'static str, error: &ExecutionError) -> Self {
        Self::Query {
            what,
            message: error.to_string(),
            retryable: is_retryable(error),
        }
    }
}

/// Whether a failed request can succeed if sent again: a node down, overloaded, bootstrapping or
/// timing out, a broken connection. A statement the server refuses (syntax, invalid, denied) or
/// one that cannot be serialized will fail again.
pub fn is_retryable(error: &ExecutionError) -> bool {
    match error {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, _)) => matches!(
            db,
            DbError::Unavailable { .. }
                | DbError::Overloaded
                | DbError::IsBootstrapping
                | DbError::ReadTimeout { .. }
                | DbError::WriteTimeout { .. }
                | DbError::ReadFailure { .. }
                | DbError::WriteFailure { .. }
                | DbError::TruncateError
                | DbError::ServerError
                | DbError::RateLimitReached { .. }
                | DbError::Unprepared { .. }
        ),
        ExecutionError::LastAttemptError(
            RequestAttemptError::SerializationError(_)
            | RequestAttemptError::CqlRequestSerialization(_),
        )
        | ExecutionError::BadQuery(_) => false,
        _ => true,
    }
}

/// Opens a session to the contact points in `config.nodes` (comma-separated `host:port`).
pub async fn connect(config: &CassandraConfig) -> Result<Arc<Session>, CassandraError> {
    let nodes: Vec<&str> = config
        .nodes
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if nodes.is_empty() {
        return Err(CassandraError::Config(
            "`nodes` names no contact point".into(),
        ));
    }
    let session = SessionBuilder::new()
        .known_nodes(&nodes)
        .connection_timeout(Duration::from_millis(config.connect_timeout_ms))
        .build()
        .await
        .map_err(|e| CassandraError::Unreachable {
            nodes: config.nodes.clone(),
            message: e.to_string(),
        })?;
    Ok(Arc::new(session))
}

/// Checks that `keyspace` is a plain CQL identifier, since it is spliced into statements.
pub fn check_keyspace(keyspace: &str) -> Result<(), CassandraError> {
    let ok = !keyspace.is_empty()
        && keyspace.len() <= 48
        && keyspace.starts_with(|c: char| c.is_ascii_alphabetic())
        && keyspace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(CassandraError::Config(format!(
            "keyspace `{keyspace}` must be 1-48 letters, digits or underscores, starting with a letter"
        )))
    }
}

/// The bucket (its start, in ms since the epoch) of a message at `time_ms`.
pub fn bucket_of(time_ms: u64, bucket_size_ms: u64) -> i64 {
    let size = bucket_size_ms.max(1);
    (time_ms - time_ms % size) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_window_starts() {
        let day = 86_400_000;
        assert_eq!(bucket_of(0, day), 0);
        assert_eq!(bucket_of(day - 1, day), 0);
        assert_eq!(bucket_of(day, day), day as i64);
        assert_eq!(bucket_of(5 * day + 7, 2 * day), 4 * day as i64);
    }

    #[test]
    fn keyspace_names_are_plain_identifiers() {
        assert!(check_keyspace("confab_test_1").is_ok());
        for bad in ["", "1abc", "a;DROP", "a-b", &"x".repeat(49)] {
            assert!(check_keyspace(bad).is_err(), "{bad}");
        }
    }
}
