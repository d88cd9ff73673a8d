//! The Firestore emulator through the firestore crate: a listener on a fresh collection receives
//! the document another client writes, with its fields intact.

use std::time::Duration;

use firestore::{
    FirestoreDb, FirestoreListenerParams, FirestoreListenerTarget, FirestoreMemListenStateStorage,
};
use serde::{Deserialize, Serialize};

use crate::{env_or, unique_name, unreachable, WAIT};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Group {
    chat_id: String,
    list_of_messages: Vec<String>,
}

#[tokio::test]
async fn firestore_listener_receives_a_written_document() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let host = env_or("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080");
    // The firestore crate reads the emulator address from this variable only.
    std::env::set_var("FIRESTORE_EMULATOR_HOST", &host);
    let project = env_or("FIRESTORE_PROJECT_ID", "confab-local");
    let db = FirestoreDb::new(&project)
        .await
        .unwrap_or_else(|e| panic!("{}", unreachable("Firestore", &host, e)));
    let collection = unique_name("smoke");

    let mut listener = db
        .create_listener_with_params(
            FirestoreMemListenStateStorage::new(),
            // The emulator now and then closes a fresh listen stream; the crate reconnects after
            // this delay (5 s by default, which a busy CI machine can multiply past the wait).
            FirestoreListenerParams::new().with_retry_delay(Duration::from_millis(300)),
        )
        .await
        .expect("create listener");
    db.fluent()
        .select()
        .from(collection.as_str())
        .listen()
        .add_target(FirestoreListenerTarget::new(42), &mut listener)
        .expect("add listen target");
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    listener
        .start(move |event| {
            let seen_tx = seen_tx.clone();
            async move {
                let _ = seen_tx.send(Seen::of(event));
                Ok(())
            }
        })
        .await
        .expect("start listener");
    // Write only once the target is in sync, as a client would: the emulator can miss a document
    // written while it is still registering a fresh listen target, and then never sends it.
    tokio::time::timeout(Duration::from_secs(30), async {
        while !matches!(seen_rx.recv().await, Some(Seen::Current) | None) {}
    })
    .await
    .expect("the listen target is current within 30 s");

    let group = Group {
        chat_id: "c1".into(),
        list_of_messages: vec!["hello".into(), "world".into()],
    };
    let written: Group = tokio::time::timeout(
        WAIT,
        db.fluent()
            .insert()
            .into(collection.as_str())
            .document_id("c1-group-1")
            .object(&group)
            .execute(),
    )
    .await
    .unwrap_or_else(|e| panic!("{}", unreachable("Firestore", &host, e)))
    .unwrap_or_else(|e| panic!("{}", unreachable("Firestore", &host, e)));
    assert_eq!(written, group);

    let doc = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match seen_rx.recv().await {
                Some(Seen::Document(doc)) => break Some(doc),
                Some(_) => {}
                None => break None,
            }
        }
    })
    .await
    .expect("the listener sees the document within 30 s")
    .expect("listener channel open");
    listener.shutdown().await.expect("listener shutdown");

    assert!(
        doc.name.ends_with(&format!("/{collection}/c1-group-1")),
        "{}",
        doc.name
    );
    let received: Group = FirestoreDb::deserialize_doc_to(&doc).expect("document fields");
    assert_eq!(received, group);
}

/// What the listener callback passes on: the target became current, or a document changed.
enum Seen {
    Current,
    Document(Box<firestore::FirestoreDocument>),
    Other,
}

impl Seen {
    fn of(event: firestore::FirestoreListenEvent) -> Self {
        use firestore::gcloud_sdk::google::firestore::v1::target_change::TargetChangeType;
        match event {
            firestore::FirestoreListenEvent::TargetChange(change)
                if change.target_change_type == TargetChangeType::Current as i32 =>
            {
                Seen::Current
            }
            firestore::FirestoreListenEvent::DocumentChange(change) => match change.document {
                Some(doc) => Seen::Document(Box::new(doc)),
                None => Seen::Other,
            },
            _ => Seen::Other,
        }
    }
}
