//! Environment lookups shared by the connectors' defaults.

/// The value of the environment variable `name`, or `default` when it is unset or not UTF-8.
/// `scripts/infra env` prints the variables the connectors read (`KAFKA_BROKERS`,
/// `CASSANDRA_NODES`, `FIRESTORE_EMULATOR_HOST`, `FIRESTORE_PROJECT_ID`).
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}
