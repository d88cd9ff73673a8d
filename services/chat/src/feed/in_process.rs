//! The in-process feed: subscribers of a broadcast channel of groups, which the embedded
//! aggregator's broadcast sink writes.

use super::{ChatGroup, GroupFeed};
use confab_connectors::embedded::BroadcastSink;
use confab_pipeline::ChatMessage;
use std::sync::Arc;
use tokio::sync::broadcast;

type Subscribe = dyn Fn() -> broadcast::Receiver<Arc<ChatGroup>> + Send + Sync;

/// A [`GroupFeed`] over an in-process broadcast channel.
#[derive(Clone)]
pub struct InProcessFeed {
    subscribe: Arc<Subscribe>,
}

impl std::fmt::Debug for InProcessFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessFeed").finish_non_exhaustive()
    }
}

impl InProcessFeed {
    /// Subscribes to `sender`'s channel.
    pub fn from_sender(sender: broadcast::Sender<Arc<ChatGroup>>) -> Self {
        Self {
            subscribe: Arc::new(move || sender.subscribe()),
        }
    }

    /// Subscribes to what a pipeline's broadcast sink writes.
    pub fn from_sink(sink: BroadcastSink<String, ChatMessage>) -> Self {
        Self {
            subscribe: Arc::new(move || sink.subscribe()),
        }
    }
}

impl GroupFeed for InProcessFeed {
    fn name(&self) -> &'static str {
        "in_process"
    }

    fn subscribe(&self) -> Option<broadcast::Receiver<Arc<ChatGroup>>> {
        Some((self.subscribe)())
    }

    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// No realtime feed: the events endpoint answers 503.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFeed;

impl GroupFeed for NoFeed {
    fn name(&self) -> &'static str {
        "none"
    }

    fn subscribe(&self) -> Option<broadcast::Receiver<Arc<ChatGroup>>> {
        None
    }

    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}
