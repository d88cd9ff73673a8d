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
        None,
        &root.join("data"),
        Some(&web_dir(root)),
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

/// Sends `method path` with a JSON body and an optional bearer token; the status and JSON body.
fn call(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let body = body.to_string();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let (status, _, text) = exchange(
        addr,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    let code = status
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (code, serde_json::from_str(&text).unwrap_or_default())
}

/// Signs up (once) and logs in; the token pair.
fn session(addr: &str, username: &str) -> serde_json::Value {
    let credentials =
        serde_json::json!({"username": username, "password": "correct horse battery"});
    let _ = call(addr, "POST", "/api/v1/users", None, &credentials);
    let (status, pair) = call(addr, "POST", "/api/v1/login", None, &credentials);
    assert_eq!(status, 200, "{pair}");
    pair
}

fn token(pair: &serde_json::Value) -> &str {
    pair["access_token"].as_str().expect("access_token")
}

/// An open events stream: the connection, reading with a short timeout.
struct Stream {
    reader: std::io::BufReader<TcpStream>,
}

impl Stream {
    fn open(addr: &str, path: &str, token: &str) -> Self {
        let mut stream = TcpStream::connect(addr).expect("connect");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        )
        .expect("write");
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let mut this = Self {
            reader: std::io::BufReader::new(stream),
        };
        let head = this.read_until(|line| line.is_empty(), Duration::from_secs(10));
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        this
    }

    /// Lines read until one satisfies `done`, the stream ends, or `within` passes.
    fn read_until(&mut self, done: impl Fn(&str) -> bool, within: Duration) -> String {
        use std::io::BufRead;
        let deadline = Instant::now() + within;
        let mut seen = String::new();
        let mut line = String::new();
        while Instant::now() < deadline {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => {
                    seen.push_str("<end>");
                    break;
                }
                Ok(_) => {
                    seen.push_str(&line);
                    if done(line.trim_end()) {
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("reading the stream: {e}"),
            }
        }
        seen
    }

    /// Whether the stream shows `event` and then ends, within `within`.
    fn ends_with_event(&mut self, event: &str, within: Duration) -> (bool, String) {
        let started = Instant::now();
        let seen = self.read_until(|line| line == format!("event: {event}"), within);
        if !seen.contains(&format!("event: {event}")) {
            return (false, seen);
        }
        // The chunked body's last chunk follows the event.
        let rest = self.read_until(|line| line == "0", within.saturating_sub(started.elapsed()));
        let ended = rest.ends_with("<end>") || rest.lines().any(|line| line.trim_end() == "0");
        (ended, format!("{seen}{rest}"))
    }
}

#[test]
fn a_logged_out_session_is_refused_at_once_and_its_open_streams_end_within_a_second() {
    let root = tempfile::tempdir().expect("tempdir");
    let up = Up::start(&root.path().join("data"), &web_dir(root.path()), &[]);
    let phone = session(&up.addr, "wanda");
    let laptop = session(&up.addr, "wanda");
    let peer = session(&up.addr, "xavi");
    let (status, chat) = call(
        &up.addr,
        "POST",
        "/api/v1/chats",
        Some(token(&phone)),
        &serde_json::json!({"peer_id": peer["id"]}),
    );
    assert_eq!(status, 201, "{chat}");
    let chat_id = chat["chat_id"].as_str().expect("chat_id");
    let mut person = Stream::open(&up.addr, "/api/v1/events", token(&phone));
    let mut per_chat = Stream::open(
        &up.addr,
        &format!("/api/v1/chats/{chat_id}/events"),
        token(&phone),
    );
    let mut other_device = Stream::open(&up.addr, "/api/v1/events", token(&laptop));

    let logged_out = Instant::now();
    let (status, _) = call(
        &up.addr,
        "POST",
        "/api/v1/auth/logout",
        Some(token(&phone)),
        &serde_json::json!({}),
    );
    assert_eq!(status, 204);
    for (name, stream) in [("person", &mut person), ("per-chat", &mut per_chat)] {
        let (ended, seen) = stream.ends_with_event("revoked", Duration::from_secs(1));
        assert!(
            ended,
            "the {name} stream ends within a second of logout: {seen}"
        );
    }
    let took = logged_out.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
    let (status, body) = call(
        &up.addr,
        "GET",
        "/api/v1/chats",
        Some(token(&phone)),
        &serde_json::json!({}),
    );
    assert_eq!(status, 401, "{body}");
    // The other session's stream goes on: a message still reaches it.
    let (status, _) = call(
        &up.addr,
        "POST",
        &format!("/api/v1/chats/{chat_id}/messages"),
        Some(token(&peer)),
        &serde_json::json!({"body": "still there?"}),
    );
    assert_eq!(status, 201);
    let seen = other_device.read_until(|line| line == "event: message", Duration::from_secs(10));
    assert!(seen.contains("event: message"), "{seen}");
}

#[test]
fn an_expired_token_is_refused_and_its_open_stream_ends_within_a_second_of_expiry() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = root.path().join("up.toml");
    std::fs::write(&config, "[auth.jwt]\nexpiry_secs = 3\nleeway_secs = 0\n").expect("config");
    let up = Up::start(
        &root.path().join("data"),
        &web_dir(root.path()),
        &["--config", config.to_str().expect("utf-8")],
    );
    let pair = session(&up.addr, "yuri");
    let exp = {
        use base64::Engine;
        let payload = token(&pair).split('.').nth(1).expect("payload");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64");
        let claims: serde_json::Value = serde_json::from_slice(&bytes).expect("claims");
        claims["exp"].as_u64().expect("exp")
    };
    let mut stream = Stream::open(&up.addr, "/api/v1/events", token(&pair));
    let (ended, seen) = stream.ends_with_event("expired", Duration::from_secs(10));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(ended, "{seen}");
    assert!(
        now - (exp as f64) < 1.5,
        "the stream ended {:.2} s after exp (exp has whole seconds)",
        now - exp as f64
    );
    std::thread::sleep(Duration::from_millis(1100));
    let (status, body) = call(
        &up.addr,
        "GET",
        "/api/v1/chats",
        Some(token(&pair)),
        &serde_json::json!({}),
    );
    assert_eq!(status, 401, "{body}");
}
