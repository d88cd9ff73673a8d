//! The in-process log of the embedded mode: the pipeline's [`MemoryLog`], which the embedded
//! aggregator reads. An append is acknowledged as soon as it is in memory: nothing survives the
//! process, which is the embedded mode's stated limit.

use super::{LogError, MessageLog, Tail};
use async_trait::async_trait;
use confab_pipeline::memory::MemoryLog;

/// A [`MessageLog`] over a shared [`MemoryLog`].
#[derive(Clone)]
pub struct MemoryMessageLog {
    log: MemoryLog,
}

impl std::fmt::Debug for MemoryMessageLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryMessageLog")
            .field("records", &self.log.len())
            .finish()
    }
}

impl MemoryMessageLog {
    /// Appends to `log` (clones of a `MemoryLog` share it, so a pipeline can read it).
    pub fn new(log: MemoryLog) -> Self {
        Self { log }
    }

    /// The underlying log.
    pub fn log(&self) -> &MemoryLog {
        &self.log
    }
}

#[async_trait]
impl MessageLog for MemoryMessageLog {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn append(&self, key: &str, payload: Vec<u8>) -> Result<(), LogError> {
        self.log.append(key.as_bytes(), payload);
        Ok(())
    }

    async fn check(&self) -> Result<(), LogError> {
        Ok(())
    }

    fn tail(&self) -> Option<Tail> {
        Some(Tail::Memory(self.log.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_land_in_the_shared_log_keyed_by_chat() {
        let log = MemoryLog::new(4);
        let messages = MemoryMessageLog::new(log.clone());
        messages
            .append("chat-1", b"a".to_vec())
            .await
            .expect("append");
        messages
            .append("chat-1", b"b".to_vec())
            .await
            .expect("append");
        assert_eq!(log.len(), 2);
        let offsets = log.end_offsets();
        assert_eq!(
            offsets.iter().filter(|p| p.offset == 2).count(),
            1,
            "one chat, one partition: {offsets:?}"
        );
        assert!(messages.check().await.is_ok());
    }
}
