//! JSON-lines files: completed groups, and dead letters, one JSON object per line.
//!
//! A write returns once its lines are appended and, with `fsync` on, on disk. Replays append the
//! same group again (same `id`), so readers deduplicate by `id`: a file is a log, not a table.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use base64::Engine as _;
use confab_pipeline::{DeadLetter, DeadLetterSink, Group, Sink, SinkError};
use serde::{Deserialize, Serialize};
use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// Settings of a [`JsonLinesFileSink`] or [`JsonLinesDeadLetters`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonLinesFileConfig {
    /// The file to append to; created (with its parent folders) if missing.
    pub path: PathBuf,
    /// Whether a write waits until its lines are on disk (`fdatasync`), so that an acknowledged
    /// group survives a power loss and not only a crash of the process.
    pub fsync: bool,
}

impl Default for JsonLinesFileConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("groups.jsonl"),
            fsync: true,
        }
    }
}

/// An append-only file of lines, shared by the two sinks below.
struct LineFile {
    path: PathBuf,
    fsync: bool,
    file: Mutex<File>,
}

impl LineFile {
    async fn open(config: &JsonLinesFileConfig) -> Result<Self, SinkError> {
        if let Some(parent) = config.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_error("create the folder of", &config.path, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.path)
            .await
            .map_err(|e| io_error("open", &config.path, e))?;
        Ok(Self {
            path: config.path.clone(),
            fsync: config.fsync,
            file: Mutex::new(file),
        })
    }

    async fn append(&self, lines: &[u8]) -> Result<(), SinkError> {
        let mut file = self.file.lock().await;
        file.write_all(lines)
            .await
            .map_err(|e| io_error("append to", &self.path, e))?;
        file.flush()
            .await
            .map_err(|e| io_error("flush", &self.path, e))?;
        if self.fsync {
            file.sync_data()
                .await
                .map_err(|e| io_error("sync", &self.path, e))?;
        }
        Ok(())
    }
}

/// A file error: a full disk or an interrupted write may pass, a missing permission will not.
fn io_error(action: &str, path: &Path, e: std::io::Error) -> SinkError {
    let message = format!("cannot {action} {}: {e}", path.display());
    match e.kind() {
        std::io::ErrorKind::PermissionDenied
        | std::io::ErrorKind::NotFound
        | std::io::ErrorKind::InvalidInput
        | std::io::ErrorKind::IsADirectory => SinkError::fatal(message),
        _ => SinkError::retryable(message),
    }
}

/// Appends every group, serialized as [`Group`] JSON, as one line.
pub struct JsonLinesFileSink {
    file: LineFile,
}

impl JsonLinesFileSink {
    /// Opens (creating if needed) the file named in `config`.
    pub async fn open(config: &JsonLinesFileConfig) -> Result<Self, SinkError> {
        Ok(Self {
            file: LineFile::open(config).await?,
        })
    }
}

/// Appends `value` and a newline to `out`.
fn push_line(out: &mut Vec<u8>, value: &impl Serialize) -> Result<(), SinkError> {
    serde_json::to_writer(&mut *out, value)
        .map_err(|e| SinkError::fatal(format!("cannot encode a line as JSON: {e}")))?;
    out.push(b'\n');
    Ok(())
}

#[async_trait]
impl<K, R> Sink<K, R> for JsonLinesFileSink
where
    K: Serialize + Send + Sync,
    R: Serialize + Send + Sync,
{
    fn name(&self) -> &str {
        "file"
    }

    async fn write(&self, groups: &[Group<K, R>]) -> Result<(), SinkError> {
        let mut lines = Vec::new();
        for group in groups {
            push_line(&mut lines, group)?;
        }
        self.file.append(&lines).await
    }
}

/// One dead letter as a JSON line. Bytes that are UTF-8 are kept as text; others as base64, so
/// that garbage input is preserved exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterLine {
    /// Partition of the rejected record.
    pub partition: u32,
    /// Offset of the rejected record.
    pub offset: u64,
    /// Why it was rejected.
    pub reason: String,
    /// The key as text, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The key as base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_base64: Option<String>,
    /// The payload as text, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The payload as base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
}

/// Bytes as (text, base64): exactly one is set.
fn text_or_base64(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (Some(text.to_string()), None),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
    }
}

impl From<&DeadLetter> for DeadLetterLine {
    fn from(letter: &DeadLetter) -> Self {
        let (key, key_base64) = match &letter.key {
            Some(k) => text_or_base64(k),
            None => (None, None),
        };
        let (payload, payload_base64) = text_or_base64(&letter.payload);
        Self {
            partition: letter.position.partition,
            offset: letter.position.offset,
            reason: letter.reason.clone(),
            key,
            key_base64,
            payload,
            payload_base64,
        }
    }
}

/// Appends every dead letter as a [`DeadLetterLine`].
pub struct JsonLinesDeadLetters {
    file: LineFile,
}

impl JsonLinesDeadLetters {
    /// Opens (creating if needed) the file named in `config`.
    pub async fn open(config: &JsonLinesFileConfig) -> Result<Self, SinkError> {
        Ok(Self {
            file: LineFile::open(config).await?,
        })
    }
}

#[async_trait]
impl DeadLetterSink for JsonLinesDeadLetters {
    async fn write(&self, letters: &[DeadLetter]) -> Result<(), SinkError> {
        let mut lines = Vec::new();
        for letter in letters {
            push_line(&mut lines, &DeadLetterLine::from(letter))?;
        }
        self.file.append(&lines).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_pipeline::{CompletionReason, Position};

    #[tokio::test]
    async fn groups_and_dead_letters_are_appended_one_per_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = JsonLinesFileConfig {
            path: dir.path().join("nested/groups.jsonl"),
            fsync: true,
        };
        let sink = JsonLinesFileSink::open(&config).await.expect("open");
        let group = Group {
            id: uuid::Uuid::from_u128(7),
            key: "c1".to_string(),
            records: vec!["a".to_string(), "b".to_string()],
            first_time_ms: 1,
            last_time_ms: 2,
            bytes: 2,
            reason: CompletionReason::MaxMessages,
        };
        sink.write(&[group.clone(), group.clone()])
            .await
            .expect("write");
        let text = std::fs::read_to_string(&config.path).expect("read back");
        let lines: Vec<Group<String, String>> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a group per line"))
            .collect();
        assert_eq!(lines, vec![group.clone(), group]);

        let letters_config = JsonLinesFileConfig {
            path: dir.path().join("dead.jsonl"),
            fsync: false,
        };
        let letters = JsonLinesDeadLetters::open(&letters_config)
            .await
            .expect("open");
        letters
            .write(&[DeadLetter {
                position: Position {
                    partition: 2,
                    offset: 9,
                },
                key: Some(b"c1".to_vec()),
                payload: vec![0xff, 0xfe, 0x00],
                reason: "not a chat message".into(),
            }])
            .await
            .expect("write letters");
        let line: DeadLetterLine = serde_json::from_str(
            std::fs::read_to_string(&letters_config.path)
                .expect("read back")
                .trim(),
        )
        .expect("a letter");
        assert_eq!(line.key.as_deref(), Some("c1"));
        assert_eq!(line.payload, None);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(line.payload_base64.expect("garbage kept as base64"))
            .expect("base64");
        assert_eq!(raw, vec![0xff, 0xfe, 0x00]);
        assert_eq!((line.partition, line.offset), (2, 9));
    }
}
