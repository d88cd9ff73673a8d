//! End-to-end delay to Firestore: a listener on the aggregator's collection notes when each
//! sent message first appears in a group document; the delay runs from the message's intended
//! send time to that moment, as a client listening to the collection would see it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use confab_connectors::firestore::GroupDocument;
use firestore::{
    FirestoreDb, FirestoreListenEvent, FirestoreListener, FirestoreListenerParams,
    FirestoreListenerTarget, FirestoreMemListenStateStorage,
};
use hdrhistogram::Histogram;

use crate::loadgen::arrivals::{lock, Arrivals};

/// Where the group documents are.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) project: String,
    pub(crate) collection: String,
    pub(crate) emulator_host: Option<String>,
}

/// A listener on the collection, and the messages it waits for.
pub(crate) struct Watcher {
    state: Arc<Mutex<Arrivals>>,
    listener: FirestoreListener<FirestoreDb, FirestoreMemListenStateStorage>,
    db: FirestoreDb,
    target: Target,
}

impl Watcher {
    /// Connects, starts listening, and returns once the listen target is current (documents
    /// written before that are ignored).
    pub(crate) async fn start(target: Target) -> anyhow::Result<Self> {
        if let Some(host) = &target.emulator_host {
            // The client library reads the emulator's address from this variable only.
            std::env::set_var("FIRESTORE_EMULATOR_HOST", host);
        }
        let place = target
            .emulator_host
            .as_deref()
            .map_or("Firestore".to_string(), |h| {
                format!("the Firestore emulator at {h}")
            });
        let db = FirestoreDb::new(&target.project).await.with_context(|| {
            format!("cannot connect to {place}: start it with scripts/infra up firestore")
        })?;
        let mut listener = db
            .create_listener_with_params(
                FirestoreMemListenStateStorage::new(),
                FirestoreListenerParams::new().with_retry_delay(Duration::from_millis(300)),
            )
            .await
            .with_context(|| format!("listening to {place}"))?;
        db.fluent()
            .select()
            .from(target.collection.as_str())
            .listen()
            .add_target(FirestoreListenerTarget::new(9), &mut listener)
            .context("adding the listen target")?;
        let state = Arc::new(Mutex::new(Arrivals::default()));
        let (current_tx, mut current_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let shared = Arc::clone(&state);
        listener
            .start(move |event| {
                let shared = Arc::clone(&shared);
                let current_tx = current_tx.clone();
                async move {
                    use firestore::gcloud_sdk::google::firestore::v1::target_change::TargetChangeType;
                    let at = Instant::now();
                    match event {
                        FirestoreListenEvent::TargetChange(change)
                            if change.target_change_type == TargetChangeType::Current as i32 =>
                        {
                            let _ = current_tx.send(());
                        }
                        FirestoreListenEvent::DocumentChange(change) => {
                            let Some(doc) = change.document else {
                                return Ok(());
                            };
                            let Ok(group) = FirestoreDb::deserialize_doc_to::<GroupDocument>(&doc)
                            else {
                                return Ok(());
                            };
                            let mut state = lock(&shared);
                            for m in group.list_of_messages {
                                state.arrived(&m.message_id, at);
                            }
                        }
                        _ => {}
                    }
                    Ok(())
                }
            })
            .await
            .with_context(|| format!("starting the listener on {place}"))?;
        tokio::time::timeout(Duration::from_secs(30), current_rx.recv())
            .await
            .map_err(|_| {
                anyhow!(
                    "the listener on {place}, collection {}, did not become current within 30 s",
                    target.collection
                )
            })?;
        // What the initial snapshot delivered belongs to earlier runs.
        lock(&state).forget_early();
        Ok(Self {
            state,
            listener,
            db,
            target,
        })
    }

    /// Waits for message `id`, sent at `intended`.
    pub(crate) fn register(&self, id: String, intended: Instant, measured: bool) {
        lock(&self.state).register(id, intended, measured);
    }

    /// (seen, registered).
    pub(crate) fn progress(&self) -> (u64, u64) {
        lock(&self.state).progress()
    }

    /// Stops listening. Returns the delays, and for messages the listener never saw, how many a
    /// query of the collection finds.
    pub(crate) async fn finish(mut self) -> anyhow::Result<(Histogram<u64>, Option<u64>)> {
        let _ = self.listener.shutdown().await;
        let (delays, missing): (_, HashSet<String>) = lock(&self.state).take();
        if missing.is_empty() {
            return Ok((delays, None));
        }
        let docs: Vec<GroupDocument> = self
            .db
            .fluent()
            .select()
            .from(self.target.collection.as_str())
            .obj::<GroupDocument>()
            .query()
            .await
            .context("querying the collection for messages the listener did not see")?;
        let found = docs
            .iter()
            .flat_map(|d| &d.list_of_messages)
            .filter(|m| missing.contains(m.message_id.as_str()))
            .count();
        Ok((delays, Some(found as u64)))
    }
}
