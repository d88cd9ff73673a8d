//! Run with: scripts/infra up kafka && cargo run --release -p confab-connectors --features kafka --example kafka_throughput -- [MESSAGES] [CHATS] [FILLED_TOPIC]
//!
//! Messages per second from a pre-filled Kafka topic through the aggregator (Kafka source ->
//! decode -> operator -> grouped-topic sink, commit-after-ack) beside the rate of a plain rdkafka
//! consumer that only reads the same topic: the ceiling. Both are timed from subscribing to
//! having read (and, for the pipeline, written and committed) everything, so both include the
//! consumer-group join. Prints one line per run and the ratio.
//!
//! Environment: `REPEAT=N` runs both N times, interleaved, and prints the median ratio;
//! `BUFFERED=N` sets the source's `max_buffered_records`; `TIMELINE=1` prints the
//! pipeline's counters every 20 ms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use confab_connectors::decode_chat_message;
use confab_connectors::kafka::{
    default_brokers, KafkaGroupSink, KafkaSinkConfig, KafkaSource, KafkaSourceConfig,
};
use confab_pipeline::memory::MemoryDeadLetters;
use confab_pipeline::record::{iso_from_ms, timeuuid_from_ms};
use confab_pipeline::{ChatKey, ChatMessage, Pipeline, RuntimeConfig, WindowPolicy};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

const PARTITIONS: i32 = 4;

// The allocator the `confab` binary uses (see runners/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let messages: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    let chats: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_000);
    let brokers = default_brokers();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let grouped = format!("bench_grouped_{run}");
    // A third argument names a topic an earlier run filled with the same MESSAGES (printed by
    // that run), to profile the read side alone.
    let topic = match args.next() {
        Some(topic) => {
            create_topics(&brokers, &[&grouped]).await?;
            topic
        }
        None => {
            let topic = format!("bench_in_{run}");
            create_topics(&brokers, &[&topic, &grouped]).await?;
            fill(&brokers, &topic, messages, chats).await?;
            topic
        }
    };

    // REPEAT=N runs both N times, interleaved, and reports the median of the N ratios: on a
    // shared machine one pair of runs can be off by a third either way.
    let repeat: usize = std::env::var("REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut ratios = Vec::with_capacity(repeat);
    for run in 0..repeat {
        let (cpu, broker) = (cpu_seconds()?, broker_cpu_seconds());
        let ceiling = plain_consumer(&brokers, &topic, messages, run).await?;
        let ceiling_cpu = cpu_seconds()? - cpu;
        println!(
            "plain rdkafka consumer: {messages} messages in {:.2} s = {:.0} msg/s, {:.2} CPU µs/msg{}",
            ceiling.as_secs_f64(),
            messages as f64 / ceiling.as_secs_f64(),
            ceiling_cpu * 1e6 / messages as f64,
            broker_share(broker, messages)
        );
        let (cpu, broker) = (cpu_seconds()?, broker_cpu_seconds());
        let (aggregator, groups) = aggregator(&brokers, &topic, &grouped, run).await?;
        let aggregator_cpu = cpu_seconds()? - cpu;
        println!(
            "aggregator -> grouped topic: {messages} messages ({groups} groups) in {:.2} s = {:.0} msg/s, {:.2} CPU µs/msg{}",
            aggregator.as_secs_f64(),
            messages as f64 / aggregator.as_secs_f64(),
            aggregator_cpu * 1e6 / messages as f64,
            broker_share(broker, messages)
        );
        let ratio = ceiling.as_secs_f64() / aggregator.as_secs_f64();
        println!(
            "ratio: {ratio:.2} of the ceiling (wall clock); CPU per message {:.2}x the plain consumer's",
            aggregator_cpu / ceiling_cpu
        );
        ratios.push(ratio);
    }
    if repeat > 1 {
        ratios.sort_by(f64::total_cmp);
        println!(
            "median ratio over {repeat} interleaved runs: {:.2} (min {:.2}, max {:.2})",
            ratios[repeat / 2],
            ratios[0],
            ratios[repeat - 1]
        );
    }
    Ok(())
}

/// ", broker X CPU µs/msg": the broker's CPU since `before`, when the broker runs here.
fn broker_share(before: Option<f64>, messages: usize) -> String {
    match (before, broker_cpu_seconds()) {
        (Some(before), Some(after)) => format!(
            ", broker {:.2} CPU µs/msg",
            (after - before) * 1e6 / messages as f64
        ),
        _ => String::new(),
    }
}

/// CPU time (user + system) this process has used so far: on a shared, busy machine CPU per
/// message is a steadier figure than wall-clock rate.
fn cpu_seconds() -> anyhow::Result<f64> {
    process_cpu_seconds("self")
}

/// CPU time of the local Kafka broker (the process running `kafka.Kafka`), if there is one.
fn broker_cpu_seconds() -> Option<f64> {
    let broker = std::fs::read_dir("/proc").ok()?.flatten().find(|entry| {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        cmdline.split(|&b| b == 0).any(|arg| arg == b"kafka.Kafka")
    })?;
    process_cpu_seconds(&broker.file_name().to_string_lossy()).ok()
}

/// CPU time (user + system) of process `pid` so far, from /proc/PID/stat.
fn process_cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).context("utime")?.parse::<f64>()?
        + fields.get(12).context("stime")?.parse::<f64>()?;
    Ok(ticks / 100.0)
}

