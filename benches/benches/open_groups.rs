//! Memory report: bytes per open group and peak RSS with 1 million open groups.
//!
//! Run with: cargo bench -p confab-benches --bench open_groups

use std::sync::{Arc, Mutex};

use confab_benches::{envelopes, messages, payloads, run, Input};
use confab_pipeline::{ChatMessage, WindowPolicy};

fn status_kib(field: &str) -> u64 {
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
    // Decoded from JSON, as the aggregator holds them: each record's text fields share one copy
    // of its JSON.
    let decoded: Vec<ChatMessage> = payloads(&messages(GROUPS, GROUPS, 1))
        .iter()
        .map(|p| ChatMessage::decode(p, usize::MAX).expect("the workload decodes"))
        .collect();
    let records = envelopes(&decoded);
    drop(decoded);
    let with_records = status_kib("VmRSS:");
    // Nothing completes before the end of input: every chat stays open until then.
    let policy = WindowPolicy {
        inactivity_timeout_ms: 86_400_000,
        max_age_ms: 86_400_000,
        ..WindowPolicy::default()
    };
    let open_rss = Arc::new(Mutex::new(0));
    let seen = Arc::clone(&open_rss);
    let (groups, _) = run(
        1,
        policy,
        Input::Records(Mutex::new(Some(records))),
        move || {
            *seen.lock().expect("rss") = status_kib("VmRSS:");
        },
    );
    assert_eq!(groups, GROUPS);
    let open = *open_rss.lock().expect("rss");
    let per_group = open.saturating_sub(with_records) * 1024 / GROUPS as u64;
    println!("open groups:                       {GROUPS} (one ~340-byte chat message each)");
    println!(
        "RSS with the records in memory:    {} MiB",
        with_records / 1024
    );
    println!("RSS with all groups open:          {} MiB", open / 1024);
    println!(
        "peak RSS (including the flush):    {} MiB",
        status_kib("VmHWM:") / 1024
    );
    println!("bytes per open group:              {per_group} (the record inline, its key and the operator's indexes; not the record's JSON, which its fields share)");
}
