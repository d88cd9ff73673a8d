//! `confab loadgen` against a `confab up` it starts: on the embedded defaults (SQLite, the
//! in-process log and aggregator), and on the real servers with the end-to-end delay measured
//! on the Firestore emulator. Each run must be error-free, and the chat service's history must
//! hold exactly the messages the generator reports as sent.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use confab_connectors::env_or;
use serde_json::{json, Value};

use crate::confab;
use crate::harness::{Backlog, Outputs};
use crate::up::{web_dir, Up};

const PASSWORD: &str = "loadgen test password";

/// Runs `confab loadgen` against `up` with `extra` options; returns the JSON report, after
/// checking that the Markdown one says the same.
fn loadgen(up: &Up, dir: &Path, prefix: &str, extra: &[&str]) -> Value {
    let json_report = dir.join("report.json");
    let md_report = dir.join("report.md");
    let out = confab()
        .args(["loadgen", "--url", &format!("http://{}", up.addr)])
        .args(["--user-prefix", prefix, "--users", "12", "--chats", "12"])
        .args(["--rate", "20", "--warmup", "1s", "--duration", "4s"])
        .args(["--watch", &format!("up={}", up.pid())])
        .arg("--report")
        .arg(&json_report)
        .arg("--report")
        .arg(&md_report)
        .args(extra)
        .env("CONFAB_LOADGEN_PASSWORD", PASSWORD)
        .output()
        .expect("run confab loadgen");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "loadgen failed:\n{stdout}\n{stderr}\nconfab up's log:\n{}",
        up.log()
    );
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "the password is never printed"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_report).expect("JSON report"))
            .expect("a JSON report");
    let markdown = std::fs::read_to_string(&md_report).expect("Markdown report");
    assert!(
        markdown.contains(&format!("| ok (201) | {} |", report["ok"])),
        "{markdown}"
    );
    assert_eq!(
        stdout.trim(),
        markdown.trim(),
        "the summary is the Markdown report"
    );
    report
}

fn ms(p: &Value, name: &str) -> f64 {
    p[name].as_f64().unwrap_or_else(|| panic!("{name} in {p}"))
}

/// Percentiles are positive and ordered.
fn assert_ordered(p: &Value, what: &str) {
    let (p50, p90, p99, max) = (
        ms(p, "p50_ms"),
        ms(p, "p90_ms"),
        ms(p, "p99_ms"),
        ms(p, "max_ms"),
    );
    assert!(
        0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
        "{what}: {p}"
    );
}

/// The checks every run passes: 100 messages (5 s at 20/s), all 201, 80 in the measured 4 s
/// at about the target rate, latencies ordered, the watched process sampled.
fn assert_clean_run(report: &Value) {
    assert_eq!(report["sent"], 100, "{report:#}");
    assert_eq!(report["ok"], 100, "{report:#}");
    assert_eq!(report["errors"], 0, "{report:#}");
    assert_eq!(report["errors_by_kind"], json!({}), "{report:#}");
    let measured = &report["measured"];
    assert_eq!(
        (measured["sent"].as_u64(), measured["ok"].as_u64()),
        (Some(80), Some(80))
    );
    let rate = measured["achieved_rate"].as_f64().expect("rate");
    assert!(
        (16.0..=24.0).contains(&rate),
        "achieved {rate} msg/s for 20"
    );
    assert_ordered(&measured["send_latency"], "send latency");
    assert_ordered(&measured["service_time"], "service time");
    assert!(
        ms(&measured["send_latency"], "p50_ms") >= ms(&measured["service_time"], "p50_ms"),
        "latency from the intended time includes the service time: {measured}"
    );
    let up = &report["processes"][0];
    assert_eq!(up["name"], "up");
    assert!(up["samples"].as_u64() >= Some(4), "{up}");
    let (start, peak, end) = (
        up["start_kib"].as_u64().expect("start"),
        up["peak_kib"].as_u64().expect("peak"),
        up["end_kib"].as_u64().expect("end"),
    );
    assert!(0 < start && start <= peak && end <= peak, "{up}");
}

