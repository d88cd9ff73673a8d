//! Resident memory and CPU time of watched processes (`--watch NAME=PID`), sampled every second
//! from `/proc/PID/status` and `/proc/PID/stat`, so "flat memory" is a measured claim (start,
//! peak, end and a slope), and so is the server's CPU per message.

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

/// Clock ticks per second of `/proc/PID/stat`'s times (Linux's USER_HZ, 100 on every
/// architecture it runs on here).
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU time of `pid` in seconds, or `None` when the process is gone.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / TICKS_PER_SECOND)
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are
    // state, ppid, ... with utime and stime the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
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
    /// CPU seconds used by then.
    pub(crate) cpu: Vec<(f64, f64)>,
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
            if let Some(cpu) = cpu_seconds(w.pid).filter(|_| !s.exited) {
                s.cpu.push((at, cpu));
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
        cpu_seconds_measured: cpu_in(&samples.cpu, measured_from, measured_to),
        exited: samples.exited,
    }
}

/// CPU seconds used between the first and the last sample inside the window.
fn cpu_in(cpu: &[(f64, f64)], from: f64, to: f64) -> f64 {
    let inside: Vec<&(f64, f64)> = cpu.iter().filter(|p| p.0 >= from && p.0 <= to).collect();
    match (inside.first(), inside.last()) {
        (Some(first), Some(last)) => {
            let seconds = last.0 - first.0;
            // Scaled to the whole window: samples come once a second.
            if seconds > 0.0 {
                (last.1 - first.1) * (to - from) / seconds
            } else {
                0.0
            }
        }
        _ => 0.0,
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
            cpu: vec![(10.0, 1.0), (40.0, 2.0), (70.0, 4.0)],
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
        // 3 CPU seconds over the 60 s between the first and last sample in 10..100 s, scaled
        // to the 90 s window.
        assert!((m.cpu_seconds_measured - 4.5).abs() < 1e-9, "{m:?}");
    }

    #[test]
    fn cpu_ticks_are_read_past_a_command_name_with_spaces() {
        let stat = "4242 (confab up) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 25 0 0 20 0 9 0";
        assert_eq!(parse_cpu_ticks(stat), Some(175));
        assert!(cpu_seconds(std::process::id()).is_some());
    }
}
