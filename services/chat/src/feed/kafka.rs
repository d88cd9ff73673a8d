//! The Kafka group feed: reads the `chat_messages_grouped` topic (one JSON `Group` per record,
//! written by the aggregator's Kafka sink) and broadcasts each group to this instance's events
//! streams.
//!
//! Every instance reads every group from the topic's end ([`TopicTail`]). A missing topic is
//! created (`create_partitions`), or waited for with the reason on `/readyz`.
//! Exact repeats of a group (the sink is at least once) are dropped when they are among the last
//! few thousand groups seen; a longer copy of a group is passed on.

use super::{ChatGroup, GroupFeed};
use crate::config::KafkaEventsConfig;
use crate::kafka_tail::TopicTail;
use rdkafka::message::{Headers, Message};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Groups remembered for deduplication.
const RECENT_GROUPS: usize = 4096;

/// A [`GroupFeed`] reading completed groups from a Kafka topic.
pub struct KafkaGroupFeed {
    sender: broadcast::Sender<Arc<ChatGroup>>,
    tail: TopicTail,
    topic: String,
}

impl std::fmt::Debug for KafkaGroupFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaGroupFeed")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaGroupFeed {
    /// Starts reading `config.topic` from its end, in a background task that lives as long as
    /// the feed. Fails only on invalid settings; an unreachable broker or a missing topic is
    /// retried, and reported by [`GroupFeed::check`].
    pub fn start(config: &KafkaEventsConfig) -> Result<Self, String> {
        let (sender, _) = broadcast::channel(config.capacity.max(1));
        let groups = sender.clone();
        let topic = config.topic.clone();
        let mut recent = Recent::default();
        let tail = TopicTail::start(
            &config.brokers,
            &config.topic,
            &config.properties,
            "group feed",
            i32::try_from(config.create_partitions)
                .ok()
                .filter(|n| *n > 0),
            move |message| {
                let Some(payload) = message.payload() else {
                    return;
                };
                let group: ChatGroup = match serde_json::from_slice(payload) {
                    Ok(group) => group,
                    Err(err) => {
                        tracing::warn!(%topic, partition = message.partition(), offset = message.offset(), error = %err, "Skipped a record that is not a group.");
                        return;
                    }
                };
                let header_id = message.headers().and_then(|headers| {
                    headers
                        .iter()
                        .find(|h| h.key == "confab-group-id")
                        .and_then(|h| h.value)
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .and_then(|v| Uuid::parse_str(v).ok())
                });
                if recent.seen(header_id.unwrap_or(group.id), group.records.len()) {
                    return;
                }
                // No subscriber is not an error: nobody is watching right now.
                let _ = groups.send(Arc::new(group));
            },
        )?;
        Ok(Self {
            sender,
            tail,
            topic: config.topic.clone(),
        })
    }

    /// Whether the feed has assigned itself the topic's partitions.
    pub fn is_assigned(&self) -> bool {
        self.tail.is_assigned()
    }
}

impl GroupFeed for KafkaGroupFeed {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn subscribe(&self) -> Option<broadcast::Receiver<Arc<ChatGroup>>> {
        Some(self.sender.subscribe())
    }

    fn check(&self) -> Result<(), String> {
        self.tail.check()
    }
}

/// The last groups passed on, with their sizes.
#[derive(Default)]
struct Recent {
    order: VecDeque<Uuid>,
    sizes: HashMap<Uuid, usize>,
}

impl Recent {
    /// Whether a group with this id and at least this many records was passed on recently;
    /// records it otherwise.
    fn seen(&mut self, id: Uuid, len: usize) -> bool {
        match self.sizes.get_mut(&id) {
            Some(size) if *size >= len => true,
            Some(size) => {
                *size = len;
                false
            }
            None => {
                self.sizes.insert(id, len);
                self.order.push_back(id);
                if self.order.len() > RECENT_GROUPS {
                    if let Some(old) = self.order.pop_front() {
                        self.sizes.remove(&old);
                    }
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_dropped_and_longer_copies_pass() {
        let mut recent = Recent::default();
        let id = Uuid::new_v4();
        assert!(!recent.seen(id, 2));
        assert!(recent.seen(id, 2));
        assert!(recent.seen(id, 1));
        assert!(!recent.seen(id, 3), "a longer copy");
        for _ in 0..RECENT_GROUPS {
            recent.seen(Uuid::new_v4(), 1);
        }
        assert!(!recent.seen(id, 3), "forgotten after enough others");
        assert!(recent.order.len() <= RECENT_GROUPS);
    }
}
