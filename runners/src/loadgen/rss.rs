//! Resident memory of watched processes (`--watch NAME=PID`), sampled every second from
//! `/proc/PID/status`, so "flat memory" is a measured claim: start, peak, end and a slope.

use std::time::{Duration, Instant};

use crate::loadgen::stats::ProcessMemory;

/// A process to watch.
#[derive(Debug, Clone)]
pub(crate) struct Watch {
    pub(crate) name: String,
    pub(crate) pid: u32,
}

/// Parses `NAME=PID`.
pub(crate) fn parse_watch(s: &str) -> Result<Watch, String> {
    let (name, pid) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: use NAME=PID, e.g. chat=12345"))?;
    let pid = pid
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: `{pid}` is not a process id"))?;
    if name.is_empty() {
        return Err(format!("`{s}`: the name before = is empty"));
    }
    Ok(Watch {
        name: name.to_string(),
        pid,
    })
}

/// VmRSS of `pid` in KiB, or `None` when the process is gone.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The samples of one process: seconds since sending began, and KiB.
#[derive(Debug, Default, Clone)]
pub(crate) struct Samples {
    pub(crate) points: Vec<(f64, u64)>,
    pub(crate) exited: bool,
}

/// Samples every watched process each second until `stop` is set; returns the samples.
pub(crate) async fn sample(
    watches: Vec<Watch>,
    began: Instant,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<Samples> {
    let mut samples = vec![Samples::default(); watches.len()];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        let at = began.elapsed().as_secs_f64();
        for (w, s) in watches.iter().zip(samples.iter_mut()) {
            match rss_kib(w.pid) {
                Some(kib) if !s.exited => s.points.push((at, kib)),
                Some(_) => {}
                None => s.exited = true,
            }
        }
        if stopping {
            return samples;
        }
    }
}

/// The report of one process; the measured window runs from `measured_from` to `measured_to`
/// (seconds since sending began).
pub(crate) fn summarize(
    watch: &Watch,
    samples: &Samples,
    measured_from: f64,
    measured_to: f64,
) -> ProcessMemory {
    let first = samples.points.first().map_or(0, |p| p.1);
    let window: Vec<(f64, u64)> = samples
        .points
        .iter()
        .copied()
        .filter(|p| p.0 >= measured_from && p.0 <= measured_to)
        .collect();
    ProcessMemory {
        name: watch.name.clone(),
        pid: watch.pid,
        samples: samples.points.len(),
        before_kib: first,
        start_kib: window.first().map_or(first, |p| p.1),
        peak_kib: samples.points.iter().map(|p| p.1).max().unwrap_or(0),
        end_kib: samples.points.last().map_or(0, |p| p.1),
        slope_kib_per_min: slope(&window) * 60.0,
        exited: samples.exited,
    }
}

/// Least-squares slope of KiB over seconds (0 with fewer than two points).
fn slope(points: &[(f64, u64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for &(x, y) in points {
        num += (x - mean_x) * (y as f64 - mean_y);
        den += (x - mean_x).powi(2);
    }
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_specs_parse_and_bad_ones_say_why() {
        let w = parse_watch("chat=123").expect("valid");
        assert_eq!((w.name.as_str(), w.pid), ("chat", 123));
        assert!(parse_watch("chat").unwrap_err().contains("NAME=PID"));
        assert!(parse_watch("chat=abc")
            .unwrap_err()
            .contains("not a process id"));
        assert!(parse_watch("=1").is_err());
    }

    #[test]
    fn vm_rss_is_read_from_proc_status() {
        let status = "Name:\tconfab\nVmPeak:\t  9000 kB\nVmRSS:\t   71234 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss(status), Some(71234));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert!(rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }

    #[test]
    fn the_summary_takes_the_slope_over_the_measured_window_only() {
        // Warm-up grows 1000 KiB/s; the measured window (from 10 s) grows 2 KiB/s.
        let mut points: Vec<(f64, u64)> = (0..10).map(|t| (t as f64, 1000 * t)).collect();
        points.extend((10..70).map(|t| (t as f64, 10_000 + 2 * (t - 10))));
        let samples = Samples {
            points,
            exited: false,
        };
        let w = Watch {
            name: "chat".into(),
            pid: 1,
        };
        let m = summarize(&w, &samples, 10.0, 100.0);
        assert_eq!((m.before_kib, m.start_kib, m.end_kib), (0, 10_000, 10_118));
        assert_eq!(m.peak_kib, 10_118);
        assert!((m.slope_kib_per_min - 120.0).abs() < 1e-6, "{m:?}");
        assert_eq!(slope(&[(0.0, 5)]), 0.0);
    }
}
