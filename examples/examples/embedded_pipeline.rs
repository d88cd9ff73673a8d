//! Run with: cargo run -p confab-examples --example embedded_pipeline
//!
//! Embeds confab's pipeline in a plain tokio program: a producer task writes chat messages into
//! an in-memory log (standing in for Kafka), the pipeline groups each chat's messages, and a
//! custom sink prints every group it receives. The log is closed after the last message, so the
//! pipeline flushes the open groups, commits, and the program prints what grouping saved.
//!
//! Guarantee shown: every message reaches the sink in exactly one group, in order, and the
//! consumer's committed offsets reach the end of the log.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use confab_pipeline::chat::{iso_from_ms, timeuuid_from_ms};
use confab_pipeline::memory::{MemoryDeadLetters, MemoryLog};
use confab_pipeline::{
    ChatMessage, Clock, Group, Pipeline, RuntimeConfig, Sink, SinkError, SystemClock, WindowPolicy,
};

/// A custom sink: prints each group, as a Firestore sink would write one document.
struct PrintSink;

#[async_trait]
impl Sink<String, ChatMessage> for PrintSink {
    fn name(&self) -> &str {
        "print"
    }
    async fn write(&self, groups: &[Group<String, ChatMessage>]) -> Result<(), SinkError> {
        for g in groups {
            let bodies: Vec<&str> = g.records.iter().map(|m| m.body.as_str()).collect();
            println!(
                "group {} of {}: {} message(s), completed by {}: {:?}",
                &g.id.to_string()[..8],
                g.key,
                g.len(),
                g.reason.as_str(),
                bodies
            );
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let log = MemoryLog::new(2);
    let dead_letters = MemoryDeadLetters::default();
    let policy = WindowPolicy {
        inactivity_timeout_ms: 400,
        max_messages: 5,
        ..WindowPolicy::default()
    };
    let config = RuntimeConfig {
        lateness_ms: 100,
        ..RuntimeConfig::default()
    };
    let pipeline = Pipeline::new(
        |m: &ChatMessage| m.chat_id.to_string(),
        |record| ChatMessage::decode(&record.payload, usize::MAX).map_err(|e| e.to_string()),
        Arc::new(dead_letters.clone()),
    )
    .policy(policy)
    .config(config)
    .sink(Arc::new(PrintSink));
    let metrics = pipeline.metrics_handle();

    // Two chats talking in bursts, with pauses longer than the inactivity timeout.
    let producer_log = log.clone();
    let producer = tokio::spawn(async move {
        let clock = SystemClock;
        for i in 0..24u64 {
            let chat = if i % 3 == 0 { "chat-b" } else { "chat-a" };
            let ms = clock.now_ms();
            let message = ChatMessage {
                message_id: format!("m{i}").into(),
                chat_id: chat.into(),
                from_user: format!("user-{}", i % 2).into(),
                to_user: format!("user-{}", (i + 1) % 2).into(),
                body: format!("hello #{i}").into(),
                time: timeuuid_from_ms(ms, i as u16, [0, 0, 0, 0, 0, 1]),
                time_iso: iso_from_ms(ms).into(),
            };
            producer_log.append(chat.as_bytes(), message.encode());
            let pause = if i % 8 == 7 { 700 } else { 60 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        producer_log.close();
    });

    let report = pipeline
        .run(log.source("example"), async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    producer.await?;
    println!(
        "\n{} messages -> {} group writes ({:.1} messages per write); committed {:?}",
        report.messages_in,
        report.groups_out,
        metrics.messages_per_group(),
        report.committed
    );
    anyhow::ensure!(
        report.committed == log.end_offsets(),
        "committed to the end of the log"
    );
    Ok(())
}
