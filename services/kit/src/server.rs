//! The HTTP server every confab process runs its router on ([`serve`]), with the limits that keep
//! one client from taking it down.
//!
//! What it guarantees, each bounded by [`ServerConfig`]:
//! - A connection that does not send a complete request head within `header_read_timeout_secs`
//!   is closed: half-sent headers (slowloris), and idle keep-alive connections, which wait for
//!   their next request head under the same clock. A response being streamed (an events stream)
//!   is not idle and is not cut.
//! - A request whose response has not started within `request_timeout_secs` (a slow body, a stuck
//!   backend) answers 503 `timeout`. Events streams start their response at once and are then
//!   bounded by their own rules (token expiry, revocation, shutdown).
//! - At most `max_connections` open connections in total and `max_connections_per_address` from
//!   one client address. Beyond either, the connection gets one short answer (503 `server_busy`
//!   or 429 `too_many_connections`, written without waiting on the client) and is closed, so the
//!   listener keeps accepting and the descriptors stay below the process limit.
//! - The soft limit on open files is raised to the hard limit at start; the total cap is lowered
//!   to fit under it, with a warning.
//! - Every response carries the security headers ([`security_headers`]).
//! - With [`serve_streams`], a connection whose first request is an events stream is answered
//!   on a lean path (`streaming`) that holds no connection buffers while the stream waits:
//!   hyper's two 8 KiB buffers per connection were most of an idle stream's memory. Same
//!   router, limits and headers; one request per such connection.
//!
//! HTTP/1.1 only: HTTP/2 belongs to the TLS-terminating proxy in front, which also gives each
//! client its own address (set `trusted_proxy` style options where the service has them).

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use crate::streaming;
pub use crate::streaming::StreamPaths;

/// Descriptors kept free for everything that is not a client connection: database pools, the
/// log's sockets, files, the listener.
const RESERVED_DESCRIPTORS: u64 = 512;

/// The default content security policy: everything from this origin only, no framing, no plugins.
/// The web client and the API reference page load only same-origin scripts and styles.
pub const DEFAULT_CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Connection limits and timeouts of [`serve`] (the `[server]` table of each service's
/// configuration and of `confab up`'s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Seconds a connection may take to send a complete request head, counted from when it
    /// opens or finishes its previous response; an idle keep-alive connection is closed after
    /// the same time.
    pub header_read_timeout_secs: u64,
    /// Seconds a request may take until its response starts (the body read included); beyond,
    /// 503 `timeout`.
    pub request_timeout_secs: u64,
    /// Open connections at most, in total (lowered to fit the open-files limit).
    pub max_connections: usize,
    /// Open connections at most from one client address. An events stream is one connection; a
    /// browser holds one per tab. Behind a reverse proxy every connection comes from the proxy's
    /// address: set this to `max_connections` there and let the proxy limit each client.
    pub max_connections_per_address: usize,
    /// The `Content-Security-Policy` header of every response.
    pub content_security_policy: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            max_connections: 16_384,
            max_connections_per_address: 1_000,
            content_security_policy: DEFAULT_CONTENT_SECURITY_POLICY.to_owned(),
        }
    }
}

impl ServerConfig {
    /// Checks every value, naming the field to fix.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("request_timeout_secs", self.request_timeout_secs),
            ("max_connections", self.max_connections as u64),
            (
                "max_connections_per_address",
                self.max_connections_per_address as u64,
            ),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("[server] {name} must be at least 1"));
            }
        }
        if HeaderValue::from_str(&self.content_security_policy).is_err() {
            return Err(
                "[server] content_security_policy must be one line of visible ASCII".to_owned(),
            );
        }
        Ok(())
    }
}