/// Messages in the chat service's history over every chat of the generator's users, read
/// through the API (each user's chat list, then every history page of each chat).
fn history_count(up: &Up, prefix: &str, users: usize) -> usize {
    // Each chat with a member's token.
    let mut chats = BTreeMap::new();
    for i in 0..users {
        let (status, login) = up.json(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({"username": format!("{prefix}{i:05}"), "password": PASSWORD})),
        );
        assert_eq!(status, 200, "{login}");
        let token = login["access_token"].as_str().expect("token").to_owned();
        let (status, page) = up.json("GET", "/api/v1/chats?limit=200", Some(&token), None);
        assert_eq!(status, 200, "{page}");
        for chat in page["chats"].as_array().expect("chats") {
            chats
                .entry(chat["chat_id"].as_str().expect("id").to_owned())
                .or_insert_with(|| token.clone());
        }
    }
    let mut total = 0;
    for (chat, token) in &chats {
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                None => format!("/api/v1/chats/{chat}/messages?quantity=100"),
                Some(c) => format!("/api/v1/chats/{chat}/messages?quantity=100&time={c}"),
            };
            let (status, page) = up.json("GET", &path, Some(token), None);
            assert_eq!(status, 200, "{page}");
            total += page["messages"].as_array().expect("messages").len();
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
    }
    assert_eq!(chats.len(), 12, "one chat per planned pair");
    total
}

/// Waits until the history holds `expected` messages (groups are written after the window's
/// inactivity timeout), failing if it holds more or never gets there.
fn wait_for_history(up: &Up, prefix: &str, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let count = history_count(up, prefix, 12);
        assert!(
            count <= expected,
            "history holds {count} messages, {expected} were sent"
        );
        if count == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "history holds {count} of the {expected} messages sent after 30 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Lets the generator sign up its users (10 an hour per address by default).
const THROTTLE: &str = "[auth.throttle]\nsignups_per_address = 1000\n";

#[test]
fn loadgen_on_the_embedded_defaults_sends_without_errors_and_history_holds_every_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("up.toml");
    std::fs::write(&config, THROTTLE).expect("write config");
    let up = Up::start(
        &dir.path().join("data"),
        &web_dir(dir.path()),
        &["--config", config.to_str().expect("utf-8 path")],
    );
    let report = loadgen(&up, dir.path(), "loadgen-", &[]);
    assert_clean_run(&report);
    assert!(report.get("firestore").is_none(), "{report:#}");
    wait_for_history(&up, "loadgen-", 100);

    // A second run logs the same users in (they exist) and reuses their chats; it also holds
    // every user's live stream and some idle ones.
    let report = loadgen(
        &up,
        dir.path(),
        "loadgen-",
        &["--seed", "42", "--live", "--idle-streams", "16"],
    );
    assert_clean_run(&report);
    let live = &report["live"];
    assert_eq!(live["expected"], 100, "{live}");
    assert_eq!(
        live["seen"], 100,
        "every message reached its recipient's stream: {live}"
    );
    assert_eq!(
        (live["streams"].as_u64(), live["idle_streams"].as_u64()),
        (Some(12), Some(16))
    );
    assert_eq!(live["delay"]["count"], 80, "measured messages: {live}");
    assert_ordered(&live["delay"], "live delay");
    assert_eq!(live["idle_stream_kib"][0][0], "up", "{live}");
    let cpu = report["processes"][0]["cpu_seconds_measured"].as_f64();
    assert!(
        cpu.is_some_and(|s| s > 0.0),
        "the server's CPU time is measured: {report:#}"
    );
    wait_for_history(&up, "loadgen-", 200);
    let (clean, _) = up.stop();
    assert!(clean);
}

