//! A source reading one record per line from a file or standard input.
//!
//! Positions are byte offsets in partition 0: a record's offset is where its line starts, and a
//! committed offset is where the next unacknowledged line starts. With `offsets_path` set, each
//! commit is saved there (written to a temporary file, then renamed, so a crash leaves the old or
//! the new offset, never a torn one) and a restart of a file source resumes from it. Standard
//! input cannot seek, so it always starts from its first byte. Empty lines are skipped.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use confab_pipeline::{Polled, Position, Source, SourceError, SourceRecord};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncSeekExt, BufReader};

/// Settings of a [`JsonLinesSource`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonLinesSourceConfig {
    /// The file to read, or `-` for standard input.
    pub path: String,
    /// Keep reading as the file grows (like `tail -f`) instead of ending at its end.
    pub follow: bool,
    /// Where to keep the committed byte offset, so a restart resumes after the last acknowledged
    /// line. Unset: every start reads from the beginning.
    pub offsets_path: Option<PathBuf>,
}

impl Default for JsonLinesSourceConfig {
    fn default() -> Self {
        Self {
            path: "-".into(),
            follow: false,
            offsets_path: None,
        }
    }
}

/// Reads lines as [`SourceRecord`]s with no key and no headers.
pub struct JsonLinesSource {
    reader: Pin<Box<dyn AsyncBufRead + Send>>,
    /// Byte offset of the next unread byte.
    offset: u64,
    /// A line read in part (a poll timed out mid-line); completed by the next read.
    partial: Vec<u8>,
    follow: bool,
    offsets_path: Option<PathBuf>,
    ended: bool,
}

impl JsonLinesSource {
    /// Opens the file (or stdin) in `config`, at the saved offset if there is one.
    pub async fn open(config: &JsonLinesSourceConfig) -> Result<Self, SourceError> {
        let saved = match &config.offsets_path {
            Some(path) => read_offset(path).await?,
            None => 0,
        };
        let (reader, offset): (Pin<Box<dyn AsyncBufRead + Send>>, u64) = if config.path == "-" {
            (Box::pin(BufReader::new(tokio::io::stdin())), 0)
        } else {
            let mut file = tokio::fs::File::open(&config.path)
                .await
                .map_err(|e| SourceError::fatal(format!("cannot open {}: {e}", config.path)))?;
            file.seek(std::io::SeekFrom::Start(saved))
                .await
                .map_err(|e| {
                    SourceError::fatal(format!("cannot seek {} to {saved}: {e}", config.path))
                })?;
            (Box::pin(BufReader::new(file)), saved)
        };
        Ok(Self {
            reader,
            offset,
            partial: Vec::new(),
            follow: config.follow && config.path != "-",
            offsets_path: config.offsets_path.clone(),
            ended: false,
        })
    }

    /// Reads one line. `Ok(None)`: end of input for now (or the wait ran out).
    async fn next_line(&mut self, block: bool) -> Result<Option<SourceRecord>, SourceError> {
        loop {
            let start_len = self.partial.len();
            let read = {
                let fut = self.reader.read_until(b'\n', &mut self.partial);
                if block {
                    fut.await
                } else {
                    match fut.now_or_never() {
                        Some(read) => read,
                        None => return Ok(None),
                    }
                }
            };
            let n = read.map_err(|e| SourceError::retryable(format!("cannot read: {e}")))?;
            let complete = self.partial.last() == Some(&b'\n');
            if n == 0 && start_len == self.partial.len() && !complete {
                // End of input. A last line without a newline still counts, unless more may come.
                if self.partial.is_empty() || self.follow {
                    return Ok(None);
                }
            } else if !complete {
                continue;
            }
            let line = std::mem::take(&mut self.partial);
            let position = Position {
                partition: 0,
                offset: self.offset,
            };
            self.offset += line.len() as u64;
            let payload = trim_line_end(&line);
            if payload.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(SourceRecord {
                position,
                key: None,
                payload: payload.to_vec(),
                headers: Vec::new(),
            }));
        }
    }
}

/// The line without its `\n` or `\r\n`.
fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

async fn read_offset(path: &Path) -> Result<u64, SourceError> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => text.trim().parse().map_err(|e| {
            SourceError::fatal(format!(
                "{} holds no byte offset ({e}); delete it to start from the beginning",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(SourceError::fatal(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

#[async_trait]
impl Source for JsonLinesSource {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Polled, SourceError> {
        if self.ended {
            return Ok(Polled::End);
        }
        let mut records = Vec::new();
        let first = tokio::time::timeout(wait, self.next_line(true)).await;
        match first {
            Ok(Ok(Some(record))) => records.push(record),
            Ok(Ok(None)) => {
                if self.follow {
                    tokio::time::sleep(wait).await;
                    return Ok(Polled::Idle);
                }
                self.ended = true;
                return Ok(Polled::End);
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(Polled::Idle),
        }
        while records.len() < max {
            match self.next_line(false).await? {
                Some(record) => records.push(record),
                None => break,
            }
        }
        Ok(Polled::Records(records))
    }

    async fn commit(&mut self, next: &[Position]) -> Result<(), SourceError> {
        let (Some(path), Some(next)) = (&self.offsets_path, next.iter().find(|p| p.partition == 0))
        else {
            return Ok(());
        };
        let tmp = path.with_extension("tmp");
        let write = async {
            tokio::fs::write(&tmp, format!("{}\n", next.offset)).await?;
            tokio::fs::rename(&tmp, path).await
        };
        write.await.map_err(|e| {
            SourceError::retryable(format!(
                "cannot save the committed offset to {}: {e}",
                path.display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn drain(source: &mut JsonLinesSource) -> Vec<SourceRecord> {
        let mut out = Vec::new();
        loop {
            match source
                .poll(2, Duration::from_millis(50))
                .await
                .expect("poll")
            {
                Polled::Records(records) => out.extend(records),
                Polled::End => return out,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn reads_lines_with_byte_offsets_and_resumes_after_the_commit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}").expect("write input");
        let config = JsonLinesSourceConfig {
            path: input.to_string_lossy().into_owned(),
            follow: false,
            offsets_path: Some(dir.path().join("in.offset")),
        };
        let mut source = JsonLinesSource::open(&config).await.expect("open");
        let records = drain(&mut source).await;
        let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
        assert_eq!(
            payloads,
            [&b"{\"a\":1}"[..], &b"{\"b\":2}"[..], &b"{\"c\":3}"[..]]
        );
        let offsets: Vec<u64> = records.iter().map(|r| r.position.offset).collect();
        assert_eq!(offsets, [0, 9, 18]);

        source
            .commit(&[Position {
                partition: 0,
                offset: 18,
            }])
            .await
            .expect("commit");
        let mut again = JsonLinesSource::open(&config).await.expect("reopen");
        let rest = drain(&mut again).await;
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].payload, b"{\"c\":3}");
        assert_eq!(rest[0].position.offset, 18);
    }
}
