//! The Firestore group-document sink. See the module docs for the write semantics.

use std::collections::HashMap;
use std::fmt::Display;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use confab_pipeline::{ChatMessage, Group, Sink, SinkError};
use firestore::gcloud_sdk::google::firestore::v1::{BatchWriteRequest, Write};
use firestore::gcloud_sdk::tonic::{self, Code};
use firestore::{
    FirestoreDb, FirestoreDbOptions, FirestoreFieldTransform, FirestoreFieldTransformType,
    FirestoreSimpleBatchWriteOptions, FirestoreSimpleBatchWriter, FirestoreValue,
};
use tracing::{debug, warn};

use super::config::FirestoreConfig;
use super::document::{distinct, DocumentHead, GroupDocument};
use super::is_retryable_code;
use super::rate::ChatRateGuard;
use crate::env_or;

/// Writes every group of chat messages as one upserted document.
pub struct FirestoreSink {
    db: FirestoreDb,
    /// Builds `Write`s with the crate's serializer; requests are sent by this sink, which needs
    /// every write's own status to retry only what failed.
    writer: FirestoreSimpleBatchWriter,
    config: FirestoreConfig,
    guard: ChatRateGuard,
}

/// The message for a Firestore that cannot be reached, naming the address and the fix.
fn unreachable(error: &dyn Display) -> String {
    match std::env::var("FIRESTORE_EMULATOR_HOST") {
        Ok(host) => format!(
            "cannot reach the Firestore emulator at {host} ({error}): start it with \
             `scripts/infra up firestore`"
        ),
        Err(_) => format!(
            "cannot reach Firestore ({error}): set FIRESTORE_EMULATOR_HOST for the emulator \
             (`scripts/infra up firestore`), or provide Application Default Credentials"
        ),
    }
}

impl FirestoreSink {
    /// Connects to the project in `config` and checks, with one read, that it answers.
    pub async fn connect(config: &FirestoreConfig) -> Result<Self, SinkError> {
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let options = FirestoreDbOptions::new(config.project_id.clone())
            .with_database_id(config.database_id.clone());
        let db = tokio::time::timeout(timeout, FirestoreDb::with_options(options))
            .await
            .map_err(|e| SinkError::retryable(unreachable(&e)))?
            .map_err(|e| SinkError::retryable(unreachable(&e)))?;
        let probe = db
            .fluent()
            .select()
            .by_id_in(config.collection.as_str())
            .obj::<GroupDocument>()
            .one("confab-connectivity-probe");
        tokio::time::timeout(timeout, probe)
            .await
            .map_err(|e| SinkError::retryable(unreachable(&e)))?
            .map_err(|e| SinkError::retryable(unreachable(&e)))?;
        let writer =
            FirestoreSimpleBatchWriter::new(db.clone(), FirestoreSimpleBatchWriteOptions::new())
                .await
                .map_err(|e| {
                    SinkError::fatal(format!("cannot create a Firestore batch writer: {e}"))
                })?;
        debug!(project = %config.project_id, emulator = %env_or("FIRESTORE_EMULATOR_HOST", "(none)"), "Firestore sink connected");
        Ok(Self {
            db,
            writer,
            guard: ChatRateGuard::new(
                Duration::from_millis(config.chat_write_interval_ms),
                config.chat_write_burst,
            ),
            config: config.clone(),
        })
    }

    /// The database handle, to share with readers and listeners.
    pub fn db(&self) -> &FirestoreDb {
        &self.db
    }

    /// The write of one group: set the head, merge the messages, count and times.
    fn group_write<K: Display>(&self, group: &Group<K, ChatMessage>) -> Result<Write, SinkError> {
        let head = DocumentHead::of(group)
            .ok_or_else(|| SinkError::rejected(format!("group {} holds no message", group.id)))?;
        let messages: Vec<FirestoreValue> = distinct(&group.records).map(Into::into).collect();
        let count = messages.len() as i64;
        let transform = |field: &str, transform_type| FirestoreFieldTransform {
            field: field.to_string(),
            transform_type,
        };
        let transforms = vec![
            transform(
                "list_of_messages",
                FirestoreFieldTransformType::AppendMissingElements(messages),
            ),
            transform(
                "message_count",
                FirestoreFieldTransformType::Maximum(count.into()),
            ),
            transform(
                "first_time_ms",
                FirestoreFieldTransformType::Minimum((group.first_time_ms as i64).into()),
            ),
            transform(
                "last_time_ms",
                FirestoreFieldTransformType::Maximum((group.last_time_ms as i64).into()),
            ),
        ];
        let mut batch = self.writer.new_batch();
        batch
            .update_object(
                &self.config.collection,
                group.id.to_string(),
                &head,
                Some(DocumentHead::FIELDS.iter().map(|f| f.to_string()).collect()),
                None,
                transforms,
            )
            .map_err(|e| {
                SinkError::rejected(format!(
                    "cannot encode group {} for Firestore: {e}",
                    group.id
                ))
            })?;
        batch
            .writes
            .pop()
            .ok_or_else(|| SinkError::fatal("the Firestore batch lost a write"))
    }

