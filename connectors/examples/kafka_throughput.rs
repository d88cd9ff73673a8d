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
//! pipeline's counters every 20 ms; `ONLY=aggregator` runs the aggregator alone (to profile it;
//! no ratio then).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use confab_connectors::decode_chat_message;
use confab_connectors::kafka::{
    default_brokers, KafkaGroupSink, KafkaSinkConfig, KafkaSource, KafkaSourceConfig,
};
use confab_pipeline::chat::{iso_from_ms, timeuuid_from_ms};
use confab_pipeline::memory::MemoryDeadLetters;
use confab_pipeline::{ChatKey, ChatMessage, Pipeline, RuntimeConfig, WindowPolicy};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;

const PARTITIONS: i32 = 4;

// The allocator the `confab` binary uses (see runners/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Transparent huge pages off, as the `confab` binary runs (see runners/src/main.rs); where
    // the kernel refuses, confab keeps them, and so does this.
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
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

    // REPEAT=N runs all three N times, interleaved, and reports the median of the N ratios: on
    // a shared machine one run can be off by a third either way.
    let repeat: usize = std::env::var("REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let batch: usize = std::env::var("BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
        .max(1);
    let copied = format!("bench_copy_{run}");
    create_topics(&brokers, &[&copied]).await?;
    let (mut to_ceiling, mut to_copy) = (Vec::new(), Vec::new());
    if std::env::var("ONLY").is_ok_and(|only| only == "aggregator") {
        for run in 0..repeat {
            measure("aggregator -> grouped topic", messages, async {
                let (elapsed, groups) = aggregator(&brokers, &topic, &grouped, run).await?;
                Ok((elapsed, format!(" ({groups} groups)")))
            })
            .await?;
        }
        return Ok(());
    }
    for run in 0..repeat {
        let ceiling = measure("plain rdkafka consumer", messages, async {
            Ok((
                plain_consumer(&brokers, &topic, messages, run).await?,
                String::new(),
            ))
        })
        .await?;
        let copy = measure(
            &format!("read + write {batch} messages per record"),
            messages,
            async {
                let elapsed = read_write(&brokers, &topic, &copied, messages, batch, run).await?;
                Ok((elapsed, String::new()))
            },
        )
        .await?;
        let aggregated = measure("aggregator -> grouped topic", messages, async {
            let (elapsed, groups) = aggregator(&brokers, &topic, &grouped, run).await?;
            Ok((elapsed, format!(" ({groups} groups)")))
        })
        .await?;
        let (a, b) = (aggregated / ceiling, aggregated / copy);
        println!("ratio: {a:.2} of the plain consumer's rate (the goal's ceiling), {b:.2} of read + write's");
        to_ceiling.push(a);
        to_copy.push(b);
    }
    if repeat > 1 {
        for (name, ratios) in [
            ("the plain consumer's rate", &mut to_ceiling),
            ("read + write's rate", &mut to_copy),
        ] {
            ratios.sort_by(f64::total_cmp);
            println!(
                "median over {repeat} interleaved runs: {:.2} of {name} (min {:.2}, max {:.2})",
                ratios[repeat / 2],
                ratios[0],
                ratios[repeat - 1]
            );
        }
    }
    Ok(())
}

/// Runs `work`, prints its rate, its CPU per message and the broker's, and returns its rate.
async fn measure(
    name: &str,
    messages: usize,
    work: impl std::future::Future<Output = anyhow::Result<(Duration, String)>>,
) -> anyhow::Result<f64> {
    let (cpu, broker) = (cpu_seconds()?, broker_cpu_seconds());
    let (elapsed, note) = work.await?;
    let cpu = cpu_seconds()? - cpu;
    let rate = messages as f64 / elapsed.as_secs_f64();
    println!(
        "{name}: {messages} messages{note} in {:.2} s = {rate:.0} msg/s, {:.2} CPU µs/msg{}",
        elapsed.as_secs_f64(),
        cpu * 1e6 / messages as f64,
        broker_share(broker, messages)
    );
    Ok(rate)
}