/// Sets the security headers on a response, keeping any the handler chose itself.
pub fn security_headers(headers: &mut HeaderMap, content_security_policy: &HeaderValue) {
    let fixed = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in fixed {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert_with(|| content_security_policy.clone());
}

/// Connections the kernel queues for [`serve`] before it accepts them (capped by the system's
/// `net.core.somaxconn`): a burst of reconnects after a restart would otherwise overflow a short
/// queue, and each dropped handshake costs its client a one-second retransmission.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` for [`serve`], with a long accept queue.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Raises the soft limit on open files to the hard limit; the soft limit afterwards.
pub fn raise_open_files_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(error = %err, "Cannot raise the open-files limit.");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// Open connections, in total and per client address.
struct Counts {
    total: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

impl Counts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Every update is one counter change: a poisoned map is still consistent.
        self.per_address
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One open connection, counted until dropped.
struct Slot {
    counts: Arc<Counts>,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counts.total.fetch_sub(1, Ordering::Relaxed);
        let mut per_address = self.counts.lock();
        if let Some(count) = per_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                per_address.remove(&self.address);
            }
        }
    }
}

/// Why a connection was turned away.
enum Refusal {
    Busy,
    PerAddress,
}

impl Refusal {
    /// The whole answer, written in one go: nothing is read from the client. It carries the
    /// security headers too (a JSON body needs no content at all: `default-src 'none'`).
    fn response(&self) -> &'static [u8] {
        match self {
            Refusal::Busy => b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\nconnection: close\r\nx-content-type-options: nosniff\r\nreferrer-policy: no-referrer\r\nx-frame-options: DENY\r\ncontent-security-policy: default-src 'none'; frame-ancestors 'none'\r\ncontent-length: 74\r\n\r\n{\"error\":\"server_busy\",\"message\":\"too many connections: retry in a while\"}",
            Refusal::PerAddress => b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 5\r\nconnection: close\r\nx-content-type-options: nosniff\r\nreferrer-policy: no-referrer\r\nx-frame-options: DENY\r\ncontent-security-policy: default-src 'none'; frame-ancestors 'none'\r\ncontent-length: 88\r\n\r\n{\"error\":\"too_many_connections\",\"message\":\"too many open connections from your address\"}",
        }
    }
}

fn admit(counts: &Arc<Counts>, address: IpAddr, config: &Limits) -> Result<Slot, Refusal> {
    if counts.total.fetch_add(1, Ordering::Relaxed) >= config.max_connections {
        counts.total.fetch_sub(1, Ordering::Relaxed);
        return Err(Refusal::Busy);
    }
    let mut per_address = counts.lock();
    let count = per_address.entry(address).or_insert(0);
    if *count >= config.max_connections_per_address {
        drop(per_address);
        counts.total.fetch_sub(1, Ordering::Relaxed);
        return Err(Refusal::PerAddress);
    }
    *count += 1;
    Ok(Slot {
        counts: Arc::clone(counts),
        address,
    })
}

/// The limits in force (the total cap lowered to fit the open-files limit).
#[derive(Debug, Clone)]
struct Limits {
    header_read_timeout: Duration,
    request_timeout: Duration,
    max_connections: usize,
    max_connections_per_address: usize,
    content_security_policy: HeaderValue,
}

impl Limits {
    fn new(config: &ServerConfig, open_files: u64) -> std::io::Result<Self> {
        config.validate().map_err(std::io::Error::other)?;
        let fits = usize::try_from(open_files.saturating_sub(RESERVED_DESCRIPTORS))
            .unwrap_or(usize::MAX)
            .max(1);
        let max_connections = if config.max_connections > fits {
            tracing::warn!(
                configured = config.max_connections,
                open_files,
                max_connections = fits,
                "The open-files limit is low for [server] max_connections: lowered to fit \
                 (raise the hard limit, e.g. LimitNOFILE= in the systemd unit)."
            );
            fits
        } else {
            config.max_connections
        };
        Ok(Self {
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
            request_timeout: Duration::from_secs(config.request_timeout_secs),
            max_connections,
            max_connections_per_address: config.max_connections_per_address,
            content_security_policy: HeaderValue::from_str(&config.content_security_policy)
                .map_err(std::io::Error::other)?,
        })
    }
}

async fn handle(
    router: Router,
    limits: Arc<Limits>,
    remote: SocketAddr,
    mut request: Request<Body>,
) -> Result<Response<Body>, std::convert::Infallible> {
    request.extensions_mut().insert(ConnectInfo(remote));
    let mut response =
        match tokio::time::timeout(limits.request_timeout, router.oneshot(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(never)) => match never {},
            Err(_) => {
                tracing::warn!(%remote, "A request timed out before its response started.");
                let mut response = Response::new(Body::from(
                    r#"{"error":"timeout","message":"the request took too long; retry"}"#,
                ));
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
        };
    security_headers(response.headers_mut(), &limits.content_security_policy);
    Ok(response)
}

/// Serves `router` on `listener` under `config`'s limits until `shutdown` completes, then
/// finishes the open requests (an events stream ends on its own shutdown signal) and returns.
///
/// Handlers see the client's address as `ConnectInfo<SocketAddr>`, as with axum's
/// `into_make_service_with_connect_info`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    serve_streams(listener, router, config, None, shutdown).await
}

/// [`serve`], answering the streaming requests `streams` names (events streams) on a lean path
/// that holds no connection buffers while the stream waits ([`crate::streaming`]).
pub async fn serve_streams(
    listener: TcpListener,
    router: Router,
    config: &ServerConfig,
    streams: Option<StreamPaths>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let open_files = raise_open_files_limit();
    let limits = Arc::new(Limits::new(config, open_files)?);
    tracing::info!(
        open_files,
        max_connections = limits.max_connections,
        max_connections_per_address = limits.max_connections_per_address,
        header_read_timeout_secs = config.header_read_timeout_secs,
        request_timeout_secs = config.request_timeout_secs,
        "Connection limits."
    );
    let counts = Arc::new(Counts {
        total: AtomicUsize::new(0),
        per_address: Mutex::new(HashMap::new()),
    });
    let graceful = GracefulShutdown::new();
    // Every connection task holds a sender: when all are dropped, every connection is done.
    let (open_tx, mut open_rx) = tokio::sync::mpsc::channel::<()>(1);
    // Turns true when the server stops: a connection that has sent nothing yet closes.
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(64 * 1024);
    let mut last_accept_warning: Option<Instant> = None;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors or a connection reset before accept: wait a moment
                    // rather than spin, and say so once in a while, not per attempt.
                    if last_accept_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(error = %err, "Accepting a connection failed.");
                        last_accept_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match admit(&counts, remote.ip(), &limits) {
            Ok(slot) => slot,
            Err(refusal) => {
                refuse(stream, &refusal);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            router: router.clone(),
            limits: Arc::clone(&limits),
            remote,
            http: http.clone(),
            watcher: graceful.watcher(),
            stopping: stopping.clone(),
            streams,
        };
        let open = open_tx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _open = open;
            connection.serve(stream).await;
        });
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    graceful.shutdown().await;
    drop(open_tx);
    // The streams answered on the lean path end on their own shutdown signal.
    let _ = open_rx.recv().await;
    Ok(())
}

