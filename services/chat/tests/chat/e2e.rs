//! End to end over a real TCP socket (port 0), in the embedded mode: start a chat, stream
//! events, send, read history, and shut down gracefully while a stream is open, with the open
//! groups written to history on the way out.

use crate::common::{on_every_backend, signer, test_config, Backend, TestDb};
use confab_chat::{serve_on, AppState, Backends};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

on_every_backend!(a_real_server_chats_streams_and_flushes_on_shutdown);

/// Reads lines until one contains `needle` (within 20 s); returns whether it came, and the text.
async fn read_until(needle: &str, events: &mut BufReader<TcpStream>) -> (bool, String) {
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        let mut line = String::new();
        loop {
            line.clear();
            if events.read_line(&mut line).await.expect("read") == 0 {
                return false;
            }
            seen.push_str(&line);
            if line.contains(needle) {
                return true;
            }
        }
    })
    .await;
    (found.unwrap_or(false), seen)
}

/// A minimal HTTP/1.1 exchange (one request per connection).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: &str,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
         authorization: Bearer {token}\r\ncontent-length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("content-type: application/json\r\n");
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8(response).expect("utf8");
    let status: u16 = text[9..12].parse().expect("status");
    let (_, payload) = text.split_once("\r\n\r\n").expect("head");
    (status, serde_json::from_str(payload).unwrap_or(Value::Null))
}

async fn a_real_server_chats_streams_and_flushes_on_shutdown(backend: Backend) {
    let db = TestDb::new(backend).await;
    let signer = signer(&db.dir());
    let mut config = test_config(&db);
    // Long enough that only the shutdown completes the second group.
    config.embedded.policy.inactivity_timeout_ms = 2_000;
    config.embedded.policy.max_age_ms = 60_000;
    let state = AppState::build_with(
        &config,
        Backends {
            verifier: Some(Arc::new(signer.verifier().expect("verifier"))),
            ..Backends::default()
        },
    )
    .await
    .expect("build");
    let users = db.auth_store().await;
    let ann = users.insert_user("ann", "x").await.expect("ann");
    let bob = users.insert_user("bob", "x").await.expect("bob");
    users.close().await;
    let ann_token = signer
        .issue(ann.id, "ann", uuid::Uuid::now_v7())
        .expect("token")
        .token;
    let bob_token = signer
        .issue(bob.id, "bob", uuid::Uuid::now_v7())
        .expect("token")
        .token;

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_on(listener, state.clone(), async {
        let _ = stopped.await;
    }));

    let (status, ready) = http(addr, "GET", "/readyz", None, "").await;
    assert_eq!((status, &ready["status"]), (200, &Value::from("ready")));
    let (status, chat) = http(
        addr,
        "POST",
        "/api/v1/chats",
        Some(&serde_json::json!({ "peer_id": bob.id })),
        &ann_token,
    )
    .await;
    assert_eq!(status, 201, "{chat}");
    let chat_id = chat["chat_id"].as_str().expect("chat_id").to_owned();

    // Bob listens over a kept-open connection.
    let mut events = TcpStream::connect(addr).await.expect("connect");
    events
        .write_all(
            format!(
                "GET /api/v1/chats/{chat_id}/events HTTP/1.1\r\n\
                 host: {addr}\r\naccept: text/event-stream\r\n\
                 authorization: Bearer {bob_token}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    let mut events = BufReader::new(events);
    let mut line = String::new();
    events.read_line(&mut line).await.expect("status line");
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let (ready, seen) = read_until("event: ready", &mut events).await;
    assert!(ready, "{seen}");

    let (status, first) = http(
        addr,
        "POST",
        &format!("/api/v1/chats/{chat_id}/messages"),
        Some(&serde_json::json!({ "body": "over tcp" })),
        &ann_token,
    )
    .await;
    assert_eq!(status, 201, "{first}");
    let message_id = first["message_id"].as_str().expect("id");
    let (got, seen) = read_until("event: group", &mut events).await;
    assert!(got, "{seen}");
    let (got, seen) = read_until(message_id, &mut events).await;
    assert!(got, "the group carries the message: {seen}");
    // Each sink acknowledges on its own: history may trail the event by a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, page) = http(addr, "GET", &format!("/chat/{chat_id}"), None, &bob_token).await;
        assert_eq!(status, 200);
        if page["messages"][0] == first {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not in history: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A message still buffered in an open group when the server stops reaches history anyway.
    let (status, last) = http(
        addr,
        "POST",
        &format!("/api/v1/chats/{chat_id}/messages"),
        Some(&serde_json::json!({ "body": "just before shutdown" })),
        &bob_token,
    )
    .await;
    assert_eq!(status, 201);
    stop.send(()).expect("server running");
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the open event stream does not hold the shutdown")
        .expect("join")
        .expect("clean shutdown");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
    let history = SqlHistoryAfter::read(&db, &chat_id).await;
    assert_eq!(
        history,
        [
            last["message_id"].as_str().expect("id").to_owned(),
            message_id.to_owned()
        ]
    );
}

/// Reads the history table with a fresh store, as the next process would.
struct SqlHistoryAfter;

impl SqlHistoryAfter {
    async fn read(db: &TestDb, chat_id: &str) -> Vec<String> {
        use confab_chat::history::History;
        let store =
            confab_chat::store::Store::connect(&confab_token::Secret::new(db.url.clone()), 1)
                .await
                .expect("store");
        let page = confab_chat::history::SqlHistory::new(store.clone())
            .page(chat_id, None, 100)
            .await
            .expect("page");
        store.close().await;
        page.into_iter().map(|m| m.message_id.to_string()).collect()
    }
}
