//! `confab up` as a process: one port serves the web client, the auth API, the chat API and the
//! stats; SIGTERM stops it cleanly; a restart on the same data folder keeps users, chats,
//! history and tokens.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::confab;

/// A running `confab up` and the address it printed.
pub(crate) struct Up {
    child: Child,
    pub(crate) addr: String,
    log: std::path::PathBuf,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Up {
    /// Starts it on a free port; its log goes to `<data_dir>.log`.
    pub(crate) fn start(data_dir: &Path, web_dir: &Path, extra: &[&str]) -> Self {
        Self::start_with(confab(), None, data_dir, Some(web_dir), extra)
    }

    /// Starts it in the folder `cwd` (this test's when `None`), with the client from `web_dir`
    /// or, when `None`, the one built into the binary.
    pub(crate) fn start_in(
        cwd: Option<&Path>,
        data_dir: &Path,
        web_dir: Option<&Path>,
        extra: &[&str],
    ) -> Self {
        Self::start_with(confab(), cwd, data_dir, web_dir, extra)
    }

    /// Like [`Up::start_in`], with `command` as the way to run the binary (e.g. under a shell
    /// that lowers a limit first).
    pub(crate) fn start_with(
        mut command: std::process::Command,
        cwd: Option<&Path>,
        data_dir: &Path,
        web_dir: Option<&Path>,
        extra: &[&str],
    ) -> Self {
        let log = data_dir.with_extension("log");
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        command
            .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir);
        if let Some(web_dir) = web_dir {
            command.arg("--web-dir").arg(web_dir);
        }
        let mut child = command
            .args(extra)
            .env_remove("CONFAB_WEB_DIR")
            .env_remove("DATABASE_URL")
            // Used only by an [aggregate] table with a Firestore sink.
            .env(
                "FIRESTORE_EMULATOR_HOST",
                confab_connectors::env_or("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080"),
            )
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start confab up");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let addr = loop {
            line.clear();
            let read = stdout.read_line(&mut line).expect("read stdout");
            assert!(
                read > 0,
                "confab up exited before printing its URL:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            if let Some(rest) = line.trim().strip_prefix("confab is up: http://") {
                break rest.trim_end_matches('/').to_owned();
            }
        };
        let mut storage = String::new();
        stdout.read_line(&mut storage).expect("read stdout");
        assert!(
            storage.contains(&data_dir.display().to_string())
                && (storage.contains("confab.db") || storage.contains("PostgreSQL")),
            "the second line says where the data lives: {storage}"
        );
        Self {
            child,
            addr,
            log,
            stdout,
        }
    }

    /// Sends `method path` with an optional JSON body and bearer token; returns the status,
    /// the content type and the body.
    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, String, String) {
        let mut stream = TcpStream::connect(&self.addr).expect("connect to confab up");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let body = body.map(Value::to_string).unwrap_or_default();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read response");
        let (head, body) = response.split_once("\r\n\r\n").expect("a HTTP response");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status");
        let content_type = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type: ")
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        (status, content_type, body.to_owned())
    }

    pub(crate) fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, content_type, text) = self.request(method, path, token, body.as_ref());
        assert!(
            content_type.starts_with("application/json"),
            "{method} {path}: {status} {content_type} {text}"
        );
        (status, serde_json::from_str(&text).expect("JSON body"))
    }

    /// What the process logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id (for `confab loadgen --watch`).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the exit status and the rest of stdout.
    pub(crate) fn stop(mut self) -> (bool, String) {
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "no exit within 60 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        (status.success(), rest)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn web_dir(root: &Path) -> std::path::PathBuf {
    let web = root.join("web");
    std::fs::create_dir_all(web.join("assets")).expect("web dir");
    std::fs::write(
        web.join("index.html"),
        "<!doctype html><title>confab test client</title>",
    )
    .expect("index.html");
    std::fs::write(web.join("assets/app.js"), "console.log('confab');").expect("app.js");
    web
}

const PASSWORD: &str = "correct horse battery";

fn sign_up_and_log_in(up: &Up, username: &str) -> (String, String) {
    let (status, user) = up.json(
        "POST",
        "/api/v1/users",
        None,
        Some(json!({"username": username, "password": PASSWORD})),
    );
    assert_eq!(status, 201, "{user}");
    let token = log_in(up, username);
    (user["id"].as_str().expect("id").to_owned(), token)
}

fn log_in(up: &Up, username: &str) -> String {
    let (status, login) = up.json(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"username": username, "password": PASSWORD})),
    );
    assert_eq!(status, 200, "{login}");
    login["access_token"].as_str().expect("token").to_owned()
}

