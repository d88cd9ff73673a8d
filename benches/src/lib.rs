//! Shared workload for the benches: seed-style chat messages and a timely driver that runs the
//! operator over them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use confab_pipeline::record::{iso_from_ms, timeuuid_from_ms};
use confab_pipeline::{AggregateByKey, ChatMessage, Envelope, Group, Position, WindowPolicy};
use timely::dataflow::operators::{Input, Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

/// `n` seed-style chat messages (about 280 bytes of JSON each) over `chats` chats, 20 ms apart.
pub fn messages(n: usize, chats: usize) -> Vec<ChatMessage> {
    let uuid = |i: u64, salt: u64| uuid::Uuid::from_u64_pair(salt, i).to_string();
    (0..n as u64)
        .map(|i| {
            let chat = i % chats as u64;
            let ms = 1_700_000_000_000 + i * 20;
            ChatMessage {
                message_id: uuid(i, 1),
                chat_id: uuid(chat, 2),
                from_user: uuid(chat * 2 + i % 2, 3),
                to_user: uuid(chat * 2 + (i + 1) % 2, 3),
                body: "hey, are we still on for lunch tomorrow at noon?".into(),
                time: timeuuid_from_ms(ms, (i % 10_000) as u16, [1, 2, 3, 4, 5, 6]),
                time_iso: iso_from_ms(ms),
            }
        })
        .collect()
}

/// The messages as JSON payloads.
pub fn payloads(messages: &[ChatMessage]) -> Vec<Vec<u8>> {
    messages.iter().map(ChatMessage::encode).collect()
}

/// How much of the path a run covers.
#[derive(Debug, Clone, Copy)]
pub enum Path {
    /// Decoded records in, groups counted out.
    OperatorOnly,
    /// JSON payloads decoded, aggregated, and each group encoded as JSON.
    Full,
}

/// Runs the operator on `workers` workers over the workload; returns (groups, encoded bytes).
pub fn run(
    workers: usize,
    policy: WindowPolicy,
    payloads: Arc<Vec<Vec<u8>>>,
    decoded: Arc<Vec<ChatMessage>>,
    path: Path,
) -> (usize, usize) {
    let groups = Arc::new(AtomicUsize::new(0));
    let bytes = Arc::new(AtomicUsize::new(0));
    let (g, b) = (Arc::clone(&groups), Arc::clone(&bytes));
    timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let (g, b) = (Arc::clone(&g), Arc::clone(&b));
        let probe = ProbeHandle::new();
        let mut input = InputHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            scope
                .input_from(&mut input)
                .aggregate_by_key(|e: &Envelope<ChatMessage>| e.record.chat_id.clone(), policy)
                .inspect(move |group: &Group<String, Envelope<ChatMessage>>| {
                    g.fetch_add(1, Ordering::Relaxed);
                    if matches!(path, Path::Full) {
                        let encoded = serde_json::to_vec(&group.records.iter().map(|e| &e.record).collect::<Vec<_>>())
                            .unwrap_or_default();
                        b.fetch_add(encoded.len(), Ordering::Relaxed);
                    }
                })
                .probe_with(&probe);
        });
        if index == 0 {
            let n = decoded.len();
            let mut offset = 0;
            while offset < n {
                let end = (offset + 1024).min(n);
                let time = confab_pipeline::Aggregatable::event_time_ms(&decoded[offset]);
                if time > *input.time() {
                    input.advance_to(time);
                }
                for i in offset..end {
                    let record = match path {
                        Path::OperatorOnly => decoded[i].clone(),
                        Path::Full => match ChatMessage::decode(&payloads[i], usize::MAX) {
                            Ok(m) => m,
                            Err(_) => continue,
                        },
                    };
                    input.send(Envelope {
                        position: Position { partition: 0, offset: i as u64 },
                        bytes: payloads[i].len() as u32,
                        record,
                    });
                }
                worker.step();
                offset = end;
            }
        }
        drop(input);
        while worker.step() {}
    })
    .expect("timely");
    (groups.load(Ordering::Relaxed), bytes.load(Ordering::Relaxed))
}
