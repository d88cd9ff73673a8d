//! Memory report: bytes per open group (its record included) and peak RSS with 1 million open
//! groups of decoded chat messages.
//!
//! Run with: cargo bench -p confab-benches --bench open_groups

use std::sync::{Arc, Mutex};

use confab_benches::{envelopes, messages, payloads, run, Input};
use confab_pipeline::{ChatMessage, WindowPolicy};

// The confab binary's allocator. It gives freed pages back to the OS shortly after they are
// freed, so RSS shows what is live rather than what glibc's heap kept of the workload's
// construction (with glibc, the freed construction garbage was partly reused by the operator and
// the figures depended on how the records were built).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// RSS after giving the allocator a moment to return what was freed.
fn settled_rss_kib() -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(200));
    status_kib("VmRSS:")
}

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
    let at_start = settled_rss_kib();
    // Decoded from JSON, as the aggregator holds them: each record's text fields share one copy
    // of its JSON.
    let decoded: Vec<ChatMessage> = payloads(&messages(GROUPS, GROUPS, 1))
        .iter()
        .map(|p| ChatMessage::decode(p, usize::MAX).expect("the workload decodes"))
        .collect();
    let records = envelopes(&decoded);
    drop(decoded);
    let with_records = settled_rss_kib();
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
            *seen.lock().expect("rss") = settled_rss_kib();
        },
    );
    assert_eq!(groups, GROUPS);
    let open = *open_rss.lock().expect("rss");
    // Everything the process gained from its start, per group: the record (its JSON, which its
    // fields share, and the record inline), its key and the operator's indexes. The share of the
    // operator alone is not reported: measured as the RSS gained while the groups open, it depends
    // on how much of the records' construction the allocator had freed and reuses.
    let per_group = open.saturating_sub(at_start) * 1024 / GROUPS as u64;
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
    println!("bytes per open group:              {per_group} (its record included)");
}
