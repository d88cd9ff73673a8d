//! The Firestore emulator: group documents, replays, merges, and a listener.

use std::time::Duration;

use confab_connectors::env_or;
use confab_connectors::firestore::{FirestoreConfig, FirestoreSink, GroupDocument};
use confab_pipeline::{group_id, ChatMessage, CompletionReason, Group, Sink};
use firestore::{
    FirestoreDb, FirestoreListenerParams, FirestoreListenerTarget, FirestoreMemListenStateStorage,
};

use crate::{chat_message, now_ms, unique_name};

/// A sink writing to a fresh collection of the emulator.
pub(crate) async fn sink() -> (FirestoreSink, FirestoreConfig) {
    // The firestore crate reads the emulator address from this variable only.
    std::env::set_var(
        "FIRESTORE_EMULATOR_HOST",
        env_or("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080"),
    );
    let config = FirestoreConfig {
        project_id: env_or("FIRESTORE_PROJECT_ID", "confab-local"),
        collection: unique_name("messages"),
        chat_write_interval_ms: 0,
        ..FirestoreConfig::default()
    };
    let sink = FirestoreSink::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (sink, config)
}

/// Every document of `collection`.
pub(crate) async fn documents(db: &FirestoreDb, collection: &str) -> Vec<GroupDocument> {
    db.fluent()
        .select()
        .from(collection)
        .obj::<GroupDocument>()
        .query()
        .await
        .expect("query the collection")
}

fn group(chat: &str, from: usize, to: usize, ms: u64) -> Group<String, ChatMessage> {
    let records: Vec<ChatMessage> = (from..to)
        .map(|i| chat_message(chat, i, ms + i as u64))
        .collect();
    Group {
        id: group_id(chat, &records[0].message_id),
        key: chat.to_string(),
        first_time_ms: ms + from as u64,
        last_time_ms: ms + to as u64 - 1,
        bytes: 0,
        reason: CompletionReason::Inactivity,
        records,
    }
}

#[tokio::test]
async fn replaying_groups_keeps_the_document_count_and_a_listener_sees_each_new_group() {
    let (sink, config) = sink().await;
    let db = sink.db().clone();
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
        .from(config.collection.as_str())
        .listen()
        .add_target(FirestoreListenerTarget::new(7), &mut listener)
        .expect("add listen target");
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    listener
        .start(move |event| {
            let seen_tx = seen_tx.clone();
            async move {
                use firestore::gcloud_sdk::google::firestore::v1::target_change::TargetChangeType;
                let seen = match event {
                    firestore::FirestoreListenEvent::TargetChange(change)
                        if change.target_change_type == TargetChangeType::Current as i32 =>
                    {
                        None
                    }
                    firestore::FirestoreListenEvent::DocumentChange(change) => {
                        match change.document {
                            Some(doc) => Some(doc),
                            None => return Ok(()),
                        }
                    }
                    _ => return Ok(()),
                };
                let _ = seen_tx.send(seen);
                Ok(())
            }
        })
        .await
        .expect("start listener");
    // Write only once the target is in sync (`None` above), as a client would: the emulator can
    // miss a document written while it is still registering a fresh listen target.
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Some(_)) = seen_rx.recv().await {}
    })
    .await
    .expect("the listen target is current within 30 s");
    // The listener may deliver a document more than once (each change event carries the whole
    // document); `count` distinct documents are collected, by group id.
    let mut receive = async |count: usize| {
        let mut docs = std::collections::BTreeMap::new();
        while docs.len() < count {
            let Some(doc) = tokio::time::timeout(Duration::from_secs(30), seen_rx.recv())
                .await
                .expect("the listener sees the document within 30 s")
                .expect("listener channel open")
            else {
                continue; // the target became current again
            };
            let doc = FirestoreDb::deserialize_doc_to::<GroupDocument>(&doc).expect("a group");
            docs.insert(doc.group_id.clone(), doc);
        }
        docs.into_values().collect::<Vec<_>>()
    };

    let ms = now_ms();
    let groups = vec![
        group("chat-a", 0, 3, ms),
        group("chat-a", 3, 5, ms),
        group("chat-b", 0, 4, ms),
    ];
    sink.write(&groups).await.expect("write");
    let seen = receive(3).await;
    let mut expected: Vec<GroupDocument> = groups.iter().filter_map(GroupDocument::of).collect();
    expected.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    assert_eq!(seen, expected, "seed fields and ours, as written");
    assert_eq!(seen[0].list_of_messages.len() as i64, seen[0].message_count);

    // A replay of the same groups rewrites the same documents.
    sink.write(&groups).await.expect("replay");
    sink.write(&groups[1..]).await.expect("partial replay");
    assert_eq!(documents(&db, &config.collection).await.len(), 3);

    // A new group arrives at the listener.
    let fresh = group("chat-b", 4, 6, ms);
    sink.write(std::slice::from_ref(&fresh))
        .await
        .expect("write new");
    let arrived = loop {
        let doc = receive(1).await.remove(0);
        if doc.group_id == fresh.id.to_string() {
            break doc;
        }
        // A replayed document may be re-sent by the emulator; it must be unchanged.
        assert!(
            expected.contains(&doc),
            "replay changed a document: {doc:?}"
        );
    };
    assert_eq!(Some(arrived), GroupDocument::of(&fresh));
    assert_eq!(documents(&db, &config.collection).await.len(), 4);
    listener.shutdown().await.expect("listener shutdown");
}

