//! Run with: cargo run -p confab-pipeline --example readings
//!
//! IoT readings grouped per device: the pipeline embedded for a record that is not a chat
//! message.
//!
//! A device's readings form a group until the device is silent for 2 s or has sent 50 readings.
//! The readings' times count from 0 (device-relative), not from the Unix epoch, so the pipeline
//! runs on event time only: the wall clock, 56 years ahead of them, must not complete a group
//! whenever the input pauses; the gaps between readings do. Records from an iterator need no
//! ids: their group ids come from their positions, the same on every run. The sink prints each
//! group, and the program checks the groups against the policy.

use std::time::Duration;

use confab_pipeline::{from_iter, Aggregatable, Group, Pipeline, WindowPolicy};

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Reading {
    device_id: u32,
    ts_ms: u64,
    value: f64,
}

impl Aggregatable for Reading {
    fn event_time_ms(&self) -> u64 {
        self.ts_ms
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Device 1: 50 readings 100 ms apart. Device 2: 10 readings 500 ms apart, then silent for
    // 5.5 s after the fourth.
    let steady = (0..50).map(|i| (1, i * 100));
    let paused = (0..10).map(|i| (2, i * 500 + if i < 4 { 0 } else { 5_000 }));
    let readings = steady.chain(paused).map(|(device_id, ts_ms)| Reading {
        device_id,
        ts_ms,
        value: ts_ms as f64 / 1000.0,
    });
    let policy = WindowPolicy::after_inactivity(Duration::from_secs(2)).max_records(50.try_into()?);
    let (groups, written) = std::sync::mpsc::channel();
    Pipeline::typed(|r: &Reading| r.device_id)
        .policy(policy)
        .event_time_only()
        .sink_fn("print", move |g: &Group<u32, Reading>| {
            let mean = g.records.iter().map(|r| r.value).sum::<f64>() / g.len() as f64;
            println!("device {}: {} readings, mean {mean:.2}", g.key, g.len());
            groups.send((g.key, g.len())).expect("main reads");
            Ok(())
        })
        .run_records(from_iter(readings), std::future::pending())
        .await?;
    let mut got: Vec<_> = written.try_iter().collect();
    got.sort();
    // 50 readings fill a group, 2 s of silence ends one, and the end of the input flushes the
    // rest: device 1's readings in one group, device 2's split at its silence.
    assert_eq!(got, [(1, 50), (2, 4), (2, 6)]);
    Ok(())
}
