//! The events that do not go through the message log (new chats, typing notices, read marks),
//! between the instances of the chat service: PostgreSQL's `LISTEN`/`NOTIFY` on the database
//! every instance already shares (it holds the auth service's users).
//!
//! These events must never be logged or stored (typing especially), and a notification is
//! neither: PostgreSQL hands it to the sessions listening at that moment and keeps nothing once
//! they have it. Each instance publishes an event to its own people at once (the hub) and
//! notifies the others, which route it to theirs; an instance skips its own notifications.
//! Delivery is best effort, like the events themselves: a notification sent while an instance's
//! listening connection is being re-established is not seen there (a new chat still shows with
//! its first message, a read mark at the next chat-list read).
//!
//! With SQLite (one process, `confab up`) there is no other instance and no bus.

use super::event::{Kind, LiveEvent};
use super::hub::Hub;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The notification channel.
const CHANNEL: &str = "confab_live";

/// PostgreSQL refuses payloads of 8,000 bytes or more.
const MAX_PAYLOAD: usize = 7_900;

/// Notifications waiting to be sent; past this, new ones are dropped (they are transient).
const QUEUE: usize = 4_096;

/// How long to wait before listening again after the connection failed.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

/// One event as it travels between instances.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// The instance that published it.
    origin: Uuid,
    /// The event's name (`chat`, `typing`, `read`).
    kind: String,
    chat_id: Uuid,
    /// The people it is for.
    users: Vec<Uuid>,
    /// The event's JSON, as the streams send it.
    data: String,
}

/// This instance's end of the bus.
pub(crate) struct Bus {
    origin: Uuid,
    outbox: mpsc::Sender<String>,
}

impl Bus {
    /// Starts listening on `pool`'s database (routing what other instances publish to `hub`)
    /// and sending what this instance publishes; the tasks go to `tasks`.
    pub(crate) fn start(pool: PgPool, hub: Arc<Hub>, tasks: &mut Vec<JoinHandle<()>>) -> Self {
        let origin = Uuid::new_v4();
        let (outbox, mut queued) = mpsc::channel::<String>(QUEUE);
        let sender = pool.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(payload) = queued.recv().await {
                let sent = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(&payload)
                    .execute(&sender)
                    .await;
                if let Err(err) = sent {
                    tracing::debug!(error = %err, "Could not tell the other instances an event.");
                }
            }
        }));
        tasks.push(tokio::spawn(listen(pool, hub, origin)));
        Self { origin, outbox }
    }

    /// Tells the other instances `event`, for `users`.
    pub(crate) fn send(&self, users: &[Uuid], event: &LiveEvent) {
        let envelope = Envelope {
            origin: self.origin,
            kind: event.kind().name().to_owned(),
            chat_id: event.chat_id(),
            users: users.to_vec(),
            data: event.data().to_owned(),
        };
        let Ok(payload) = serde_json::to_string(&envelope) else {
            return;
        };
        if payload.len() > MAX_PAYLOAD {
            tracing::warn!(
                bytes = payload.len(),
                "An event is too large to share between instances; only this one's streams get it."
            );
            return;
        }
        if self.outbox.try_send(payload).is_err() {
            tracing::debug!("The bus to the other instances is full; an event is dropped.");
        }
    }
}

/// Routes the other instances' events to this one's streams, listening again after failures.
async fn listen(pool: PgPool, hub: Arc<Hub>, origin: Uuid) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "Cannot listen for the other instances' events; retrying.");
                tokio::time::sleep(RELISTEN_AFTER).await;
                continue;
            }
        };
        if let Err(err) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %err, "Cannot listen for the other instances' events; retrying.");
            tokio::time::sleep(RELISTEN_AFTER).await;
            continue;
        }
        loop {
            match listener.recv().await {
                Ok(notification) => route(&hub, origin, notification.payload()),
                Err(err) => {
                    tracing::warn!(error = %err, "Lost the other instances' events; listening again.");
                    tokio::time::sleep(RELISTEN_AFTER).await;
                    break;
                }
            }
        }
    }
}

/// Routes one notification, unless this instance sent it or it is not one of ours.
fn route(hub: &Hub, origin: Uuid, payload: &str) {
    let Ok(envelope) = serde_json::from_str::<Envelope>(payload) else {
        tracing::debug!("Skipped a notification that is not an event.");
        return;
    };
    if envelope.origin == origin {
        return;
    }
    let Some(kind) = Kind::shared(&envelope.kind) else {
        return;
    };
    let event = LiveEvent::new(kind, envelope.chat_id, envelope.data);
    hub.publish(&envelope.users, &Arc::new(event));
}
