//! Memory report: bytes per open group and peak RSS with 1 million open groups.
//!
//! Run with: cargo bench -p confab-benches --bench open_groups

use std::sync::Arc;

use confab_benches::{messages, payloads, run, Path};
use confab_pipeline::WindowPolicy;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks benches to enumerate themselves; this one has no cases.
    }
    const GROUPS: usize = 1_000_000;
    let decoded = Arc::new(messages(GROUPS, GROUPS));
    let payloads = Arc::new(payloads(&decoded));
    let before = rss_kib("VmRSS:");
    // Nothing completes before the end of input: every chat stays open until then.
    let policy = WindowPolicy {
        inactivity_timeout_ms: 86_400_000,
        max_age_ms: 86_400_000,
        ..WindowPolicy::default()
    };
    let (groups, _) = run(1, policy, Arc::clone(&payloads), Arc::clone(&decoded), Path::OperatorOnly);
    let peak = rss_kib("VmHWM:");
    assert_eq!(groups, GROUPS);
    let per_group = (peak.saturating_sub(before)) * 1024 / GROUPS as u64;
    let record = std::mem::size_of::<confab_pipeline::Envelope<confab_pipeline::ChatMessage>>();
    println!("open groups:          {GROUPS}");
    println!("RSS before the run:   {} MiB (workload held in memory)", before / 1024);
    println!("peak RSS:             {} MiB", peak / 1024);
    println!("bytes per open group: {per_group} (one ~280-byte message each; Envelope<ChatMessage> is {record} bytes inline)");
}
