//! What feeds the registry: this instance's own tail of the message log (the live lane: each
//! message as soon as the log acknowledged it) and the group feed (completed groups, for the
//! per-chat stream). Both route by the people in the record: a chat message names its two
//! members (`from_user`, `to_user`), which the chat service checked before producing it.

use super::event::LiveEvent;
use super::hub::Hub;
use super::recent::Recent;
use crate::events::GroupEvent;
use crate::feed::ChatGroup;
use crate::messages::MessageView;
use confab_pipeline::memory::MemoryLog;
use confab_pipeline::source::{Polled, Source};
use confab_pipeline::ChatMessage;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

/// Records read from the in-process log at a time.
const MEMORY_BATCH: usize = 512;

/// Routes one record of the message log to its chat's members, and remembers the message for
/// the pages read before its group is written.
pub(crate) fn publish_record(hub: &Hub, recent: &Recent, payload: &[u8]) {
    let message = match ChatMessage::decode(payload, usize::MAX) {
        Ok(message) => message,
        Err(err) => {
            // The aggregator dead-letters it; the live lane has nothing to show.
            tracing::debug!(error = %err, "The live lane skipped a record that is not a message.");
            return;
        }
    };
    let (Ok(chat), Ok(from), Ok(to)) = (
        Uuid::parse_str(&message.chat_id),
        Uuid::parse_str(&message.from_user),
        Uuid::parse_str(&message.to_user),
    ) else {
        return;
    };
    let view = MessageView::from(message);
    if let Some(event) = LiveEvent::message(chat, &view) {
        hub.publish(&[from, to], &Arc::new(event));
    }
    recent.remember(chat, Arc::new(view), Instant::now());
}

/// Tails the in-process log from its current end, forever (until the log is closed).
pub(crate) async fn tail_memory(log: MemoryLog, hub: Arc<Hub>, recent: Arc<Recent>) {
    // A consumer group of its own that never commits: it starts at the end of each partition.
    let group = format!("confab-live-{}", Uuid::new_v4().simple());
    let mut source = log.source_at_end(&group);
    loop {
        match source.poll(MEMORY_BATCH, Duration::from_secs(1)).await {
            Ok(Polled::Records(records)) => {
                for record in &records {
                    publish_record(&hub, &recent, &record.payload);
                }
            }
            Ok(Polled::End) => return,
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "Reading the in-process log failed; retrying.");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Routes each completed group of `groups` to its chat's members, for the per-chat stream.
pub(crate) async fn route_groups(mut groups: broadcast::Receiver<Arc<ChatGroup>>, hub: Arc<Hub>) {
    loop {
        match groups.recv().await {
            Ok(group) => publish_group(&hub, &group),
            Err(RecvError::Lagged(skipped)) => {
                // Per-chat streams show groups best effort; history has them all.
                tracing::warn!(
                    skipped,
                    "The group router fell behind the feed; per-chat streams miss these groups."
                );
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Routes one group: its messages of each chat to that chat's members.
pub(crate) fn publish_group(hub: &Hub, group: &ChatGroup) {
    let mut chats: Vec<&str> = group.records.iter().map(|m| &*m.chat_id).collect();
    chats.sort_unstable();
    chats.dedup();
    for chat in chats {
        let Ok(chat_id) = Uuid::parse_str(chat) else {
            continue;
        };
        let Some(view) = GroupEvent::of(group, chat) else {
            continue;
        };
        let mut people: Vec<Uuid> = view
            .messages
            .iter()
            .flat_map(|m| [&m.from_user, &m.to_user])
            .filter_map(|id| Uuid::parse_str(id).ok())
            .collect();
        people.sort_unstable();
        people.dedup();
        if let Some(event) = LiveEvent::group(chat_id, &view) {
            hub.publish(&people, &Arc::new(event));
        }
    }
}

/// Ends the open streams of each revoked session: a `revoked` event in its person's mailbox.
pub(crate) async fn route_revocations(
    mut revocations: broadcast::Receiver<confab_token::Revoked>,
    hub: Arc<Hub>,
) {
    loop {
        match revocations.recv().await {
            Ok(revoked) => hub.publish(
                &[revoked.user],
                &Arc::new(LiveEvent::revoked(revoked.session)),
            ),
            Err(RecvError::Lagged(missed)) => {
                // The missed sessions' streams still end when their tokens expire (minutes).
                tracing::warn!(missed, "Fell behind the revocation feed.");
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// How often a standalone chat service asks the auth service for revoked sessions.
const REVOCATION_POLL: Duration = Duration::from_secs(1);

/// Copies `url`'s revocation list into `verifier` every [`REVOCATION_POLL`], forever.
pub(crate) async fn poll_revocations(url: String, verifier: Arc<confab_token::TokenVerifier>) {
    #[derive(serde::Deserialize)]
    struct List {
        revoked: Vec<confab_token::Revoked>,
    }
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "Cannot build the HTTP client for revocations.");
            return;
        }
    };
    let mut interval = tokio::time::interval(REVOCATION_POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        interval.tick().await;
        let fetched = async {
            client
                .get(&url)
                .send()
                .await?
                .error_for_status()?
                .json::<List>()
                .await
        }
        .await;
        match fetched {
            Ok(list) => {
                if failing {
                    tracing::info!(%url, "Reading revoked sessions again.");
                    failing = false;
                }
                verifier.revocations().merge(list.revoked);
            }
            Err(err) if !failing => {
                // Once per outage, not every second.
                tracing::warn!(%url, error = %err, "Cannot read the revoked sessions; retrying every second.");
                failing = true;
            }
            Err(_) => {}
        }
    }
}
