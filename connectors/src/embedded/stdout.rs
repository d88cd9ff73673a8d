//! A sink that prints every group as one JSON line on standard output, for trying the pipeline
//! from a shell (`... | jq`).

use async_trait::async_trait;
use confab_pipeline::{Group, Sink, SinkError};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// Settings of a [`StdoutSink`] (none yet; the struct keeps config files uniform).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StdoutConfig {}

/// Prints every group as a [`Group`] JSON line.
pub struct StdoutSink {
    out: Mutex<tokio::io::Stdout>,
}

impl StdoutSink {
    /// A sink writing to this process's standard output.
    pub fn new(_config: &StdoutConfig) -> Self {
        Self {
            out: Mutex::new(tokio::io::stdout()),
        }
    }
}

#[async_trait]
impl<K, R> Sink<K, R> for StdoutSink
where
    K: Serialize + Send + Sync,
    R: Serialize + Send + Sync,
{
    fn name(&self) -> &str {
        "stdout"
    }

    async fn write(&self, groups: &[Group<K, R>]) -> Result<(), SinkError> {
        let mut lines = Vec::new();
        for group in groups {
            serde_json::to_writer(&mut lines, group)
                .map_err(|e| SinkError::rejected(format!("cannot encode a group as JSON: {e}")))?;
            lines.push(b'\n');
        }
        let mut out = self.out.lock().await;
        // A closed stdout (the reader went away) will not come back.
        out.write_all(&lines)
            .await
            .map_err(|e| SinkError::fatal(format!("cannot write to stdout: {e}")))?;
        out.flush()
            .await
            .map_err(|e| SinkError::fatal(format!("cannot flush stdout: {e}")))
    }
}
