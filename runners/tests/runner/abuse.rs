//! `confab up` against clients that try to take it down or read what they should not: idle and
//! half-sent connections, too many connections from one address, and the headers every
//! response must carry (docs/SECURITY.md).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::up::{web_dir, Up};

/// `confab up` under a soft open-files limit of 1,024 (systemd's default), with `server` as its
/// `[server]` table.
fn start_limited(root: &std::path::Path, server: &str) -> Up {
    let config = root.join("up.toml");
    std::fs::write(&config, format!("[server]\n{server}\n")).expect("config");
    let mut command = std::process::Command::new("sh");
    command.args([
        "-c",
        r#"ulimit -Sn 1024 && exec "$0" "$@""#,
        env!("CARGO_BIN_EXE_confab"),
    ]);
    Up::start_with(
        command,
        &root.join("data"),
        &web_dir(root),
        &["--config", config.to_str().expect("utf-8 path")],
    )
}

/// The log without terminal colours, once it holds `line` (or after 10 s).
fn wait_for_log(up: &Up, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut log = String::new();
        let mut in_escape = false;
        for c in up.log().chars() {
            match (in_escape, c) {
                (false, '\u{1b}') => in_escape = true,
                (true, 'm') => in_escape = false,
                (true, _) => {}
                (false, c) => log.push(c),
            }
        }
        if log.contains(line) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The status line and headers (lower-cased names) of a response to `request`, and its body.
fn exchange(addr: &str, request: &str) -> (String, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Whether the server closed `stream` (EOF or reset) before `deadline`; anything it sent first
/// is skipped.
fn closed_by(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0_u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(e) => panic!("reading: {e}"),
        }
    }
}

#[test]
fn idle_and_half_sent_connections_are_closed_and_one_address_is_capped_while_others_are_served() {
    let root = tempfile::tempdir().expect("tempdir");
    let up = start_limited(
        root.path(),
        "header_read_timeout_secs = 4\nmax_connections_per_address = 2300",
    );
    let log = wait_for_log(&up, "Connection limits.");
    let open_files: u64 = log
        .split("open_files=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the limits are logged at start:\n{log}"));
    assert!(
        open_files > 1024,
        "the soft open-files limit is raised above the 1,024 it started with: {open_files}"
    );

    let opened = Instant::now();
    let mut idle: Vec<TcpStream> = (0..2000)
        .map(|_| TcpStream::connect(&up.addr).expect("connect an idle socket"))
        .collect();
    let mut half: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut stream = TcpStream::connect(&up.addr).expect("connect");
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                .expect("write half a header");
            stream
        })
        .collect();
    // 2,200 open: the 2,300 cap leaves room for 100 more; the 150 beyond get 429.
    let extra: Vec<TcpStream> = (0..250)
        .map(|_| TcpStream::connect(&up.addr).expect("connect"))
        .collect();
    let mut refused = 0;
    for mut stream in extra {
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        let mut head = [0_u8; 12];
        if stream.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 429" {
            refused += 1;
        }
    }
    assert!(
        (100..=150).contains(&refused),
        "the connections beyond the per-address cap are answered 429: {refused} of 250"
    );

    // Meanwhile a normal client is served, over and over.
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        let (status, _, body) = exchange(&up.addr, &get("/healthz"));
        slowest = slowest.max(started.elapsed());
        assert!(
            status.contains(" 200 ") && body == "ok\n",
            "{status} {body}"
        );
    }
    assert!(
        slowest < Duration::from_secs(1),
        "a normal request answers in under a second beside 2,200 stalled sockets: {slowest:?}"
    );

    // Every stalled socket is closed within the 4 s header timeout (plus scheduling slack).
    let deadline = opened + Duration::from_secs(12);
    let still_open = idle
        .iter_mut()
        .chain(half.iter_mut())
        .map(|stream| closed_by(stream, deadline))
        .filter(|closed| !closed)
        .count();
    assert_eq!(
        still_open, 0,
        "idle and half-sent connections are closed after the header read timeout"
    );
    let (status, _, _) = exchange(&up.addr, &get("/healthz"));
    assert!(status.contains(" 200 "), "still serving: {status}");
    let log = up.log();
    assert!(
        !log.contains("Too many open files"),
        "the server never runs out of descriptors:\n{log}"
    );
}

#[test]
fn every_response_carries_the_security_headers_and_token_responses_are_not_stored() {
    let root = tempfile::tempdir().expect("tempdir");
    let up = Up::start(&root.path().join("data"), &web_dir(root.path()), &[]);
    let signup = r#"{"username":"headers","password":"correct horse battery"}"#;
    let login = r#"{"username":"headers","password":"correct horse battery"}"#;
    let post = |path: &str, body: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let requests = [
        ("GET /", get("/")),
        ("GET /assets/app.js", get("/assets/app.js")),
        ("GET /healthz", get("/healthz")),
        ("GET /readyz", get("/readyz")),
        ("GET /api/v1/chats", get("/api/v1/chats")),
        ("GET /api/v1/nothing", get("/api/v1/nothing")),
        ("GET /api/v1/stats", get("/api/v1/stats")),
        ("POST /api/v1/users", post("/api/v1/users", signup)),
        ("POST /api/v1/login", post("/api/v1/login", login)),
        (
            "malformed",
            "GET / HTTP/1.1\r\nHost localhost\r\n\r\n".to_owned(),
        ),
    ];
    for (name, request) in requests {
        let (status, headers, _) = exchange(&up.addr, &request);
        if name == "malformed" {
            // hyper answers a request it cannot parse itself, before any service sees it.
            assert!(status.contains(" 400 "), "{name}: {status}");
            continue;
        }
        for (header_name, expected) in [
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("x-frame-options", "DENY"),
        ] {
            assert_eq!(
                header(&headers, header_name),
                Some(expected),
                "{name} ({status}): {header_name}"
            );
        }
        let csp = header(&headers, "content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{name} ({status}): content-security-policy {csp:?}"
        );
        if name == "POST /api/v1/login" {
            assert!(status.contains(" 200 "), "{name}: {status}");
            assert_eq!(
                header(&headers, "cache-control"),
                Some("no-store"),
                "a token response is never cached"
            );
        }
    }
}