/// (busy, total) jiffies of all cores so far, from the first line of /proc/stat.
fn machine_cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    let total: u64 = fields.iter().take(8).sum();
    Some((total - idle, total))
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

/// A plain consumer in group `group`, from the earliest offset, committing nothing, with the
/// source's fetch settings (see connectors/src/kafka/source.rs): with librdkafka's defaults it
/// waits out a 1 s refetch backoff whenever its prefetch queue fills, which the aggregator does
/// not, and the comparison would flatter the aggregator.
fn reader(brokers: &str, group: &str) -> rdkafka::error::KafkaResult<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.queue.backoff.ms", "10")
        .set("fetch.wait.max.ms", "50")
        .create()
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
        let consumer = reader(&brokers, &format!("ceiling_{topic}_{run}"))?;
        let started = Instant::now();
        consumer.subscribe(&[&topic])?;
        let mut read = 0;
        let mut bytes = 0;
        let mut progress = Instant::now();
        while read < messages {
            // `None` is also what a poll that served a rebalance returns.
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    if read == 0 && std::env::var_os("TIMELINE").is_some() {
                        eprintln!(
                            "plain consumer: first record after {} ms",
                            started.elapsed().as_millis()
                        );
                    }
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

/// Reads the whole topic and writes its bytes to `out` with the grouped-topic sink's producer
/// settings (idempotent, `acks=all`, LZ4), `batch` consecutive messages per record as a JSON
/// array: the reading and writing a Kafka-to-Kafka stage cannot avoid, with no decoding and no
/// grouping. Returns how long it took, until the last write was acknowledged.
async fn read_write(
    brokers: &str,
    topic: &str,
    out: &str,
    messages: usize,
    batch: usize,
    run: usize,
) -> anyhow::Result<Duration> {
    let (brokers, topic, out) = (brokers.to_string(), topic.to_string(), out.to_string());
    let sink = KafkaSinkConfig::default();
    tokio::task::spawn_blocking(move || {
        let consumer = reader(&brokers, &format!("copy_{topic}_{run}"))?;
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", &sink.compression)
            .create()?;
        let started = Instant::now();
        consumer.subscribe(&[&topic])?;
        let (mut read, mut pending, mut key) = (0, 0, Vec::new());
        let mut record = Vec::with_capacity(batch * 512);
        let mut progress = Instant::now();
        while read < messages {
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    read += 1;
                    progress = Instant::now();
                    record.push(if pending == 0 { b'[' } else { b',' });
                    if pending == 0 {
                        key = m.key().unwrap_or_default().to_vec();
                    }
                    record.extend_from_slice(m.payload().unwrap_or_default());
                    pending += 1;
                    if pending == batch || read == messages {
                        record.push(b']');
                        let mut next = BaseRecord::<[u8], [u8]>::to(&out)
                            .key(&key)
                            .payload(&record);
                        loop {
                            match producer.send(next) {
                                Ok(()) => break,
                                Err((
                                    KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                                    r,
                                )) => {
                                    producer.poll(Duration::from_millis(1));
                                    next = r;
                                }
                                Err((e, _)) => return Err(e.into()),
                            }
                        }
                        producer.poll(Duration::ZERO);
                        record.clear();
                        pending = 0;
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => return Err(e.into()),
                None if progress.elapsed() > Duration::from_secs(30) => {
                    bail!("the copy stalled after {read} messages")
                }
                None => {}
            }
        }
        producer.flush(Duration::from_secs(60))?;
        Ok(started.elapsed())
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
        // As `confab aggregate` reads: the chat decoder reads no header.
        headers: false,
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
            let mut last = machine_cpu_ticks();
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                // How busy the machine's cores were since the last line (100 % = all busy).
                let now = machine_cpu_ticks();
                let busy = match (last, now) {
                    (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                        format!("{:>3.0} %", 100.0 * (b1 - b0) as f64 / (t1 - t0) as f64)
                    }
                    _ => "  ? %".into(),
                };
                last = now;
                eprintln!(
                    "{:>6} ms cpu {busy} in {:>7} out {:>7} groups {:>6} open {:>5} in-flight {:>9} B lag {:>6} pauses {}",
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
