//! Run with: scripts/infra up fluvio && cargo run --release -p confab-connectors --features fluvio --example fluvio_fill -- TOPIC PARTITIONS < records.tsv
//!
//! Fills a new Fluvio topic for a benchmark: creates TOPIC with PARTITIONS partitions (on the
//! cluster at `$CONFAB_FLUVIO_ENDPOINT`, 127.0.0.1:9003 by default), writes one record per input
//! line `KEY<TAB>VALUE` (the value runs to the end of the line), partitioned by key as the
//! Fluvio producer does, and prints `PARTITION OFFSET` for each record, in input order, once
//! every record is acknowledged. `benches/compare` prefills its Fluvio input with it, so that
//! its Python driver needs no Fluvio client.

use std::io::{BufRead, BufWriter, Write};
use std::time::Duration;

use anyhow::{bail, Context};
use confab_connectors::fluvio::{create_topic, default_endpoint};
use fluvio::{Fluvio, FluvioClusterConfig, RecordKey};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [topic, partitions] = args.as_slice() else {
        bail!("usage: fluvio_fill TOPIC PARTITIONS < KEY<TAB>VALUE lines");
    };
    let partitions: u32 = partitions.parse().context("PARTITIONS must be a number")?;
    let endpoint = default_endpoint();
    let fluvio = Fluvio::connect_with_config(&FluvioClusterConfig::new(&endpoint))
        .await
        .with_context(|| {
            format!("cannot reach Fluvio at {endpoint}: start it with scripts/infra up fluvio")
        })?;
    create_topic(&fluvio, topic, partitions, Duration::from_secs(60)).await?;
    let producer = fluvio
        .topic_producer(topic.as_str())
        .await
        .with_context(|| format!("a producer for {topic}"))?;

    let mut sent = Vec::new();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading stdin")?;
        let Some((key, value)) = line.split_once('\t') else {
            bail!("line {}: no TAB between key and value", n + 1);
        };
        let output = producer
            .send(
                RecordKey::from(key.as_bytes().to_vec()),
                value.as_bytes().to_vec(),
            )
            .await
            .with_context(|| format!("producing record {} to {topic}", n + 1))?;
        sent.push(output);
    }
    producer.flush().await.context("flushing")?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    for output in sent {
        let metadata = output
            .wait()
            .await
            .context("a record was not acknowledged")?;
        writeln!(out, "{} {}", metadata.partition_id(), metadata.offset())?;
    }
    out.flush()?;
    Ok(())
}
