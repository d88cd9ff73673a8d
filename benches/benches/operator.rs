//! Throughput of the operator alone and of the full decode -> aggregate -> encode path, beside a
//! decode-only baseline measured in the same run; and the ways of encoding a record as JSON
//! (serde_json, `write_json` field by field, and `write_json` of a decoded canonical record).
//!
//! Run with: cargo bench -p confab-benches --bench operator

use std::sync::{Arc, Mutex};

use confab_benches::{envelopes, messages, payloads, run, Input};
use confab_pipeline::{Aggregatable, ChatMessage, WindowPolicy};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const N: usize = 200_000;

fn benches(c: &mut Criterion) {
    let decoded = messages(N, 10_000, 10);
    let payloads = Arc::new(payloads(&decoded));
    let mean = payloads.iter().map(Vec::len).sum::<usize>() / N;
    eprintln!("workload: {N} messages, mean {mean} bytes of JSON, conversations of 10 messages over 10000 chats");
    let policy = WindowPolicy::default();

    let mut group = c.benchmark_group("messages");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    group.bench_function("decode_only", |b| {
        b.iter(|| {
            let ok = payloads
                .iter()
                .filter(|p| ChatMessage::decode(p, usize::MAX).is_ok())
                .count();
            assert_eq!(ok, N);
        })
    });
    for workers in [1, 2] {
        group.bench_function(format!("full_path/{workers}_workers"), |b| {
            b.iter(|| {
                run(
                    workers,
                    policy,
                    Input::Payloads(Arc::clone(&payloads)),
                    || {},
                )
            })
        });
        group.bench_function(format!("operator_only/{workers}_workers"), |b| {
            b.iter_batched(
                || Input::Records(Mutex::new(Some(envelopes(&decoded)))),
                |input| run(workers, policy, input, || {}),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();

    // Encoding the same records as JSON: serde_json against Aggregatable::write_json (what the
    // Kafka sink uses), in one run.
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    group.bench_function("serde_json", |b| {
        b.iter(|| {
            encode_each(&decoded, |m, out| {
                serde_json::to_writer(out, m).expect("encodes")
            })
        })
    });
    group.bench_function("write_json", |b| {
        b.iter(|| encode_each(&decoded, |m, out| m.write_json(out)))
    });
    // Records decoded from the canonical JSON the chat service writes: write_json copies each
    // one back in a piece (what the Kafka sink does with what it read).
    let decoded_from_json: Vec<ChatMessage> = payloads
        .iter()
        .filter_map(|p| ChatMessage::decode(p, usize::MAX).ok())
        .collect();
    assert_eq!(decoded_from_json.len(), N);
    group.bench_function("write_json_decoded", |b| {
        b.iter(|| encode_each(&decoded_from_json, |m, out| m.write_json(out)))
    });
    group.finish();
}

/// Encodes every message into one reused buffer with `encode`; returns the bytes written.
fn encode_each(messages: &[ChatMessage], encode: impl Fn(&ChatMessage, &mut Vec<u8>)) -> usize {
    let mut out = Vec::with_capacity(1 << 16);
    let mut total = 0;
    for m in messages {
        out.clear();
        encode(m, &mut out);
        total += out.len();
    }
    total
}

criterion_group!(operator, benches);
criterion_main!(operator);
