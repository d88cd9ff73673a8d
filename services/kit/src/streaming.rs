//! Long-lived streaming responses (events streams) answered without hyper's connection buffers.
//!
//! hyper keeps an 8 KiB read buffer and an 8 KiB header buffer for each HTTP/1.1 connection as
//! long as it is open (its minimum sizes), which was most of an idle events stream's memory. A
//! connection whose first request is a streaming one is answered here instead: a `GET` to a path
//! the service names ([`StreamPaths`]), HTTP/1.1, its whole head in what the socket already
//! holds, no body and nothing unusual. The head is parsed from a peek at the socket, so nothing
//! is read until the request is known to be one of ours; any other request, and any request
//! this module is not sure about, goes to hyper with the socket untouched.
//!
//! The request then takes the same way as hyper's (the router, its extractors and limits, the
//! request timeout and the security headers: [`crate::server`]'s `handle`), and the response is
//! written here: its head at once, each body frame as one chunk when it comes. One request per
//! connection (`connection: close`): the stream ends with its connection, and a connection that
//! closes (or sends anything more) ends the stream. While it waits, a stream holds its response
//! body, its socket and a small task: no buffer of its own.

use axum::body::{Body, HttpBody};
use axum::http::{header, HeaderName, HeaderValue, Method, Request, Response, Version};
use futures::StreamExt;
use std::io::Write;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Which request paths are streaming responses (the query string is not part of the path).
pub type StreamPaths = fn(&str) -> bool;

/// A request head longer than this goes to hyper (an events stream's is a few hundred bytes).
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Headers at most in a request head answered here; more go to hyper.
const MAX_HEADERS: usize = 64;

/// Looks at a connection's first bytes at most this many times for a complete streaming head.
const PEEK_ATTEMPTS: usize = 4;

/// The pause between two looks.
const PEEK_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// What the start of a connection holds.
pub(crate) enum Peeked {
    /// A streaming request this module answers, its head `head_len` bytes long.
    Stream(usize, Box<Request<Body>>),
    /// Possibly a streaming request, not complete yet.
    Partial,
    /// Anything else: hyper's.
    Other,
}

/// What `peeked` (the start of what the client sent) holds.
pub(crate) fn parse(peeked: &[u8], is_stream: StreamPaths) -> Peeked {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    let (complete, head_len) = match head.parse(peeked) {
        Ok(httparse::Status::Complete(len)) => (true, len),
        Ok(httparse::Status::Partial) => (false, 0),
        Err(_) => return Peeked::Other,
    };
    let path = head
        .path
        .map(|target| target.split_once('?').map_or(target, |(path, _)| path));
    match (head.method, path) {
        (Some("GET"), Some(path)) if path.starts_with('/') && is_stream(path) => {}
        // The request line itself is not complete.
        (_, None) if !complete => return Peeked::Partial,
        _ => return Peeked::Other,
    }
    if !complete {
        return Peeked::Partial;
    }
    match request(&head) {
        Some(request) => Peeked::Stream(head_len, Box::new(request)),
        None => Peeked::Other,
    }
}

