//! One end-to-end run over a real TCP socket (port 0): sign up, log in, use the token, and shut
//! down gracefully. It also checks that the real server passes client addresses to throttling.

use crate::common::{on_both_backends, test_config, test_db, Backend, PASSWORD};
use confab_auth::{serve_on, AppState};
use serde_json::Value;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

on_both_backends!(a_real_server_signs_up_logs_in_and_serves_the_token);

/// A minimal HTTP/1.1 exchange (one request per connection).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("content-type: application/json\r\n");
    }
    if let Some(token) = token {
        request.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8(response).expect("utf8");
    let status: u16 = text[9..12].parse().expect("status");
    let (head, payload) = text.split_once("\r\n\r\n").expect("head");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "JSON answers carry a content-length: {head}"
    );
    let json = serde_json::from_str(payload).unwrap_or(Value::Null);
    (status, json)
}

async fn a_real_server_signs_up_logs_in_and_serves_the_token(backend: Backend) {
    let db = test_db(backend).await;
    let mut config = test_config(&db);
    config.throttle.login_failures_per_address = 2;
    let state = AppState::build(&config).await.expect("build");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_on(listener, state, async {
        let _ = stopped.await;
    }));

    let (status, _) = http(addr, "GET", "/readyz", None, None).await;
    assert_eq!(status, 200);
    let credentials = serde_json::json!({"username": "uma", "password": PASSWORD});
    let (status, user) = http(addr, "POST", "/api/v1/users", Some(&credentials), None).await;
    assert_eq!(status, 201, "{user}");
    let (status, login) = http(addr, "POST", "/api/v1/login", Some(&credentials), None).await;
    assert_eq!(status, 200, "{login}");
    let token = login["access_token"].as_str().expect("token");
    let (status, me) = http(
        addr,
        "GET",
        &format!("/api/v1/users/{}", user["id"].as_str().expect("id")),
        None,
        Some(token),
    )
    .await;
    assert_eq!((status, &me["username"]), (200, &Value::from("uma")));

    // The peer address reaches the throttle: two failures from 127.0.0.1, then 429.
    let wrong = serde_json::json!({"username": "uma", "password": "not the password"});
    for _ in 0..2 {
        assert_eq!(
            http(addr, "POST", "/api/v1/login", Some(&wrong), None)
                .await
                .0,
            401
        );
    }
    let (status, body) = http(addr, "POST", "/api/v1/login", Some(&wrong), None).await;
    assert_eq!(
        (status, &body["error"]),
        (429, &Value::from("too_many_requests"))
    );

    stop.send(()).expect("server running");
    server.await.expect("join").expect("clean shutdown");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
