//! The aggregator's embedded shape: JSON lines on stdin, groups on stdout, dead letters in a file.

use std::io::Write;
use std::process::Stdio;

use crate::harness::http_get;
use crate::{confab, message_json};

#[test]
fn stdin_messages_come_out_grouped_and_bad_lines_are_dead_lettered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = confab()
        .args([
            "aggregate",
            "--listen",
            "127.0.0.1:0",
            "--max-messages",
            "4",
        ])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start confab aggregate");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for i in 0..20u64 {
            writeln!(
                stdin,
                "{}",
                message_json(i, &format!("chat-{}", i % 3), 1_700_000_000_000 + i * 50)
            )
            .expect("write");
        }
        writeln!(stdin, "{{\"chat_id\": 42}}").expect("write");
    }
    let out = child
        .wait_with_output()
        .expect("confab ends at the end of stdin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut ids = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let group: serde_json::Value = serde_json::from_str(line).expect("a group per line");
        let records = group["records"].as_array().expect("records");
        assert!(records.len() <= 4, "max_messages 4: {line}");
        for r in records {
            assert_eq!(r["chat_id"], group["key"]);
            ids.push(r["message_id"].as_str().unwrap_or_default().to_string());
        }
    }
    ids.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(ids, expected, "every message in exactly one group");
    let dead =
        std::fs::read_to_string(dir.path().join("dead-letters.jsonl")).expect("dead letters");
    assert_eq!(dead.lines().count(), 1);
    assert!(
        dead.contains("invalid type") || dead.contains("missing field"),
        "{dead}"
    );
}

#[test]
fn the_metrics_and_health_endpoints_answer_while_it_runs() {
    // A free port: bind port 0, note it, release it for confab.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = aggregate_on_stdin(dir.path(), &format!("127.0.0.1:{port}"));
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{}", message_json(1, "chat-1", 1_700_000_000_000)).expect("write");
    stdin.flush().expect("flush");

    let get = |path: &str| http_get(port, path);
    let mut metrics = None;
    for _ in 0..200 {
        match get("/metrics") {
            // Read first, then in an open group: a scrape between the two saw the message
            // read and no group open (a loaded CI machine, 2026-12-06).
            Some(text)
                if text.contains("confab_messages_in_total 1")
                    && text.contains("confab_open_groups 1") =>
            {
                metrics = Some(text);
                break;
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    let metrics = metrics.expect("/metrics reports the message read and its group open");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("confab_open_groups 1"), "{metrics}");
    assert!(get("/healthz").is_some_and(|r| r.starts_with("HTTP/1.1 200")));
    assert!(get("/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200")));

    drop(stdin);
    let status = child.wait().expect("confab ends at the end of stdin");
    assert!(status.success());
}

/// A sink that cannot write (stdout closed under it: every write is a broken pipe) stops the
/// aggregator with an error naming it, and the process exits non-zero; it used to send every
/// group to the dead-letter file, count it written, and exit 0.
#[test]
fn a_sink_that_cannot_write_stops_the_aggregator_with_a_non_zero_exit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = confab()
        .args(["aggregate", "--max-messages", "2"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start confab aggregate");
    drop(child.stdout.take());
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for i in 0..4u64 {
            // The aggregator may stop before reading them all: a failed write here is fine.
            let _ = writeln!(
                stdin,
                "{}",
                message_json(i, "chat-1", 1_700_000_000_000 + i * 50)
            );
        }
    }
    let out = child.wait_with_output().expect("confab ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exited 0: {stderr}");
    assert!(stderr.contains("sink `stdout` cannot go on"), "{stderr}");
    let dead = std::fs::read_to_string(dir.path().join("dead-letters.jsonl")).unwrap_or_default();
    assert_eq!(dead, "", "no group silently diverted to the dead letters");
}

#[cfg(target_os = "linux")]
#[test]
fn the_process_turns_transparent_huge_pages_off() {
    // mimalloc asks for huge pages on its segments; confab turns them off for itself at start-up
    // (see `disable_transparent_huge_pages` in runners/src/main.rs): the kernel reports it.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = aggregate_on_stdin(dir.path(), "127.0.0.1:0");
    let status = format!("/proc/{}/status", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut last = String::new();
    let off = loop {
        last = std::fs::read_to_string(&status)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("THP_enabled:"))
                    .map(str::to_string)
            })
            .unwrap_or(last);
        if last.split_whitespace().nth(1) == Some("0") {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    drop(child.stdin.take());
    let exited = child.wait().expect("confab ends at the end of stdin");
    assert!(
        off,
        "confab aggregate still has transparent huge pages on: {last:?}"
    );
    assert!(exited.success(), "confab aggregate failed: {exited}");
}

/// `confab aggregate` in `dir`, reading a piped stdin, its endpoints on `listen`, its output
/// discarded.
fn aggregate_on_stdin(dir: &std::path::Path, listen: &str) -> std::process::Child {
    confab()
        .args(["aggregate", "--listen", listen])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start confab aggregate")
}
