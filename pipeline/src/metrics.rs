//! Counters and gauges of one pipeline, updated lock-free by the operator and the runtime, and
//! rendered in the Prometheus text format by whoever serves `/metrics` (this crate opens no port).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::group::CompletionReason;

/// Upper bounds (ms) of the flush-delay histogram buckets: from a group's last record's event
/// time to the moment every sink acknowledged it.
pub const DELAY_BUCKETS_MS: [u64; 12] = [
    10, 50, 100, 250, 500, 1_000, 2_000, 3_000, 5_000, 10_000, 30_000, 60_000,
];

/// The pipeline's metrics. Share it with `Arc`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Records read from the source (decoded or not).
    pub messages_in: AtomicU64,
    /// Records that reached the operator inside a group that every sink acknowledged.
    pub messages_out: AtomicU64,
    /// Groups completed by the operator.
    pub groups_completed: AtomicU64,
    /// Groups acknowledged by every sink.
    pub groups_out: AtomicU64,
    /// Groups a sink refused for good, whose records went to the dead-letter sink instead (not
    /// counted in `groups_out`).
    pub groups_rejected: AtomicU64,
    /// Groups currently open in the operator.
    pub open_groups: AtomicU64,
    /// Bytes of records currently held in open groups.
    pub open_bytes: AtomicU64,
    /// Bytes read from the source and not yet acknowledged by every sink.
    pub in_flight_bytes: AtomicU64,
    /// Records sent to the dead-letter sink.
    pub dead_letters: AtomicU64,
    /// Sink writes retried after a retryable error.
    pub sink_retries: AtomicU64,
    /// Source commits made.
    pub commits: AtomicU64,
    /// Records read but not yet committable (the commit lag, in records).
    pub commit_lag: AtomicU64,
    /// Times the source was paused because too many bytes were in flight.
    pub backpressure_pauses: AtomicU64,
    completions: [AtomicU64; CompletionReason::ALL.len()],
    delay_buckets: [AtomicU64; DELAY_BUCKETS_MS.len() + 1],
    delay_sum_ms: AtomicU64,
}

impl Metrics {
    /// A new group of `bytes` opened.
    pub fn add_open_group(&self, bytes: usize) {
        self.open_groups.fetch_add(1, Relaxed);
        self.open_bytes.fetch_add(bytes as u64, Relaxed);
    }

    /// An open group grew by `bytes`.
    pub fn add_open_bytes(&self, bytes: usize) {
        self.open_bytes.fetch_add(bytes as u64, Relaxed);
    }

    /// An open group of `bytes` completed for `reason`.
    pub fn group_completed(&self, bytes: usize, reason: CompletionReason) {
        self.open_groups.fetch_sub(1, Relaxed);
        self.open_bytes.fetch_sub(bytes as u64, Relaxed);
        self.groups_completed.fetch_add(1, Relaxed);
        self.completions[reason_index(reason)].fetch_add(1, Relaxed);
    }

    /// How many groups completed for `reason`.
    pub fn completions(&self, reason: CompletionReason) -> u64 {
        self.completions[reason_index(reason)].load(Relaxed)
    }

    /// Records one flush delay.
    pub fn observe_delay_ms(&self, ms: u64) {
        let bucket = DELAY_BUCKETS_MS
            .iter()
            .position(|&bound| ms <= bound)
            .unwrap_or(DELAY_BUCKETS_MS.len());
        self.delay_buckets[bucket].fetch_add(1, Relaxed);
        self.delay_sum_ms.fetch_add(ms, Relaxed);
    }

    /// Messages per group written: how many writes grouping saved, as a factor.
    pub fn messages_per_group(&self) -> f64 {
        let groups = self.groups_out.load(Relaxed);
        if groups == 0 {
            return 0.0;
        }
        self.messages_out.load(Relaxed) as f64 / groups as f64
    }

