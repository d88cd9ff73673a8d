//! Shared workload for the benches: seed-style chat messages and a timely driver that runs the
//! operator over them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use confab_pipeline::chat::{iso_from_ms, timeuuid_from_ms};
use confab_pipeline::{
    Aggregatable, AggregateByKey, ChatMessage, Envelope, Group, Position, WindowPolicy,
};
use timely::dataflow::operators::{Input as _, Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

/// `n` seed-style chat messages (about 340 bytes of JSON each), 20 ms apart, in conversations of
/// `burst` consecutive messages per chat, cycling over `chats` chats.
pub fn messages(n: usize, chats: usize, burst: usize) -> Vec<ChatMessage> {
    (0..n as u64)
        .map(|i| {
            let chat = (i / burst.max(1) as u64) % chats as u64;
            message(i, chat, 1_700_000_000_000 + i * 20)
        })
        .collect()
}

/// `n` chat messages as a backlog of a busy service holds them: `per_ms` per millisecond of
/// event time, each to a chat drawn by a stride over `chats` (so that a chat's next message
/// comes thousands of messages later), its two users taking turns.
pub fn interleaved(n: usize, chats: usize, per_ms: usize) -> Vec<ChatMessage> {
    (0..n as u64)
        .map(|i| {
            let chat = (i * 7919 / 10) % chats as u64;
            message(i, chat, 1_700_000_000_000 + i / per_ms.max(1) as u64)
        })
        .collect()
}

/// Message `i` of the workload, in chat `chat`, stamped `ms`.
fn message(i: u64, chat: u64, ms: u64) -> ChatMessage {
    let uuid = |i: u64, salt: u64| uuid::Uuid::from_u64_pair(salt, i).to_string();
    ChatMessage {
        message_id: uuid(i, 1).into(),
        chat_id: uuid(chat, 2).into(),
        from_user: uuid(chat * 2 + i % 2, 3).into(),
        to_user: uuid(chat * 2 + (i + 1) % 2, 3).into(),
        body: "hey, are we still on for lunch tomorrow at noon?".into(),
        time: timeuuid_from_ms(ms, (i % 10_000) as u16, [1, 2, 3, 4, 5, 6]),
        time_iso: iso_from_ms(ms).into(),
    }
}

/// The messages as JSON payloads.
pub fn payloads(messages: &[ChatMessage]) -> Vec<Vec<u8>> {
    messages.iter().map(ChatMessage::encode).collect()
}

/// The messages in envelopes, as the runtime feeds them to the operator.
pub fn envelopes(messages: &[ChatMessage]) -> Vec<Envelope<ChatMessage>> {
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| Envelope {
            position: Position {
                partition: 0,
                offset: i as u64,
            },
            bytes: 340,
            generation: 0,
            record: m.clone(),
            payload: Vec::new(),
        })
        .collect()
}

/// What a run starts from.
pub enum Input {
    /// JSON payloads: decoded, aggregated, and each group encoded as JSON (the full path).
    Payloads(Arc<Vec<Vec<u8>>>),
    /// Decoded records, moved into the operator (the operator alone); taken by worker 0.
    Records(Mutex<Option<Vec<Envelope<ChatMessage>>>>),
}

/// Runs the operator on `workers` workers over `input`; returns (groups, encoded bytes).
/// `before_close` runs on worker 0 once everything was fed and processed, before the input ends.
pub fn run(
    workers: usize,
    policy: WindowPolicy,
    input: Input,
    before_close: impl Fn() + Send + Sync + 'static,
) -> (usize, usize) {
    let groups = Arc::new(AtomicUsize::new(0));
    let bytes = Arc::new(AtomicUsize::new(0));
    let (g, b) = (Arc::clone(&groups), Arc::clone(&bytes));
    let encode = matches!(input, Input::Payloads(_));
    let input = Arc::new(input);
    timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let (g, b) = (Arc::clone(&g), Arc::clone(&b));
        let probe = ProbeHandle::new();
        let mut handle = InputHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            scope
                .input_from(&mut handle)
                .aggregate_by_key(
                    |e: &Envelope<ChatMessage>| e.record.chat_id.to_string(),
                    policy,
                )
                .inspect(move |group: &Group<String, Envelope<ChatMessage>>| {
                    g.fetch_add(1, Ordering::Relaxed);
                    if encode {
                        // The records as the Kafka sink writes them (Aggregatable::write_json).
                        let mut out = Vec::with_capacity(group.bytes + 64 * group.len() + 2);
                        out.push(b'[');
                        for (i, e) in group.records.iter().enumerate() {
                            if i > 0 {
                                out.push(b',');
                            }
                            e.record.write_json(&mut out);
                        }
                        out.push(b']');
                        b.fetch_add(out.len(), Ordering::Relaxed);
                    }
                })
                .probe_with(&probe);
        });
        if index == 0 {
            let feed = |batch: &mut dyn Iterator<Item = Envelope<ChatMessage>>,
                        handle: &mut InputHandle<u64, _>| {
                let mut first = true;
                for e in batch {
                    if first {
                        let time = e.record.event_time_ms();
                        if time > *handle.time() {
                            handle.advance_to(time);
                        }
                        first = false;
                    }
                    handle.send(e);
                }
            };
            match input.as_ref() {
                Input::Payloads(payloads) => {
                    for (chunk_index, chunk) in payloads.chunks(1024).enumerate() {
                        let mut decoded = chunk.iter().enumerate().filter_map(|(i, p)| {
                            let record = ChatMessage::decode(p, usize::MAX).ok()?;
                            let offset = (chunk_index * 1024 + i) as u64;
                            Some(Envelope {
                                position: Position {
                                    partition: 0,
                                    offset,
                                },
                                bytes: p.len() as u32,
                                generation: 0,
                                record,
                                // The runtime moves the source's buffer here; borrowed
                                // payloads have none to move, and a copy would cost what the
                                // runtime does not.
                                payload: Vec::new(),
                            })
                        });
                        feed(&mut decoded, &mut handle);
                        worker.step();
                    }
                }
                Input::Records(records) => {
                    let records = records
                        .lock()
                        .ok()
                        .and_then(|mut r| r.take())
                        .unwrap_or_default();
                    let mut records = records.into_iter().peekable();
                    while records.peek().is_some() {
                        let mut chunk = records.by_ref().take(1024);
                        feed(&mut chunk, &mut handle);
                        worker.step();
                    }
                }
            }
        }
        while probe.less_than(handle.time()) {
            worker.step();
        }
        if index == 0 {
            before_close();
        }
        drop(handle);
        while worker.step() {}
    })
    .expect("timely");
    (
        groups.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
    )
}
