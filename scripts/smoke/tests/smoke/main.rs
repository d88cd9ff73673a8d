//! Smoke tests: one module per server started by `scripts/infra`, each proving the server is
//! really usable from Rust with the client the project uses for it. Every test uses names unique
//! to its run, so runs can share a server. A test whose server is down fails with the command that
//! starts it; none passes silently.

mod cassandra;
mod firestore;
mod kafka;
mod postgres;

use std::time::Duration;

/// The value of the environment variable `name`, or `default` (a loopback address) when unset.
/// `scripts/infra env` prints these variables.
fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// A short name unique to this test run, usable as a Kafka topic, keyspace or collection name.
fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// The message a test fails with when it cannot reach `server` at `addr`.
fn unreachable(server: &str, addr: &str, err: impl std::fmt::Display) -> String {
    format!(
        "cannot reach {server} at {addr} ({err}): start it with `scripts/infra up {}`",
        server.to_lowercase()
    )
}

/// How long a smoke test waits for a server's answer before failing.
const WAIT: Duration = Duration::from_secs(30);
