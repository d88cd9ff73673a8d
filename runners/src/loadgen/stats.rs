//! What the load generator measures and reports: outcomes by kind, latency histograms, and the
//! report (JSON for machines, Markdown for people; the summary printed at the end is the
//! Markdown).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, up to an hour, to 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant, valid bounds")
}

/// Records `d` (clamped into the histogram's range).
pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, h.high());
    h.saturating_record(us);
}

/// How a send ended when it did not end with 201.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Failure {
    /// An HTTP status other than 201 (429 is the per-user rate limit).
    Status(u16),
    /// No response within the request timeout.
    Timeout,
    /// The connection could not be made or broke.
    Connect,
    /// A 201 whose body was not the message.
    BadResponse,
    /// Anything else the client reported.
    Other,
}

impl Failure {
    /// The stable key in the report (`status_429`, `timeout`, ...).
    pub(crate) fn key(&self) -> String {
        match self {
            Self::Status(code) => format!("status_{code}"),
            Self::Timeout => "timeout".into(),
            Self::Connect => "connect".into(),
            Self::BadResponse => "bad_response".into(),
            Self::Other => "other".into(),
        }
    }

    /// What it means, for the summary.
    pub(crate) fn meaning(&self) -> &'static str {
        match self {
            Self::Status(429) => "rate limited: a user sent faster than the chat service's [chat.limits] allow (spread the load over more --users)",
            Self::Status(503) => "a backend of the chat service is unavailable (the log or the database)",
            Self::Status(401) => "token refused (expired or signed by another key)",
            Self::Status(s) if *s >= 500 => "server error",
            Self::Status(_) => "refused request",
            Self::Timeout => "no response within --timeout",
            Self::Connect => "cannot connect to the chat service",
            Self::BadResponse => "201 without the message in the body",
            Self::Other => "client error",
        }
    }
}

/// Failures of one kind.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FailureCount {
    pub(crate) count: u64,
    pub(crate) meaning: &'static str,
    /// The first failure's detail (the service's error message, or the client's).
    pub(crate) example: String,
}

/// Everything the send phase counts.
pub(crate) struct Recorder {
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) failures: BTreeMap<Failure, FailureCount>,
    /// Measured window only: intended send time to response.
    pub(crate) latency: Histogram<u64>,
    /// Measured window only: actual send time to response.
    pub(crate) service: Histogram<u64>,
    pub(crate) measured_sent: u64,
    pub(crate) measured_ok: u64,
    /// When the last measured response arrived, from the measured window's start.
    pub(crate) measured_last_response: Duration,
    /// The longest a send started after its intended time.
    pub(crate) max_start_lag: Duration,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            sent: 0,
            ok: 0,
            failures: BTreeMap::new(),
            latency: histogram(),
            service: histogram(),
            measured_sent: 0,
            measured_ok: 0,
            measured_last_response: Duration::ZERO,
            max_start_lag: Duration::ZERO,
        }
    }
}

impl Recorder {
    pub(crate) fn errors(&self) -> u64 {
        self.failures.values().map(|f| f.count).sum()
    }

    pub(crate) fn fail(&mut self, failure: Failure, detail: impl FnOnce() -> String) {
        let meaning = failure.meaning();
        self.failures
            .entry(failure)
            .and_modify(|f| f.count += 1)
            .or_insert_with(|| FailureCount {
                count: 1,
                meaning,
                example: detail(),
            });
    }
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Percentiles {
    pub(crate) count: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) mean_ms: f64,
}

impl Percentiles {
    pub(crate) fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

/// The run's options, as reported.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunConfig {
    pub(crate) auth_url: String,
    pub(crate) chat_url: String,
    pub(crate) users: usize,
    pub(crate) chats: usize,
    pub(crate) rate: f64,
    pub(crate) duration_s: f64,
    pub(crate) warmup_s: f64,
    pub(crate) seed: u64,
    pub(crate) concurrency: usize,
    pub(crate) message_bytes: usize,
    /// The highest rate one user sends at (the chat service limits each user).
    pub(crate) max_user_rate: f64,
}