/// Fails with the command that starts `name` when nothing listens at `addr`.
fn require(name: &str, addr: &str, service: &str) {
    let socket: std::net::SocketAddr = addr.parse().expect("a socket address");
    if let Err(e) = std::net::TcpStream::connect_timeout(&socket, Duration::from_secs(3)) {
        panic!("cannot reach {name} at {addr} ({e}): start it with scripts/infra up {service}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn loadgen_on_the_real_servers_sees_every_message_in_firestore() {
    let database = env_or(
        "DATABASE_URL",
        "postgres://confab:confab@127.0.0.1:5432/confab",
    );
    let postgres = database
        .rsplit('@')
        .next()
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432")
        .to_owned();
    require("PostgreSQL", &postgres, "postgres");
    let backlog = Backlog::create("loadgen", 3).await;
    let outputs = Outputs::new(&backlog.run);
    require("Cassandra", &outputs.nodes, "cassandra");
    require(
        "the Firestore emulator",
        &outputs.firestore_host,
        "firestore",
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("up.toml");
    std::fs::write(
        &config,
        format!(
            r#"{THROTTLE}
[auth]
database_url = "{database}"
[chat.log]
type = "kafka"
brokers = "{brokers}"
topic = "{topic}"
[chat.history]
type = "cassandra"
nodes = "{nodes}"
keyspace = "{keyspace}"
[chat.events]
type = "none"
[aggregate]
key = "chat"
[aggregate.source]
type = "kafka"
brokers = "{brokers}"
topic = "{topic}"
group_id = "{group}"
[[aggregate.sinks]]
type = "firestore"
project_id = "{project}"
collection = "{collection}"
[[aggregate.sinks]]
type = "cassandra"
nodes = "{nodes}"
keyspace = "{keyspace}"
[aggregate.dead_letters]
type = "file"
path = "{dead}"
"#,
            brokers = backlog.brokers,
            topic = backlog.topic,
            group = backlog.group,
            nodes = outputs.nodes,
            keyspace = outputs.keyspace,
            project = outputs.project,
            collection = outputs.collection,
            // Not the default, ./dead-letters.jsonl, which would land in the source tree.
            dead = dir.path().join("dead-letters.jsonl").display(),
        ),
    )
    .expect("write config");
    let prefix = format!("lg{}-", &backlog.run[..8]);
    let (up, report) = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        let (prefix, outputs_host, collection, project) = (
            prefix.clone(),
            outputs.firestore_host.clone(),
            outputs.collection.clone(),
            outputs.project.clone(),
        );
        move || {
            let up = Up::start(
                &dir.join("data"),
                &web_dir(&dir),
                &["--config", config.to_str().expect("utf-8 path")],
            );
            let report = loadgen(
                &up,
                &dir,
                &prefix,
                &[
                    "--firestore",
                    &collection,
                    "--firestore-project",
                    &project,
                    "--firestore-emulator-host",
                    &outputs_host,
                    "--drain-timeout",
                    "60s",
                    "--live",
                ],
            );
            (up, report)
        }
    })
    .await
    .expect("loadgen run");
    assert_clean_run(&report);
    let firestore = &report["firestore"];
    assert_eq!(firestore["expected"], 100, "{firestore}");
    assert_eq!(
        firestore["seen"], 100,
        "every message reached the listener: {firestore}"
    );
    let e2e = &firestore["e2e_delay"];
    assert_eq!(e2e["count"], 80, "measured messages: {e2e}");
    assert_ordered(e2e, "end-to-end delay");
    assert!(
        ms(e2e, "p50_ms") >= ms(&report["measured"]["send_latency"], "p50_ms"),
        "a message reaches Firestore after its send is acknowledged: {report:#}"
    );
    // The live lane does not wait for the group that the Firestore lane waits for.
    let live = &report["live"];
    assert_eq!(
        live["seen"], 100,
        "every message reached its recipient's stream: {live}"
    );
    assert!(
        ms(&live["delay"], "p50_ms") < ms(e2e, "p50_ms"),
        "the live lane is faster than the Firestore lane: {report:#}"
    );

    let up = tokio::task::spawn_blocking(move || {
        wait_for_history(&up, &prefix, 100);
        up
    })
    .await
    .expect("history");
    let (clean, _) = up.stop();
    assert!(clean);
    backlog.delete().await;
}