/// Polls `/api/v1/stats` until a group was written (the inactivity timeout is 3 s).
fn wait_for_groups(up: &Up, groups: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, stats) = up.json("GET", "/api/v1/stats", None, None);
        assert_eq!(status, 200, "{stats}");
        if stats["groups_written"].as_u64() >= Some(groups) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "no group written in 30 s: {stats}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The data folder is 0700 and the database, its -wal and -shm, and the signing key are 0600.
#[track_caller]
fn assert_owner_only(data: &Path) {
    assert_eq!(mode_of(data), 0o700, "{}", data.display());
    for file in [
        "confab.db",
        "confab.db-wal",
        "confab.db-shm",
        "jwt-ed25519.pem",
    ] {
        assert_eq!(mode_of(&data.join(file)), 0o600, "{file}");
    }
}

/// The `src` or `href` values in `page` that point at `/assets/`.
fn asset_links(page: &str) -> Vec<String> {
    page.split('"')
        .filter(|part| part.starts_with("/assets/"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn up_started_in_an_empty_folder_serves_its_built_in_client_one_openapi_document_and_the_reference_page(
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("empty folder");
    let up = Up::start_in(Some(&empty), &empty.join("confab-data"), None, &[]);

    let (status, content_type, body) = up.request("GET", "/", None, None);
    // Set by runners/build.rs: whether web/dist was built when this binary was compiled
    // (scripts/test builds it first, so CI checks the embedded client).
    if env!("CONFAB_WEB_EMBEDDED") == "1" {
        assert_eq!(status, 200, "{body}");
        assert!(content_type.starts_with("text/html"), "{content_type}");
        assert!(body.contains("<div id=\"app\">"), "{body}");
        for page in ["/docs/", "/docs"] {
            let (status, _, docs) = up.request("GET", page, None, None);
            assert_eq!(status, 200, "{page}");
            assert!(docs.contains("confab API reference"), "{docs}");
            // Every file of the reference page comes from this server; none is inline.
            assert!(
                !docs.contains("<script>") && !docs.contains("https://"),
                "{docs}"
            );
            let assets = asset_links(&docs);
            assert!(assets.iter().any(|a| a.ends_with(".js")), "{docs}");
            assert!(assets.iter().any(|a| a.ends_with(".css")), "{docs}");
            for asset in assets {
                let (status, _, _) = up.request("GET", &asset, None, None);
                assert_eq!(status, 200, "{asset}");
            }
        }
        let (status, _, _) = up.request("GET", "/assets/no-such-file.js", None, None);
        assert_eq!(status, 404);
    } else {
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("built without the web client"), "{body}");
        eprintln!("web/dist was not built when confab was compiled: checked the 503 page only");
    }

    // One document for both services and confab up's own endpoints.
    for path in ["/openapi.json", "/api/v1/openapi.json"] {
        let (status, content_type, body) = up.request("GET", path, None, None);
        assert_eq!(
            (status, content_type.as_str()),
            (200, "application/json"),
            "{path}"
        );
        let doc: Value = serde_json::from_str(&body).expect("json");
        for endpoint in [
            "/api/v1/users",
            "/api/v1/login",
            "/api/v1/chats",
            "/api/v1/stats",
        ] {
            assert!(doc["paths"][endpoint].is_object(), "{endpoint} in {path}");
        }
    }

    // The user search through the one port.
    let (_, token) = sign_up_and_log_in(&up, "searcher");
    for name in ["mallory", "mal.lory", "malcolm", "amal"] {
        sign_up_and_log_in(&up, name);
    }
    let (status, page) = up.json("GET", "/api/v1/users?q=mal&limit=2", Some(&token), None);
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["users"][0]["username"], "mal.lory");
    assert_eq!(page["users"][1]["username"], "malcolm");
    let cursor = page["next_cursor"].as_str().expect("a second page");
    let (_, rest) = up.json(
        "GET",
        &format!("/api/v1/users?q=mal&limit=2&cursor={cursor}"),
        Some(&token),
        None,
    );
    assert_eq!(rest["users"].as_array().map(Vec::len), Some(1), "{rest}");
    assert_eq!(rest["users"][0]["username"], "mallory");
    assert!(
        !empty.join("web").exists(),
        "nothing was read from or written to web/ here"
    );
}

#[test]
fn up_serves_the_client_and_both_apis_on_one_port_and_keeps_its_data_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let web = web_dir(dir.path());
    let up = Up::start(&data, &web, &[]);

    // The web client, its assets, and its own routes (a reload on #/chats/... or /chats/...).
    let (status, content_type, body) = up.request("GET", "/", None, None);
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(body.contains("confab test client"), "{body}");
    let (status, content_type, _) = up.request("GET", "/assets/app.js", None, None);
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/javascript; charset=utf-8")
    );
    let (status, _, body) = up.request("GET", "/chats/some-chat", None, None);
    assert_eq!(status, 200);
    assert!(body.contains("confab test client"));
    assert_eq!(up.request("GET", "/assets/missing.js", None, None).0, 404);
    assert_eq!(up.request("GET", "/.hidden", None, None).0, 404);

    // The auth API, then the chat API with its token, on the same port.
    let (alice, token) = sign_up_and_log_in(&up, "alice");
    let (bob, _) = sign_up_and_log_in(&up, "bob");
    let (status, jwks) = up.json("GET", "/.well-known/jwks.json", None, None);
    assert_eq!(status, 200);
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1), "{jwks}");
    let (status, chat) = up.json(
        "POST",
        "/api/v1/chats",
        Some(&token),
        Some(json!({"peer_id": bob})),
    );
    assert_eq!(status, 201, "{chat}");
    let chat_id = chat["chat_id"].as_str().expect("chat_id").to_owned();
    let messages = format!("/api/v1/chats/{chat_id}/messages");
    for body in ["hello bob", "are you there?"] {
        let (status, sent) = up.json("POST", &messages, Some(&token), Some(json!({"body": body})));
        assert_eq!(status, 201, "{sent}");
        assert_eq!(sent["from_user"], alice.as_str());
    }

    // The stats count what the aggregator did: 2 messages in one group document.
    let stats = wait_for_groups(&up, 1);
    assert_eq!(stats["messages_sent"], 2, "{stats}");
    assert_eq!(stats["groups_written"], 1, "{stats}");
    assert_eq!(stats["messages_per_group"], 2.0, "{stats}");

    // The data folder is its owner's only: the folder 0700, the database and its WAL files 0600.
    assert_owner_only(&data);

    // Errors under /api are JSON, whatever the path.
    let (status, error) = up.json("GET", "/api/v1/nothing-here", None, None);
    assert_eq!((status, error["error"].as_str()), (404, Some("not_found")));
    let (status, error) = up.json("GET", "/api/v1/chats", None, None);
    assert_eq!(status, 401, "{error}");

    // The web client learns its realtime path: on the defaults the events stream, and the
    // Firebase token endpoint (served with the auth API) says it is not configured.
    let (status, client) = up.json("GET", "/api/v1/config", None, None);
    assert_eq!((status, client), (200, json!({"realtime": "sse"})));
    let (status, error) = up.json("POST", "/api/v1/auth/firebase-token", Some(&token), None);
    assert_eq!(
        (status, error["error"].as_str()),
        (503, Some("firebase_not_configured")),
        "{error}"
    );

    let (clean, rest) = up.stop();
    assert!(clean, "confab up exits 0 on SIGTERM");
    assert!(rest.contains("confab stopped"), "{rest}");

    // Same data folder: the token signed before the restart still works, and the chat and its
    // history are there. Modes loosened meanwhile are tightened again, with a warning.
    set_mode(&data, 0o755);
    set_mode(&data.join("confab.db"), 0o644);
    let up = Up::start(&data, &web, &[]);
    assert_owner_only(&data);
    let log = up.log();
    assert!(
        log.contains("Tightened the mode of the data folder")
            && log.contains("Tightened the mode of a SQLite file"),
        "{log}"
    );
    let (status, chats) = up.json("GET", "/api/v1/chats", Some(&token), None);
    assert_eq!(status, 200, "{chats}");
    assert_eq!(chats["chats"][0]["chat_id"], chat_id.as_str(), "{chats}");
    let (status, page) = up.json("GET", &messages, Some(&token), None);
    assert_eq!(status, 200, "{page}");
    let bodies: Vec<&str> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert_eq!(bodies, ["are you there?", "hello bob"], "newest first");
    let (status, _) = up.json(
        "POST",
        "/api/v1/users",
        None,
        Some(json!({"username": "alice", "password": PASSWORD})),
    );
    assert_eq!(status, 409, "alice exists after the restart");
    log_in(&up, "bob");
    let (clean, _) = up.stop();
    assert!(clean);
}

#[test]
fn up_without_a_built_client_says_how_to_build_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let up = Up::start(&dir.path().join("data"), &dir.path().join("no-web"), &[]);
    let (status, content_type, body) = up.request("GET", "/", None, None);
    assert_eq!(status, 503);
    assert!(content_type.starts_with("text/html"));
    assert!(body.contains("npm run build"), "{body}");
    let (status, _, health) = up.request("GET", "/healthz", None, None);
    assert_eq!(status, 200, "{health}");
}

#[test]
fn up_refuses_an_unknown_table_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("up.toml");
    std::fs::write(&config, "[chatt]\nlisten = \"127.0.0.1:1\"\n").expect("write");
    let out = confab()
        .args(["up", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("run confab up");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`chatt`")
            && stderr.contains("[auth], [chat], [aggregate], [web] and [server]"),
        "{stderr}"
    );
}
