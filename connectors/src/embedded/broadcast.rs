//! A sink that hands every group to in-process subscribers.
//!
//! Delivery to subscribers is best effort by design: a subscriber that is not connected when a
//! group is written never sees it, and one that falls more than `capacity` groups behind gets
//! [`RecvError::Lagged`](tokio::sync::broadcast::error::RecvError::Lagged) and should reload
//! from the history. The write itself never fails, so this sink never holds back commits; pair it
//! with a durable sink (Cassandra, a file) when the groups must survive.

use std::sync::Arc;

use async_trait::async_trait;
use confab_pipeline::{Group, Sink, SinkError};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Settings of a [`BroadcastSink`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BroadcastConfig {
    /// Groups kept for slow subscribers; one further behind sees a `Lagged` error.
    pub capacity: usize,
}

impl Default for BroadcastConfig {
    fn default() -> Self {
        Self { capacity: 1024 }
    }
}

/// Publishes every group it is given to the current subscribers. Clones share the channel.
pub struct BroadcastSink<K, R> {
    sender: broadcast::Sender<Arc<Group<K, R>>>,
}

impl<K, R> Clone for BroadcastSink<K, R> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
        }
    }
}

impl<K, R> BroadcastSink<K, R> {
    /// A sink keeping up to `config.capacity` groups for slow subscribers (at least one).
    pub fn new(config: &BroadcastConfig) -> Self {
        let (sender, _) = broadcast::channel(config.capacity.max(1));
        Self { sender }
    }

    /// A receiver of every group written from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Group<K, R>>> {
        self.sender.subscribe()
    }

    /// Number of subscribers currently connected.
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }
}

#[async_trait]
impl<K, R> Sink<K, R> for BroadcastSink<K, R>
where
    K: Clone + Send + Sync + 'static,
    R: Clone + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        "broadcast"
    }

    async fn write(&self, groups: &[Group<K, R>]) -> Result<(), SinkError> {
        for group in groups {
            // No subscriber is not an error: the realtime view is best effort.
            let _ = self.sender.send(Arc::new(group.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_pipeline::CompletionReason;

    fn group(id: u128) -> Group<String, u32> {
        Group {
            id: uuid::Uuid::from_u128(id),
            key: "c1".into(),
            records: vec![1, 2],
            first_time_ms: 1,
            last_time_ms: 2,
            bytes: 8,
            reason: CompletionReason::Inactivity,
        }
    }

    #[tokio::test]
    async fn every_subscriber_receives_every_group_in_order() {
        let sink = BroadcastSink::new(&BroadcastConfig::default());
        let (mut a, mut b) = (sink.subscribe(), sink.subscribe());
        sink.write(&[group(1), group(2)]).await.expect("write");
        for rx in [&mut a, &mut b] {
            assert_eq!(rx.recv().await.expect("first").id, group(1).id);
            assert_eq!(rx.recv().await.expect("second").id, group(2).id);
        }
    }

    #[tokio::test]
    async fn writing_without_subscribers_succeeds() {
        let sink: BroadcastSink<String, u32> = BroadcastSink::new(&BroadcastConfig::default());
        assert_eq!(sink.subscribers(), 0);
        sink.write(&[group(1)]).await.expect("write");
    }
}
