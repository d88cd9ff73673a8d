//! Throughput of the operator alone and of the full decode -> aggregate -> encode path, beside a
//! decode-only baseline measured in the same run.
//!
//! Run with: cargo bench -p confab-benches --bench operator

use std::sync::Arc;

use confab_benches::{messages, payloads, run, Path};
use confab_pipeline::{ChatMessage, WindowPolicy};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const N: usize = 200_000;

fn benches(c: &mut Criterion) {
    let decoded = Arc::new(messages(N, 10_000));
    let payloads = Arc::new(payloads(&decoded));
    let mean = payloads.iter().map(Vec::len).sum::<usize>() / N;
    eprintln!("workload: {N} messages, mean {mean} bytes of JSON, 10000 chats");
    let policy = WindowPolicy::default();

    let mut group = c.benchmark_group("messages");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    group.bench_function("decode_only", |b| {
        b.iter(|| {
            let mut ok = 0;
            for p in payloads.iter() {
                ok += usize::from(ChatMessage::decode(p, usize::MAX).is_ok());
            }
            assert_eq!(ok, N);
        })
    });
    for workers in [1, 2] {
        group.bench_function(format!("full_path/{workers}_workers"), |b| {
            b.iter(|| run(workers, policy, Arc::clone(&payloads), Arc::clone(&decoded), Path::Full))
        });
        group.bench_function(format!("operator_only/{workers}_workers"), |b| {
            b.iter_batched(
                || (Arc::clone(&payloads), Arc::clone(&decoded)),
                |(p, d)| run(workers, policy, p, d, Path::OperatorOnly),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(operator, benches);
criterion_main!(operator);