async fn create_topics(brokers: &str, topics: &[&str]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    for result in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .with_context(|| {
            format!("cannot reach Kafka at {brokers}: start it with `scripts/infra up kafka`")
        })?
    {
        result.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    Ok(())
}

/// Produces `messages` chat messages over `chats` chats, a few per chat and second of event time.
async fn fill(brokers: &str, topic: &str, messages: usize, chats: usize) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .create()?;
    let t0 = 1_700_000_000_000u64;
    let started = Instant::now();
    for chunk in (0..messages).collect::<Vec<_>>().chunks(20_000) {
        let encoded: Vec<(String, Vec<u8>)> = chunk
            .iter()
            .map(|&i| {
                let chat = format!("chat-{}", i % chats);
                let ms = t0 + (i / chats) as u64 * 300 + (i % chats) as u64 % 300;
                let message = ChatMessage {
                    message_id: format!("m{i}").into(),
                    chat_id: chat.clone().into(),
                    from_user: format!("u{}", i % 7).into(),
                    to_user: format!("u{}", (i + 1) % 7).into(),
                    body: "a chat message of ordinary length, about sixty bytes long".into(),
                    time: timeuuid_from_ms(ms, (i % 10_000) as u16, [1; 6]),
                    time_iso: iso_from_ms(ms).into(),
                };
                (chat, message.encode())
            })
            .collect();
        let sends = encoded.iter().map(|(key, payload)| {
            producer.send(
                FutureRecord::to(topic)
                    .key(key.as_str())
                    .payload(payload.as_slice()),
                Duration::from_secs(30),
            )
        });
        for result in futures::future::join_all(sends).await {
            result.map_err(|(e, _)| e)?;
        }
    }
    println!(
        "filled {topic} with {messages} messages over {chats} chats in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Reads the whole topic with a plain consumer; returns how long it took.
async fn plain_consumer(
    brokers: &str,
    topic: &str,
    messages: usize,
    run: usize,
) -> anyhow::Result<Duration> {
    let (brokers, topic) = (brokers.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("ceiling_{topic}_{run}"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            // The source's fetch settings (see connectors/src/kafka/source.rs), so that the
            // ceiling is not held back by librdkafka's 1 s refetch backoff after a full queue.
            .set("fetch.queue.backoff.ms", "10")
            .set("fetch.wait.max.ms", "50")
            .create()?;
        let started = Instant::now();
        consumer.subscribe(&[&topic])?;
        let mut read = 0;
        let mut bytes = 0;
        let mut progress = Instant::now();
        while read < messages {
            // `None` is also what a poll that served a rebalance returns.
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    read += 1;
                    bytes += m.payload_len();
                    progress = Instant::now();
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => return Err(e.into()),
                None if progress.elapsed() > Duration::from_secs(30) => {
                    bail!("the plain consumer stalled after {read} messages")
                }
                None => {}
            }
        }
        let elapsed = started.elapsed();
        if bytes == 0 {
            bail!("read no bytes");
        }
        Ok(elapsed)
    })
    .await?
}

/// Runs the aggregator over the whole topic into the grouped topic; returns how long it took and
/// how many groups it wrote.
async fn aggregator(
    brokers: &str,
    topic: &str,
    grouped: &str,
    run: usize,
) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    // Connected side by side, as `confab aggregate` does.
    let source_config = KafkaSourceConfig {
        brokers: brokers.to_string(),
        topic: topic.to_string(),
        group_id: format!("aggregator_{grouped}_{run}"),
        exit_at_end: true,
        max_buffered_records: std::env::var("BUFFERED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(KafkaSourceConfig::default().max_buffered_records),
        ..KafkaSourceConfig::default()
    };
    let (source, sink) = tokio::try_join!(KafkaSource::connect(&source_config), async {
        KafkaGroupSink::connect(&KafkaSinkConfig {
            brokers: brokers.to_string(),
            topic: grouped.to_string(),
            ..KafkaSinkConfig::default()
        })
        .await
        .map_err(|e| confab_pipeline::SourceError::fatal(e.message))
    },)?;
    let pipeline = Pipeline::new(
        |m: &ChatMessage| ChatKey::Chat.key(m),
        decode_chat_message,
        Arc::new(MemoryDeadLetters::default()),
    )
    .sink(Arc::new(sink))
    .policy(WindowPolicy::default())
    .config(RuntimeConfig::default());
    // TIMELINE=1 prints the pipeline's counters every 20 ms, to see where it waits.
    let timeline = std::env::var_os("TIMELINE").map(|_| {
        let metrics = pipeline.metrics_handle();
        tokio::spawn(async move {
            use std::sync::atomic::Ordering::Relaxed;
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                eprintln!(
                    "{:>6} ms in {:>7} out {:>7} groups {:>6} open {:>5} in-flight {:>9} B lag {:>6} pauses {}",
                    started.elapsed().as_millis(),
                    metrics.messages_in.load(Relaxed),
                    metrics.messages_out.load(Relaxed),
                    metrics.groups_out.load(Relaxed),
                    metrics.open_groups.load(Relaxed),
                    metrics.in_flight_bytes.load(Relaxed),
                    metrics.commit_lag.load(Relaxed),
                    metrics.backpressure_pauses.load(Relaxed),
                );
            }
        })
    });
    let report = pipeline.run(source, std::future::pending()).await?;
    let elapsed = started.elapsed();
    if let Some(timeline) = timeline {
        timeline.abort();
    }
    if report.dead_letters > 0 || report.unacknowledged_groups > 0 {
        bail!("the run was not clean: {report:?}");
    }
    Ok((elapsed, report.groups_out))
}
