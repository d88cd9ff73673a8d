//! The operator's HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (the process is up)
//! and `/readyz` (the pipeline is connected and running).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use confab_pipeline::Metrics;

/// What the endpoints report on.
#[derive(Clone)]
pub(crate) struct Health {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) ready: Arc<AtomicBool>,
}

/// The router of the endpoints.
pub(crate) fn router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(health)
}

async fn metrics(State(health): State<Health>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        health.metrics.render_prometheus("confab"),
    )
}

async fn ready(State(health): State<Health>) -> impl IntoResponse {
    if health.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting or stopping\n")
    }
}

/// Serves the endpoints on `listener` until the process ends.
pub(crate) async fn serve(listener: tokio::net::TcpListener, health: Health) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    }
    if let Err(e) = axum::serve(listener, router(health)).await {
        tracing::error!(error = %e, "the metrics endpoint stopped");
    }
}