/// What serving one connection needs.
struct Connection {
    router: Router,
    limits: Arc<Limits>,
    remote: SocketAddr,
    http: hyper::server::conn::http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    stopping: tokio::sync::watch::Receiver<bool>,
    streams: Option<StreamPaths>,
}

impl Connection {
    // Each phase's future is boxed in its own statement: an open stream's task is then sized
    // for the phase it stays in, not for the largest one (a temporary in the statement of an
    // `.await` takes room in the task even once moved).
    async fn serve(mut self, mut stream: TcpStream) {
        if let Some(is_stream) = self.streams {
            // Waiting for the first bytes is bounded like hyper's wait for a request head.
            let timeout = self.limits.header_read_timeout;
            let stopping = &mut self.stopping;
            let first = Box::pin(async {
                tokio::select! {
                    first = tokio::time::timeout(
                        timeout,
                        streaming::take_request(&mut stream, is_stream),
                    ) => Some(first),
                    _ = stopping.wait_for(|stop| *stop) => None,
                }
            });
            let Some(first) = first.await else {
                return;
            };
            match first {
                Ok(Ok(Some(request))) => {
                    let response = Box::pin(handle(self.router, self.limits, self.remote, request));
                    let Ok(response) = response.await;
                    let written = Box::pin(streaming::write_response(stream, response));
                    written.await;
                    return;
                }
                Ok(Ok(None)) => {}
                Ok(Err(_)) | Err(_) => return,
            }
        }
        let served = Box::pin(self.serve_hyper(stream));
        served.await;
    }