    /// The metrics in the Prometheus text exposition format, each name prefixed by `prefix`.
    pub fn render_prometheus(&self, prefix: &str) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {prefix}_{name} {help}");
            let _ = writeln!(out, "# TYPE {prefix}_{name} {kind}");
            let _ = writeln!(out, "{prefix}_{name} {value}");
        };
        let load = |a: &AtomicU64| a.load(Relaxed);
        metric(
            "messages_in_total",
            "counter",
            "Records read from the source.",
            load(&self.messages_in),
        );
        metric(
            "messages_out_total",
            "counter",
            "Records in groups acknowledged by every sink.",
            load(&self.messages_out),
        );
        metric(
            "groups_completed_total",
            "counter",
            "Groups completed by the operator.",
            load(&self.groups_completed),
        );
        metric(
            "groups_out_total",
            "counter",
            "Groups acknowledged by every sink.",
            load(&self.groups_out),
        );
        metric(
            "groups_rejected_total",
            "counter",
            "Groups a sink refused for good, sent to the dead-letter sink.",
            load(&self.groups_rejected),
        );
        metric(
            "open_groups",
            "gauge",
            "Groups open in the operator.",
            load(&self.open_groups),
        );
        metric(
            "open_bytes",
            "gauge",
            "Bytes of records in open groups.",
            load(&self.open_bytes),
        );
        metric(
            "in_flight_bytes",
            "gauge",
            "Bytes read and not yet acknowledged by every sink.",
            load(&self.in_flight_bytes),
        );
        metric(
            "dead_letters_total",
            "counter",
            "Records sent to the dead-letter sink.",
            load(&self.dead_letters),
        );
        metric(
            "sink_retries_total",
            "counter",
            "Sink writes retried after a retryable error.",
            load(&self.sink_retries),
        );
        metric(
            "commits_total",
            "counter",
            "Source commits made.",
            load(&self.commits),
        );
        metric(
            "commit_lag_records",
            "gauge",
            "Records read but not yet committable.",
            load(&self.commit_lag),
        );
        metric(
            "backpressure_pauses_total",
            "counter",
            "Times the source paused for backpressure.",
            load(&self.backpressure_pauses),
        );
        let _ = writeln!(
            out,
            "# HELP {prefix}_group_completions_total Groups completed, by reason."
        );
        let _ = writeln!(out, "# TYPE {prefix}_group_completions_total counter");
        for reason in CompletionReason::ALL {
            let _ = writeln!(
                out,
                "{prefix}_group_completions_total{{reason=\"{}\"}} {}",
                reason.as_str(),
                self.completions(reason)
            );
        }
        let _ = writeln!(out, "# HELP {prefix}_flush_delay_ms From a group's last record to its acknowledgement by every sink.");
        let _ = writeln!(out, "# TYPE {prefix}_flush_delay_ms histogram");
        let mut cumulative = 0;
        for (i, bucket) in self.delay_buckets.iter().enumerate() {
            cumulative += load(bucket);
            let le = DELAY_BUCKETS_MS
                .get(i)
                .map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "{prefix}_flush_delay_ms_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{prefix}_flush_delay_ms_sum {}",
            load(&self.delay_sum_ms)
        );
        let _ = writeln!(out, "{prefix}_flush_delay_ms_count {cumulative}");
        out
    }
}

fn reason_index(reason: CompletionReason) -> usize {
    CompletionReason::ALL
        .iter()
        .position(|r| *r == reason)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_reports_counters_reasons_and_histogram() {
        let m = Metrics::default();
        m.add_open_group(100);
        m.group_completed(100, CompletionReason::MaxMessages);
        m.observe_delay_ms(40);
        m.observe_delay_ms(90_000);
        let text = m.render_prometheus("confab");
        assert!(text.contains("confab_groups_completed_total 1\n"));
        assert!(text.contains("confab_open_groups 0\n"));
        assert!(text.contains("confab_group_completions_total{reason=\"max_messages\"} 1\n"));
        assert!(text.contains("confab_flush_delay_ms_bucket{le=\"50\"} 1\n"));
        assert!(text.contains("confab_flush_delay_ms_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("confab_flush_delay_ms_sum 90040\n"));
    }
}
