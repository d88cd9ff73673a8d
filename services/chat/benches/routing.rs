//! The live lane's routing step: one message published to its chat's two members and taken by
//! their streams, with 10 and with 10,000 streams open in the registry. The work should not
//! grow with the streams of people in other chats (registry, not broadcast-and-filter). The
//! members' mailboxes keep their window of recent events (1,024), so the loop runs at the
//! steady state of a long-lived stream.
//!
//! Run with: cargo bench -p confab-chat --bench routing

use confab_chat::realtime::bench::Routing;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_one_message");
    group.throughput(Throughput::Elements(1));
    for streams in [10, 10_000] {
        let mut routing = Routing::new(streams);
        group.bench_function(format!("{streams}_streams_open"), |b| {
            b.iter(|| black_box(routing.route_one()))
        });
    }
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