    /// Serves the connection with hyper: every request that is not a lean stream.
    async fn serve_hyper(self, stream: TcpStream) {
        let (router, limits, remote) = (self.router, self.limits, self.remote);
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            handle(
                router.clone(),
                Arc::clone(&limits),
                remote,
                request.map(Body::new),
            )
        });
        let connection = self
            .watcher
            .watch(self.http.serve_connection(TokioIo::new(stream), service));
        if let Err(err) = connection.await {
            tracing::debug!(%remote, error = %err, "A connection ended with an error.");
        }
    }
}

/// Writes the refusal if the socket takes it at once (a new socket's send buffer is empty, so
/// it does), then closes. Through the std socket: tokio's `try_write` refuses to try before the
/// reactor has reported the socket writable, which a just-accepted one has not.
fn refuse(stream: TcpStream, refusal: &Refusal) {
    use std::io::Write;
    if let Ok(mut stream) = stream.into_std() {
        let _ = stream.write(refusal.response());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_complete_http_responses() {
        for refusal in [Refusal::Busy, Refusal::PerAddress] {
            let text = std::str::from_utf8(refusal.response()).unwrap_or_default();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .and_then(|n| n.parse::<usize>().ok());
            assert_eq!(length, Some(body.len()), "{head}");
            assert!(body.starts_with("{\"error\":"), "{body}");
            assert!(head.contains("x-content-type-options: nosniff"), "{head}");
            assert!(head.contains("frame-ancestors 'none'"), "{head}");
        }
    }

    #[test]
    fn the_total_cap_fits_the_open_files_limit() {
        let config = ServerConfig::default();
        let limits = Limits::new(&config, 1024).map_or(0, |l| l.max_connections);
        assert_eq!(limits, 512);
        let limits = Limits::new(&config, 1 << 20).map_or(0, |l| l.max_connections);
        assert_eq!(limits, config.max_connections);
    }

    #[test]
    fn zero_limits_are_refused_by_name() {
        let config = ServerConfig {
            max_connections_per_address: 0,
            ..ServerConfig::default()
        };
        let err = config.validate().err().unwrap_or_default();
        assert!(err.contains("max_connections_per_address"), "{err}");
    }

    #[test]
    fn per_address_and_total_caps_count_and_release() {
        let counts = Arc::new(Counts {
            total: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
        });
        let limits = Limits {
            max_connections: 3,
            max_connections_per_address: 2,
            ..Limits::new(&ServerConfig::default(), 1 << 20).unwrap_or_else(|_| unreachable!())
        };
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = admit(&counts, a, &limits).ok();
        let second = admit(&counts, a, &limits).ok();
        assert!(first.is_some() && second.is_some());
        assert!(matches!(
            admit(&counts, a, &limits),
            Err(Refusal::PerAddress)
        ));
        let third = admit(&counts, b, &limits).ok();
        assert!(third.is_some());
        assert!(matches!(admit(&counts, b, &limits), Err(Refusal::Busy)));
        drop(first);
        assert!(admit(&counts, a, &limits).is_ok());
        drop((second, third));
        assert_eq!(counts.total.load(Ordering::Relaxed), 0);
        assert!(counts.lock().is_empty());
    }
}
