//! The Cassandra connectors' settings, shared by the sink and the history reader.

use serde::{Deserialize, Serialize};

use crate::env_or;

/// How many replicas must answer a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsistencyLevel {
    /// One replica anywhere.
    One,
    /// One replica in the local datacenter.
    LocalOne,
    /// A majority of all replicas.
    Quorum,
    /// A majority of the local datacenter's replicas.
    LocalQuorum,
    /// Every replica.
    All,
}

impl From<ConsistencyLevel> for scylla::statement::Consistency {
    fn from(level: ConsistencyLevel) -> Self {
        use scylla::statement::Consistency as C;
        match level {
            ConsistencyLevel::One => C::One,
            ConsistencyLevel::LocalOne => C::LocalOne,
            ConsistencyLevel::Quorum => C::Quorum,
            ConsistencyLevel::LocalQuorum => C::LocalQuorum,
            ConsistencyLevel::All => C::All,
        }
    }
}

/// Settings of the [`CassandraSink`](super::CassandraSink) and [`History`](super::History).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CassandraConfig {
    /// Comma-separated `host:port` contact points (default `$CASSANDRA_NODES`, else the local
    /// node that `scripts/infra up cassandra` starts).
    pub nodes: String,
    /// The keyspace holding the history tables.
    pub keyspace: String,
    /// The keyspace's replication, as a CQL map (used only when the keyspace is created).
    pub replication: String,
    /// Run the schema migrations on connect (creating the keyspace if needed).
    pub migrate: bool,
    /// Width of a history bucket in milliseconds. Bounds partition size; must never change for
    /// a keyspace that holds data.
    pub bucket_size_ms: u64,
    /// Consistency of writes and reads.
    pub consistency: ConsistencyLevel,
    /// Most requests in flight at once from one sink write.
    pub max_concurrency: usize,
    /// Most bytes of rows in one unlogged batch; kept under the server's
    /// `batch_size_fail_threshold` (50 KiB by default), which refuses larger batches outright.
    pub max_batch_bytes: usize,
    /// How long connecting to a node may take.
    pub connect_timeout_ms: u64,
}

impl Default for CassandraConfig {
    fn default() -> Self {
        Self {
            nodes: env_or("CASSANDRA_NODES", "127.0.0.1:9042"),
            keyspace: "confab".into(),
            replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
            migrate: true,
            bucket_size_ms: 10 * 24 * 3600 * 1000,
            consistency: ConsistencyLevel::LocalQuorum,
            max_concurrency: 32,
            max_batch_bytes: 32 * 1024,
            connect_timeout_ms: 10_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_with_defaults_and_refuses_unknown_fields() {
        let config: CassandraConfig =
            serde_json::from_str(r#"{"keyspace":"k","consistency":"one"}"#).expect("config");
        assert_eq!(config.keyspace, "k");
        assert_eq!(config.consistency, ConsistencyLevel::One);
        assert_eq!(config.bucket_size_ms, 864_000_000);
        assert!(serde_json::from_str::<CassandraConfig>(r#"{"bucket":"1"}"#).is_err());
    }
}