#[tokio::test]
async fn a_group_head_written_after_the_whole_group_keeps_every_message() {
    // After a rebalance, the consumer that lost the partition may flush the head of a group
    // (same id) after the new owner wrote all of it.
    let (sink, config) = sink().await;
    let ms = now_ms();
    let whole = group("chat-h", 0, 6, ms);
    let mut head = group("chat-h", 0, 4, ms);
    head.reason = CompletionReason::EndOfInput;
    sink.write(std::slice::from_ref(&whole))
        .await
        .expect("whole");
    sink.write(std::slice::from_ref(&head)).await.expect("head");
    let docs = documents(sink.db(), &config.collection).await;
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].list_of_messages, whole.records);
    assert_eq!(docs[0].message_count, 6);
    assert_eq!(docs[0].last_time_ms, whole.last_time_ms as i64);
    assert_eq!(docs[0].first_time_ms, whole.first_time_ms as i64);

    // And in the other order: the head first, then the whole, appends the tail in order.
    let later = group("chat-h", 10, 16, ms);
    let mut later_head = group("chat-h", 10, 13, ms);
    later_head.reason = CompletionReason::EndOfInput;
    sink.write(std::slice::from_ref(&later_head))
        .await
        .expect("head");
    sink.write(std::slice::from_ref(&later))
        .await
        .expect("whole");
    let doc = documents(sink.db(), &config.collection)
        .await
        .into_iter()
        .find(|d| d.group_id == later.id.to_string())
        .expect("document");
    assert_eq!(doc.list_of_messages, later.records);
    assert_eq!(doc.message_count, 6);
}

#[tokio::test]
async fn the_per_chat_rate_guard_spaces_writes_of_one_chat() {
    let (_, base) = sink().await;
    let config = FirestoreConfig {
        chat_write_interval_ms: 300,
        chat_write_burst: 1,
        ..base
    };
    let sink = FirestoreSink::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ms = now_ms();
    let started = std::time::Instant::now();
    for i in 0..3 {
        sink.write(&[group("chat-r", i * 2, i * 2 + 2, ms)])
            .await
            .expect("write");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "three writes of one chat take two intervals: {:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    sink.write(&[group("chat-other", 0, 2, ms)])
        .await
        .expect("write");
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "other chats are not held back"
    );
    assert_eq!(documents(sink.db(), &config.collection).await.len(), 4);
}