/// The request of a complete head, unless something in it is hyper's business.
fn request(head: &httparse::Request<'_, '_>) -> Option<Request<Body>> {
    if head.version != Some(1) {
        return None;
    }
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(head.path?)
        .version(Version::HTTP_11);
    for h in head.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        // A body, a protocol switch or an interim response.
        let unusual = [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::EXPECT,
            header::UPGRADE,
        ];
        if unusual.contains(&name) {
            return None;
        }
        request = request.header(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    request.body(Body::empty()).ok()
}

/// Reads the start of what the client sent without consuming it: the streaming request in it,
/// or `None` (nothing read) when hyper should have the connection. A head arriving in several
/// packets is waited for a little ([`PEEK_ATTEMPTS`] times [`PEEK_PAUSE`]), then left to hyper.
/// `Err` when the connection closed or failed before sending anything.
pub(crate) async fn take_request(
    stream: &mut TcpStream,
    is_stream: StreamPaths,
) -> std::io::Result<Option<Request<Body>>> {
    let mut peeked = vec![0_u8; MAX_HEAD_BYTES];
    for attempt in 0..PEEK_ATTEMPTS {
        if attempt > 0 {
            // A peek does not consume, so the socket stays readable: wait rather than spin.
            tokio::time::sleep(PEEK_PAUSE).await;
        }
        let n = stream.peek(&mut peeked).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        match parse(&peeked[..n], is_stream) {
            Peeked::Stream(head_len, request) => {
                // The head is in the socket's buffer already: this returns at once.
                tokio::io::AsyncReadExt::read_exact(stream, &mut peeked[..head_len]).await?;
                return Ok(Some(*request));
            }
            Peeked::Partial if n < peeked.len() => {}
            Peeked::Partial | Peeked::Other => return Ok(None),
        }
    }
    Ok(None)
}

/// The response head as sent: status line, the response's headers, `date`, the framing, and
/// `connection: close`.
fn head(response: &Response<Body>, length: Option<u64>) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    let status = response.status();
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in response.headers() {
        // The framing and the connection are this module's to state.
        if [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONNECTION,
        ]
        .contains(name)
        {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    let _ = write!(
        head,
        "date: {}\r\n",
        httpdate::fmt_http_date(std::time::SystemTime::now())
    );
    match length {
        Some(length) => {
            let _ = write!(head, "content-length: {length}\r\n");
        }
        None => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head
}

/// Whether the client closed the connection (or sent something, which a client waiting for a
/// response does not: either way the stream is over).
async fn client_done(stream: &TcpStream) -> bool {
    loop {
        if stream.readable().await.is_err() {
            return true;
        }
        match stream.try_read(&mut [0_u8; 1]) {
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
            _ => return true,
        }
    }
}

/// Writes `response` to the client: the head, then each body frame as it comes (one chunk
/// each), until the body ends, fails, or the client goes.
pub(crate) async fn write_response(mut stream: TcpStream, response: Response<Body>) {
    let length = HttpBody::size_hint(response.body()).exact();
    if stream.write_all(&head(&response, length)).await.is_err() {
        return;
    }
    let mut body = response.into_body().into_data_stream();
    loop {
        let data = tokio::select! {
            data = body.next() => data,
            _ = client_done(&stream) => return,
        };
        match data {
            Some(Ok(data)) if data.is_empty() => {}
            Some(Ok(data)) => {
                let written = match length {
                    Some(_) => stream.write_all(&data).await,
                    None => {
                        let mut chunk = Vec::with_capacity(data.len() + 12);
                        let _ = write!(chunk, "{:x}\r\n", data.len());
                        chunk.extend_from_slice(&data);
                        chunk.extend_from_slice(b"\r\n");
                        stream.write_all(&chunk).await
                    }
                };
                if written.is_err() {
                    return;
                }
            }
            // A body that fails ends the response unfinished, as hyper does: the client sees
            // the connection close before the last chunk.
            Some(Err(err)) => {
                tracing::debug!(error = %err, "A streaming response body failed.");
                return;
            }
            None => {
                if length.is_none() {
                    let _ = stream.write_all(b"0\r\n\r\n").await;
                }
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(path: &str) -> bool {
        path == "/events"
    }

    fn parsed(text: &str) -> Option<(usize, Request<Body>)> {
        match parse(text.as_bytes(), events) {
            Peeked::Stream(len, request) => Some((len, *request)),
            _ => None,
        }
    }

    #[test]
    fn a_complete_get_of_a_stream_path_is_taken_with_its_headers() {
        let text = "GET /events?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\n\r\n";
        let (len, request) = parsed(text).expect("taken");
        assert_eq!(len, text.len());
        assert_eq!(request.uri().path(), "/events");
        assert_eq!(request.uri().query(), Some("x=1"));
        assert_eq!(
            request
                .headers()
                .get("authorization")
                .map(HeaderValue::as_bytes),
            Some(&b"Bearer t"[..])
        );
    }

    #[test]
    fn anything_else_goes_to_hyper() {
        for text in [
            // Another path, method or version.
            "GET /other HTTP/1.1\r\n\r\n",
            "POST /events HTTP/1.1\r\n\r\n",
            "GET /events HTTP/1.0\r\n\r\n",
            // A body, an upgrade, an expectation.
            "GET /events HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            "GET /events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /events HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "GET /events HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            // Not HTTP.
            "\x16\x03\x01 hello",
            "GET * HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse(text.as_bytes(), events), Peeked::Other),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_stream_head_not_complete_yet_is_waited_for() {
        for text in ["GET /events HTTP/1.1\r\nHost: a\r\n", "GET /eve"] {
            assert!(
                matches!(parse(text.as_bytes(), events), Peeked::Partial),
                "{text:?}"
            );
        }
        assert!(matches!(
            parse(b"GET /other HTTP/1.1\r\nHost: a\r\n", events),
            Peeked::Other
        ));
    }

    #[test]
    fn the_head_states_its_own_framing_and_closes() {
        let mut response = Response::new(Body::empty());
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let chunked = String::from_utf8(head(&response, None)).unwrap_or_default();
        assert!(chunked.starts_with("HTTP/1.1 200 OK\r\n"), "{chunked}");
        assert!(chunked.contains("content-type: text/plain\r\n"));
        assert!(chunked.contains("transfer-encoding: chunked\r\n"));
        assert!(chunked.contains("\r\ndate: "));
        assert!(!chunked.contains("99"), "{chunked}");
        assert!(chunked.ends_with("connection: close\r\n\r\n"));
        let sized = String::from_utf8(head(&response, Some(3))).unwrap_or_default();
        assert!(sized.contains("content-length: 3\r\n") && !sized.contains("chunked"));
    }
}

#[cfg(test)]
mod served {
    //! The lean path and hyper's side by side on one server.
    use crate::server::{serve_streams, ServerConfig};
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Sets its flag when dropped: the response body of a stream whose client went away.
    struct Dropped(Arc<AtomicBool>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn is_stream(path: &str) -> bool {
        path == "/stream"
    }

    async fn start(
        dropped: Arc<AtomicBool>,
    ) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let router = Router::new()
            .route("/plain", get(|| async { "plain" }))
            .route(
                "/stream",
                get(move || {
                    let guard = Dropped(Arc::clone(&dropped));
                    async move {
                        let frames = futures::stream::unfold((0, guard), |(n, guard)| async move {
                            if n > 0 {
                                // After two frames the stream waits, as an idle events stream does.
                                if n >= 2 {
                                    std::future::pending::<()>().await;
                                }
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            Some((
                                Ok::<_, std::io::Error>(format!("frame {n}\n")),
                                (n + 1, guard),
                            ))
                        });
                        Body::from_stream(frames)
                    }
                }),
            );
        let listener = crate::server::bind(([127, 0, 0, 1], 0).into()).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = serve_streams(
                listener,
                router,
                &ServerConfig::default(),
                Some(is_stream),
                async {
                    let _ = stopped.await;
                },
            )
            .await;
        });
        (addr, stop)
    }

    /// Reads from `stream` until `text` shows (or 5 s pass); what was read.
    async fn read_until(stream: &mut TcpStream, text: &str) -> String {
        let mut seen = Vec::new();
        let mut buf = [0_u8; 1024];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !String::from_utf8_lossy(&seen).contains(text) {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    }

    #[tokio::test]
    async fn a_stream_is_chunked_closes_and_ends_when_its_client_goes_and_other_paths_keep_hyper() {
        let dropped = Arc::new(AtomicBool::new(false));
        let (addr, _stop) = start(Arc::clone(&dropped)).await;

        // Sent in two writes: the head is waited for.
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET /stream HTTP/1.1\r\nHo")
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(2)).await;
        stream.write_all(b"st: a\r\n\r\n").await.expect("write");
        let seen = read_until(&mut stream, "frame 1\n\r\n").await;
        assert!(seen.starts_with("HTTP/1.1 200 OK\r\n"), "{seen}");
        assert!(seen.contains("transfer-encoding: chunked\r\n"), "{seen}");
        assert!(seen.contains("connection: close\r\n"), "{seen}");
        assert!(
            seen.contains("x-content-type-options: nosniff\r\n"),
            "{seen}"
        );
        assert!(
            seen.contains("\r\n8\r\nframe 0\n\r\n8\r\nframe 1\n\r\n"),
            "{seen}"
        );
        assert!(!dropped.load(Ordering::SeqCst));
        drop(stream);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !dropped.load(Ordering::SeqCst) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            dropped.load(Ordering::SeqCst),
            "the body is dropped when its client goes"
        );

        // Other requests keep hyper, keep-alive included.
        let mut plain = TcpStream::connect(addr).await.expect("connect");
        for _ in 0..2 {
            plain
                .write_all(b"GET /plain HTTP/1.1\r\nHost: a\r\n\r\n")
                .await
                .expect("write");
            let seen = read_until(&mut plain, "plain").await;
            assert!(seen.starts_with("HTTP/1.1 200 OK\r\n"), "{seen}");
            assert!(seen.contains("content-length: 5\r\n"), "{seen}");
        }
    }
}