/// The measured window (after the warm-up).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Measured {
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    /// 201s per second, from the window's start to its last response.
    pub(crate) achieved_rate: f64,
    /// From the intended send time to the response: includes any wait for a free connection
    /// or a late start, so a slow server cannot hide its latency.
    pub(crate) send_latency: Percentiles,
    /// From the moment the request went out to the response.
    pub(crate) service_time: Percentiles,
    /// The longest a send started after its intended time (the generator or --concurrency
    /// holding it back).
    pub(crate) max_start_lag_ms: f64,
}

/// Delivery to Firestore.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Delivery {
    pub(crate) project: String,
    pub(crate) collection: String,
    /// Messages acknowledged (201) during the whole run.
    pub(crate) expected: u64,
    /// Of those, seen by the listener in a group document.
    pub(crate) seen: u64,
    /// Of those not seen by the listener, found by a query at the end (when any were missing).
    pub(crate) found_by_query: Option<u64>,
    /// Measured window: intended send time to the listener receiving the group document.
    pub(crate) e2e_delay: Percentiles,
}

/// Resident memory of a watched process.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct ProcessMemory {
    pub(crate) name: String,
    pub(crate) pid: u32,
    pub(crate) samples: usize,
    /// When sending began.
    pub(crate) before_kib: u64,
    /// When the measured window began.
    pub(crate) start_kib: u64,
    pub(crate) peak_kib: u64,
    /// The last sample, at the end of the run.
    pub(crate) end_kib: u64,
    /// Least-squares slope over the measured window, KiB per minute.
    pub(crate) slope_kib_per_min: f64,
    /// User and system CPU time over the measured window, in seconds.
    pub(crate) cpu_seconds_measured: f64,
    /// The process was gone before the run ended.
    pub(crate) exited: bool,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) started_at: String,
    pub(crate) config: RunConfig,
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) errors_by_kind: BTreeMap<String, FailureCount>,
    pub(crate) measured: Measured,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) firestore: Option<Delivery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) live: Option<LiveDelivery>,
    pub(crate) processes: Vec<ProcessMemory>,
}

/// The live lane: what the chatting users' events streams received.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LiveDelivery {
    /// Streams of chatting users (one each).
    pub(crate) streams: usize,
    /// Idle streams held open beside them.
    pub(crate) idle_streams: usize,
    /// Acknowledged messages, and how many reached their recipient's stream.
    pub(crate) expected: u64,
    pub(crate) seen: u64,
    /// Measured window: intended send time to the recipient's stream receiving the message.
    pub(crate) delay: Percentiles,
    /// Per watched process: its RSS growth from opening the idle streams, per idle stream (KiB).
    pub(crate) idle_stream_kib: Vec<(String, f64)>,
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

