//! The aggregator's runtime without Kafka: what `confab aggregate` does to a record between the
//! Kafka source and the Kafka sink, measured without librdkafka, the broker, or their noise.
//!
//! `n` JSON chat messages (10 s of event time over 4,000 chats, the shape of `benches/compare`'s
//! backlog) are handed to `Pipeline::run` from memory, in the source's batches, without a copy;
//! the runtime decodes them, keys them `from_user-chat_id` and groups them by the seed's policy
//! (10 messages or 3 s), and the sink encodes each group as the grouped-topic sink does, into a
//! reused buffer, and drops it. Prints the CPU per message of each run (`RUNS`, default 3).
//!
//! ```sh
//! cargo run --release -p confab-benches --example runtime_path -- 1000000
//! ```
//!
//! Set beside `kafka_throughput`'s read + write (librdkafka's floor) and the operator bench's
//! single-thread path: docs/BENCHMARKS.md, "The Kafka path as a sum".

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_pipeline::memory::MemoryDeadLetters;
use confab_pipeline::{
    async_trait, ChatKey, ChatMessage, FnSink, Pipeline, Polled, Position, RuntimeConfig, Source,
    SourceError, SourceRecord, WindowPolicy,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Byte records from memory, moved out in the runtime's batches (a Kafka source copies each
/// record out of librdkafka's buffer; this one does not, so the figure is the runtime's alone).
struct VecSource {
    records: std::vec::IntoIter<SourceRecord>,
}

#[async_trait]
impl Source for VecSource {
    async fn poll(&mut self, max: usize, _wait: Duration) -> Result<Polled, SourceError> {
        let read: Vec<SourceRecord> = self.records.by_ref().take(max).collect();
        Ok(if read.is_empty() {
            Polled::End
        } else {
            Polled::Records(read)
        })
    }

    async fn commit(&mut self, _next: &[Position]) -> Result<(), SourceError> {
        Ok(())
    }
}

/// `n` records as the chat service writes them (`confab_benches::interleaved`: 100 per
/// millisecond of event time, 4,000 chats), partitioned by chat over 3 partitions.
fn records(n: usize) -> Vec<SourceRecord> {
    let mut offsets = HashMap::new();
    confab_benches::interleaved(n, 4_000, 100)
        .into_iter()
        .map(|message| {
            let partition = message
                .chat_id
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
                % 3;
            let offset = offsets.entry(partition).or_insert(0);
            *offset += 1;
            SourceRecord {
                position: Position {
                    partition,
                    offset: *offset - 1,
                },
                key: Some(message.chat_id.as_bytes().to_vec()),
                payload: message.encode(),
                headers: Vec::new(),
            }
        })
        .collect()
}

/// CPU time (user + system) of this process so far, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    (fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime")) / 100.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let key = ChatKey::ChatAndSender;
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    for run in 0..runs {
        let source = VecSource {
            records: records(n).into_iter(),
        };
        let groups = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&groups);
        let bytes = Arc::new(AtomicUsize::new(0));
        let written = Arc::clone(&bytes);
        let sink = FnSink::new(
            "encode",
            move |group: &confab_pipeline::Group<_, ChatMessage>| {
                thread_local! {
                    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
                }
                BUFFER.with(|b| {
                    let mut b = b.borrow_mut();
                    b.clear();
                    group.write_json(&mut b);
                    written.fetch_add(b.len(), Ordering::Relaxed);
                });
                counted.fetch_add(1, Ordering::Relaxed);
                Ok(())
            },
        );
        let pipeline = Pipeline::new(
            move |m: &ChatMessage| key.key(m),
            |record: &SourceRecord| ChatMessage::decode(&record.payload, usize::MAX),
            Arc::new(MemoryDeadLetters::default()),
        )
        .sink(Arc::new(sink))
        .policy(WindowPolicy::seed())
        .event_time_only()
        .config(RuntimeConfig::default());
        let (cpu, started) = (cpu_seconds(), Instant::now());
        let report = pipeline.run(source, std::future::pending()).await?;
        let (cpu, wall) = (cpu_seconds() - cpu, started.elapsed());
        anyhow::ensure!(
            report.messages_in == n as u64 && report.dead_letters == 0,
            "the run was not clean: {report:?}"
        );
        println!(
            "run {run}: {} messages, {} groups ({} B), {:.2} s, {:.0} msg/s, {:.2} CPU µs/msg",
            report.messages_in,
            groups.load(Ordering::Relaxed),
            bytes.load(Ordering::Relaxed),
            wall.as_secs_f64(),
            n as f64 / wall.as_secs_f64(),
            cpu * 1e6 / n as f64
        );
    }
    Ok(())
}
