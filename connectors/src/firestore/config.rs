//! The Firestore sink's settings.

use serde::{Deserialize, Serialize};

use crate::env_or;

/// Settings of a [`FirestoreSink`](super::FirestoreSink).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirestoreConfig {
    /// Google Cloud project (default `$FIRESTORE_PROJECT_ID`, else `confab-local`, the project
    /// the local emulator uses).
    pub project_id: String,
    /// Firestore database within the project.
    pub database_id: String,
    /// Collection holding one document per group (the seed's web client reads `messages`).
    pub collection: String,
    /// Most documents in one `BatchWrite` request.
    pub max_batch_documents: usize,
    /// How long one request may take before it counts as failed (retryable).
    pub request_timeout_ms: u64,
    /// Sustained minimum spacing of document writes of one chat; 0 turns the guard off.
    pub chat_write_interval_ms: u64,
    /// Writes of one chat allowed back to back before the spacing applies.
    pub chat_write_burst: u32,
}

impl Default for FirestoreConfig {
    fn default() -> Self {
        Self {
            project_id: env_or("FIRESTORE_PROJECT_ID", "confab-local"),
            database_id: "(default)".into(),
            collection: "messages".into(),
            max_batch_documents: 100,
            request_timeout_ms: 10_000,
            chat_write_interval_ms: 200,
            chat_write_burst: 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_with_defaults_and_refuses_unknown_fields() {
        let config: FirestoreConfig =
            serde_json::from_str(r#"{"collection":"groups"}"#).expect("config");
        assert_eq!(config.collection, "groups");
        assert_eq!(config.database_id, "(default)");
        assert!(serde_json::from_str::<FirestoreConfig>(r#"{"colection":"x"}"#).is_err());
    }
}
