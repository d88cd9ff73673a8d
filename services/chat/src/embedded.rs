//! The embedded mode's aggregator: the service's in-process log, read by a
//! [`Pipeline`] that groups each chat's messages and writes every group to the SQL history
//! ([`SqlHistorySink`]) and to an in-process broadcast (the events streams' feed).
//!
//! This is the whole DESIGN flow in one process, with the same operator and commit-after-ack
//! runtime as the standalone aggregator. Its limits are the in-process log's: nothing is
//! durable until a group reaches the SQL history, so messages acknowledged to senders but still
//! buffered in an open group are lost if the process dies, and the log keeps every record in
//! memory for the life of the process. Use Kafka for anything that must survive a crash.
//!
//! History delay (read-your-writes): a sent message reaches history when its group completes,
//! that is after `policy.inactivity_timeout_ms` without a new message in the chat (3 s by
//! default), plus the runtime's `lateness_ms` (0.5 s) and a poll; typically about 3.5 s, and at
//! most `policy.max_age_ms` (10 s) plus that in a busy chat.

use crate::config::EmbeddedConfig;
use crate::history::SqlHistorySink;
use crate::store::Store;
use async_trait::async_trait;
use confab_connectors::embedded::{BroadcastConfig, BroadcastSink};
use confab_pipeline::memory::MemoryLog;
use confab_pipeline::{
    ChatKey, ChatMessage, DeadLetter, DeadLetterSink, Metrics, Pipeline, PipelineError, RunReport,
    SinkError,
};
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The consumer group name of the embedded aggregator in the in-process log.
const CONSUMER_GROUP: &str = "confab-chat-embedded";

/// How long the aggregator's reader waits, after a first message, for more: groups wait seconds
/// for their messages anyway, and the people chatting see each message on the live lane, which
/// reads the log without waiting. At a few hundred messages a second this reads a batch every
/// 20 ms instead of a message at a time, each waking the workers and the sinks.
const READ_LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// Dead letters of the embedded aggregator go to the service's log: the service only produces
/// records it built itself, so a dead letter here is a bug worth seeing.
struct LoggedDeadLetters;

#[async_trait]
impl DeadLetterSink for LoggedDeadLetters {
    async fn write(&self, letters: &[DeadLetter]) -> Result<(), SinkError> {
        for letter in letters {
            tracing::error!(position = %letter.position, reason = %letter.reason, "The embedded aggregator rejected a record.");
        }
        Ok(())
    }
}

/// The running embedded aggregator.
pub struct EmbeddedPipeline {
    log: MemoryLog,
    broadcast: BroadcastSink<String, ChatMessage>,
    metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<RunReport, PipelineError>>>,
    /// How long [`EmbeddedPipeline::stop`] lets the aggregator drain the log.
    drain_timeout: std::time::Duration,
}

impl std::fmt::Debug for EmbeddedPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedPipeline")
            .field("records", &self.log.len())
            .field("running", &self.is_running())
            .finish()
    }
}

impl EmbeddedPipeline {
    /// Starts the aggregator on a new in-process log, writing history to `store`.
    pub fn start(store: Store, config: &EmbeddedConfig) -> Self {
        let log = MemoryLog::new(config.partitions);
        let broadcast = BroadcastSink::new(&BroadcastConfig {
            capacity: config.broadcast_capacity,
        });
        let key = ChatKey::Chat;
        let pipeline = Pipeline::new(
            move |message: &ChatMessage| key.key(message).to_string(),
            confab_connectors::decode_chat_message,
            Arc::new(LoggedDeadLetters),
        )
        .sink(Arc::new(SqlHistorySink::new(store)))
        .sink(Arc::new(broadcast.clone()))
        .policy(config.policy)
        .config(config.runtime.clone());
        let metrics = pipeline.metrics_handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let source = log.source(CONSUMER_GROUP).with_linger(READ_LINGER);
        let task = tokio::spawn(async move {
            let result = pipeline
                .run(source, async {
                    let _ = stopped.await;
                })
                .await;
            match &result {
                Ok(report) => tracing::info!(
                    messages = report.messages_in,
                    groups = report.groups_out,
                    "The embedded aggregator stopped."
                ),
                // As an error, so that the log line carries its causes (`error.sources`).
                Err(err) => tracing::error!(
                    error = err as &dyn std::error::Error,
                    "The embedded aggregator failed."
                ),
            }
            result
        });
        tracing::info!(
            partitions = config.partitions,
            inactivity_timeout_ms = config.policy.inactivity_timeout_ms,
            "Started the embedded aggregator (in-process log -> SQL history and events)."
        );
        Self {
            log,
            broadcast,
            metrics,
            stop: Some(stop),
            task: Some(task),
            drain_timeout: std::time::Duration::from_millis(config.runtime.shutdown_timeout_ms),
        }
    }

    /// The in-process log the aggregator reads (the service's message log appends to it).
    pub fn log(&self) -> MemoryLog {
        self.log.clone()
    }

    /// The broadcast sink the aggregator writes (the events streams subscribe to it).
    pub fn broadcast(&self) -> BroadcastSink<String, ChatMessage> {
        self.broadcast.clone()
    }

    /// The aggregator's metrics (messages read, groups written, ...), live.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Whether the aggregator is still running.
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|task| !task.is_finished())
    }

    /// Reads the log to its end, writes every open group, waits for the sinks, and returns the
    /// report (`None` if it was stopped already or panicked). Call it once nothing appends any
    /// more (the server stopped taking requests).
    pub async fn stop(&mut self) -> Option<Result<RunReport, PipelineError>> {
        // The log is in memory: a record left unread when the aggregator stops is lost, though
        // its send was answered 201. So the log is closed and the reader drains it to its end,
        // which ends the run; only if that takes longer than the shutdown timeout is the
        // aggregator told to stop where it is (the runtime's own shutdown timeout then bounds
        // the flush).
        self.log.close();
        let mut task = self.task.take()?;
        let joined = match tokio::time::timeout(self.drain_timeout, &mut task).await {
            Ok(joined) => joined,
            Err(_) => {
                tracing::warn!(
                    timeout_ms = self.drain_timeout.as_millis() as u64,
                    "The embedded aggregator did not read its log to the end in time; stopping it \
                     where it is (what it did not read is lost)."
                );
                if let Some(stop) = self.stop.take() {
                    let _ = stop.send(());
                }
                task.await
            }
        };
        match joined {
            Ok(result) => Some(result),
            Err(err) => {
                tracing::error!(error = %err, "The embedded aggregator panicked.");
                None
            }
        }
    }
}