impl Report {
    /// The report as Markdown.
    pub(crate) fn markdown(&self) -> String {
        use std::fmt::Write;
        let c = &self.config;
        let m = &self.measured;
        let mut s = String::new();
        let _ = writeln!(s, "## confab loadgen, {}\n", self.started_at);
        let _ = writeln!(
            s,
            "Target {} msg/s for {} s after {} s of warm-up, over {} chats between {} users (at most {:.2} msg/s per user), {} in flight at most, {}-byte bodies, seed {}; auth {}, chat {}.\n",
            c.rate, c.duration_s, c.warmup_s, c.chats, c.users, c.max_user_rate, c.concurrency, c.message_bytes, c.seed, c.auth_url, c.chat_url
        );
        let _ = writeln!(s, "| | value |\n|---|---|");
        let _ = writeln!(s, "| sent (whole run) | {} |", self.sent);
        let _ = writeln!(s, "| ok (201) | {} |", self.ok);
        let _ = writeln!(s, "| errors | {} |", self.errors);
        let _ = writeln!(s, "| measured: sent / ok | {} / {} |", m.sent, m.ok);
        let _ = writeln!(
            s,
            "| measured: achieved rate | {:.1} msg/s |",
            m.achieved_rate
        );
        let _ = writeln!(s, "| largest start lag | {:.1} ms |", m.max_start_lag_ms);
        if let Some(l) = &self.live {
            let _ = writeln!(
                s,
                "| live lane: seen by the recipient's stream | {} of {} ({} chatting streams, {} idle) |",
                l.seen, l.expected, l.streams, l.idle_streams
            );
            for (name, kib) in &l.idle_stream_kib {
                let _ = writeln!(s, "| {name}: RSS per idle stream | {kib:.1} KiB |");
            }
        }
        for p in &self.processes {
            if m.ok > 0 && p.cpu_seconds_measured > 0.0 {
                let _ = writeln!(
                    s,
                    "| {}: CPU per message (measured window) | {:.3} ms |",
                    p.name,
                    p.cpu_seconds_measured * 1000.0 / m.ok as f64
                );
            }
        }
        if let Some(f) = &self.firestore {
            let _ = writeln!(
                s,
                "| seen in Firestore ({}/{}) | {} of {}{} |",
                f.project,
                f.collection,
                f.seen,
                f.expected,
                f.found_by_query
                    .map(|n| format!(" (+{n} found by a query at the end)"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(
            s,
            "\n| latency (ms) | count | p50 | p90 | p99 | p99.9 | max | mean |\n|---|---|---|---|---|---|---|---|"
        );
        let mut row = |name: &str, p: &Percentiles| {
            let _ = writeln!(
                s,
                "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms, p.mean_ms
            );
        };
        row("send (from intended time)", &m.send_latency);
        row("send (service time)", &m.service_time);
        if let Some(l) = &self.live {
            row("end-to-end, live lane", &l.delay);
        }
        if let Some(f) = &self.firestore {
            row("end-to-end to Firestore", &f.e2e_delay);
        }
        if !self.errors_by_kind.is_empty() {
            let _ = writeln!(
                s,
                "\n| error | count | meaning | first |\n|---|---|---|---|"
            );
            for (kind, f) in &self.errors_by_kind {
                let _ = writeln!(
                    s,
                    "| {kind} | {} | {} | {} |",
                    f.count,
                    f.meaning,
                    f.example.replace('|', "/")
                );
            }
        }
        if !self.processes.is_empty() {
            let _ = writeln!(
                s,
                "\n| process (RSS, MiB) | pid | before | start | peak | end | slope (MiB/min) | samples |\n|---|---|---|---|---|---|---|---|"
            );
            for p in &self.processes {
                let _ = writeln!(
                    s,
                    "| {}{} | {} | {} | {} | {} | {} | {:+.2} | {} |",
                    p.name,
                    if p.exited { " (exited)" } else { "" },
                    p.pid,
                    mib(p.before_kib),
                    mib(p.start_kib),
                    mib(p.peak_kib),
                    mib(p.end_kib),
                    p.slope_kib_per_min / 1024.0,
                    p.samples
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_out_in_milliseconds_and_ordered() {
        let mut h = histogram();
        for ms in 1..=100u64 {
            record(&mut h, Duration::from_millis(ms));
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 100);
        assert!((p.p50_ms - 50.0).abs() < 0.1, "{p:?}");
        assert!((p.p99_ms - 99.0).abs() < 0.1, "{p:?}");
        assert!(p.p50_ms <= p.p90_ms && p.p90_ms <= p.p99_ms && p.p99_ms <= p.max_ms);
        // Out-of-range values are clamped, not lost.
        record(&mut h, Duration::from_secs(7200));
        assert_eq!(h.len(), 101);
    }

    #[test]
    fn failures_are_counted_by_kind_keeping_the_first_detail() {
        let mut r = Recorder::default();
        r.fail(Failure::Status(429), || "first".into());
        r.fail(Failure::Status(429), || "second".into());
        r.fail(Failure::Timeout, || "slow".into());
        assert_eq!(r.errors(), 3);
        let f = &r.failures[&Failure::Status(429)];
        assert_eq!((f.count, f.example.as_str()), (2, "first"));
        assert_eq!(Failure::Status(429).key(), "status_429");
        assert!(Failure::Status(429).meaning().contains("rate limited"));
    }
}
