//! What feeds the events endpoint: [`GroupFeed`], a source of completed message groups that
//! each events stream subscribes to and filters by chat.
//!
//! - [`InProcessFeed`]: the embedded aggregator's broadcast sink (or any
//!   `tokio::sync::broadcast::Sender` of groups an embedding program hands over).
//! - [`KafkaGroupFeed`] (feature `kafka`): the `chat_messages_grouped` topic written by the
//!   aggregator's Kafka sink, read from its end by every service instance.
//! - [`NoFeed`]: no realtime path; the events endpoint answers 503.
//!
//! Delivery is best effort, as realtime views are: a subscriber sees the groups completed while
//! it is connected; one that falls behind is told (`lagged`) and should reload from history.
//! A group can arrive twice (the Kafka sink is at least once); clients deduplicate by
//! `message_id`.

mod in_process;

#[cfg(feature = "kafka")]
mod kafka;

pub use in_process::{InProcessFeed, NoFeed};

#[cfg(feature = "kafka")]
pub use kafka::KafkaGroupFeed;

use confab_pipeline::{ChatMessage, Group};
use std::sync::Arc;
use tokio::sync::broadcast;

/// A completed group of chat messages, as the aggregator emits it.
pub type ChatGroup = Group<String, ChatMessage>;

/// A source of completed groups.
pub trait GroupFeed: Send + Sync {
    /// A short name for logs and `/readyz` (`in_process`, `kafka`, `none`).
    fn name(&self) -> &'static str;

    /// A receiver of every group completed from now on; `None` when there is no feed.
    fn subscribe(&self) -> Option<broadcast::Receiver<Arc<ChatGroup>>>;

    /// Whether the feed is delivering (for `/readyz`); the reason when it is not.
    fn check(&self) -> Result<(), String>;
}
