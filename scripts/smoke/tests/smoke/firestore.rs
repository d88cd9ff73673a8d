//! The Firestore emulator through the firestore crate: a listener on a fresh collection receives
//! the document another client writes, with its fields intact.

use std::time::Duration;

use firestore::{FirestoreDb, FirestoreListenerTarget, FirestoreMemListenStateStorage};
use serde::{Deserialize, Serialize};

use crate::{env_or, unique_name, unreachable, WAIT};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Group {
    chat_id: String,
    list_of_messages: Vec<String>,
}

#[tokio::test]
async fn firestore_listener_receives_a_written_document() {
    let host = env_or("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080");
    // The firestore crate reads the emulator address from this variable only.
    std::env::set_var("FIRESTORE_EMULATOR_HOST", &host);
    let project = env_or("FIRESTORE_PROJECT_ID", "confab-local");
    let db = FirestoreDb::new(&project)
        .await
        .unwrap_or_else(|e| panic!("{}", unreachable("Firestore", &host, e)));
    let collection = unique_name("smoke");

    let mut listener = db
        .create_listener(FirestoreMemListenStateStorage::new())
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
                if let firestore::FirestoreListenEvent::DocumentChange(change) = event {
                    if let Some(doc) = change.document {
                        let _ = seen_tx.send(doc);
                    }
                }
                Ok(())
            }
        })
        .await
        .expect("start listener");

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

    let doc = tokio::time::timeout(Duration::from_secs(30), seen_rx.recv())
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