    /// Sends `writes` in one `BatchWrite`, once. A retryable failure, of the request or of any
    /// write in it, fails the whole call as retryable, and the runtime (the one layer that
    /// retries) writes the batch again: every write is an idempotent merge, so the documents that
    /// were written already are rewritten unchanged.
    async fn send(&self, mut writes: Vec<Write>) -> Result<(), SinkError> {
        let failed = match self.batch_write(writes.clone()).await {
            Ok(failed) => failed,
            // No answer in time: the server is overloaded (an emulator on a busy machine). The
            // same big batch again would time out again and add to its load; send the halves one
            // after the other instead.
            Err((Code::DeadlineExceeded, message)) if writes.len() > 1 => {
                warn!(documents = writes.len(), %message, "Firestore batch timed out; sending it in halves");
                let tail = writes.split_off(writes.len() / 2);
                Box::pin(self.send(writes)).await?;
                return Box::pin(self.send(tail)).await;
            }
            Err((code, message)) if is_retryable_code(code) => {
                return Err(SinkError::retryable(format!(
                    "Firestore batch write failed ({code:?}): {message}"
                )))
            }
            Err((code, message)) => {
                return Err(refusal(
                    code,
                    format!("Firestore refused a batch write ({code:?}): {message}"),
                ))
            }
        };
        if let Some((_, code, message)) = failed.iter().find(|(_, c, _)| !is_retryable_code(*c)) {
            return Err(refusal(
                *code,
                format!("Firestore refused a document write ({code:?}): {message}"),
            ));
        }
        match failed.first() {
            None => Ok(()),
            Some((_, code, message)) => Err(SinkError::retryable(format!(
                "{} of {} Firestore document writes failed ({code:?}): {message}",
                failed.len(),
                writes.len()
            ))),
        }
    }

    /// One `BatchWrite` request. `Ok` lists the writes that failed, with their status; `Err` is a
    /// failure of the whole request.
    async fn batch_write(
        &self,
        writes: Vec<Write>,
    ) -> Result<Vec<(usize, Code, String)>, (Code, String)> {
        let request = BatchWriteRequest {
            database: self.db.get_database_path().clone(),
            writes,
            labels: HashMap::new(),
            request_options: None,
        };
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let mut client = self.db.client().get();
        let response =
            tokio::time::timeout(timeout, client.batch_write(tonic::Request::new(request)))
                .await
                .map_err(|_| {
                    (
                        Code::DeadlineExceeded,
                        format!("no answer within {} ms", timeout.as_millis()),
                    )
                })?
                .map_err(|status| {
                    let message = match status.code() {
                        Code::Unavailable => unreachable(&status.message()),
                        _ => status.message().to_string(),
                    };
                    (status.code(), message)
                })?
                .into_inner();
        Ok(response
            .status
            .iter()
            .enumerate()
            .filter(|(_, s)| s.code != Code::Ok as i32)
            .map(|(i, s)| (i, Code::from(s.code), s.message.clone()))
            .collect())
    }
}

#[async_trait]
impl<K: Display + Send + Sync> Sink<K, ChatMessage> for FirestoreSink {
    fn name(&self) -> &str {
        "firestore"
    }

    async fn write(&self, groups: &[Group<K, ChatMessage>]) -> Result<(), SinkError> {
        // Each group waits only for its own chat's budget: a busy chat's spacing does not hold
        // back the documents of the other chats in the batch (they are written at once).
        let started = Instant::now();
        let waits = self.guard.reserve_each(
            groups
                .iter()
                .map(|g| g.records.first().map_or("", |m| m.chat_id.as_str())),
            started,
        );
        let mut waves: std::collections::BTreeMap<Duration, Vec<_>> = Default::default();
        for (group, wait) in groups.iter().zip(waits) {
            waves
                .entry(wait)
                .or_default()
                .push(self.group_write(group)?);
        }
        let size = self.config.max_batch_documents.max(1);
        for (wait, writes) in waves {
            if !wait.is_zero() {
                debug!(
                    wait_ms = wait.as_millis() as u64,
                    documents = writes.len(),
                    "Firestore per-chat rate guard delays writes of a busy chat"
                );
                tokio::time::sleep_until((started + wait).into()).await;
            }
            let mut batches = Vec::new();
            let mut writes = writes.into_iter().peekable();
            while writes.peek().is_some() {
                batches.push(self.send(writes.by_ref().take(size).collect()));
            }
            for result in futures::future::join_all(batches).await {
                result?;
            }
        }
        Ok(())
    }
}

/// A non-retryable Firestore status as a sink error: an invalid document (too large, a bad
/// field) is refused for good while others would be written, so only that group is
/// dead-lettered; anything else (credentials, permissions, a missing database) stops the run.
fn refusal(code: Code, message: String) -> SinkError {
    match code {
        Code::InvalidArgument | Code::OutOfRange => SinkError::rejected(message),
        _ => SinkError::fatal(message),
    }
}
