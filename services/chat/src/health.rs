//! `/healthz` (the process answers) and `/readyz` (the database, the chat store, the message log,
//! the history store and the event feed answer too).

use crate::error::ApiError;
use crate::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use confab_token::ErrorBody;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;
use utoipa::ToSchema;

/// How long `/readyz` waits for each backend.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// Health or readiness.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// `ok` or `ready`.
    pub status: String,
    /// The database backend (`postgres` or `sqlite`), on `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The chat store (`sql` or `cassandra`), on `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The message log (`memory` or `kafka`), on `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// The history store (`sql` or `cassandra`), on `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
    /// The event feed (`in_process`, `kafka` or `none`), on `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<String>,
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Status)))]
pub(crate) async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
        database: None,
        store: None,
        log: None,
        history: None,
        events: None,
    })
}

/// Why the service is not ready: which backend, and its own reason (which can name hosts,
/// users and versions, so `/readyz` logs it and answers only the backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    /// The backend, e.g. "the event feed".
    pub backend: &'static str,
    /// Its reason.
    pub reason: String,
}

async fn within<E: std::fmt::Display>(
    backend: &'static str,
    check: impl Future<Output = Result<(), E>>,
) -> Result<(), NotReady> {
    match tokio::time::timeout(READY_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(NotReady {
            backend,
            reason: err.to_string(),
        }),
        Err(_) => Err(NotReady {
            backend,
            reason: format!("no answer within {} s", READY_TIMEOUT.as_secs()),
        }),
    }
}

impl AppState {
    /// Checks every backend in turn (each within two seconds): the database, the chat store,
    /// the message log, the history store, the event feed, the live lane and the embedded
    /// aggregator; the first that is not ready, with its reason.
    pub async fn readiness(&self) -> Result<(), NotReady> {
        within("the database", self.store().ping()).await?;
        within("the chat store", self.chats().check()).await?;
        within("the message log", self.log().check()).await?;
        within("the history store", self.history().check()).await?;
        within("the event feed", async { self.feed().check() }).await?;
        within("the live lane", async { self.realtime().check() }).await?;
        if self.embedded_running().await == Some(false) {
            return Err(NotReady {
                backend: "the embedded aggregator",
                reason: "it stopped".into(),
            });
        }
        Ok(())
    }
}

/// Readiness: the database, the chat store, the message log, the history store and the event
/// feed answer.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "A backend does not answer; the message names which (the reason is in the log only)", body = ErrorBody),
    ))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    if let Err(not_ready) = state.readiness().await {
        tracing::warn!(backend = not_ready.backend, reason = %not_ready.reason, "Not ready.");
        // The reason stays in the log: it can name hosts, users and versions.
        return Err(ApiError::NotReady(format!(
            "{} is not ready; the service's log says why",
            not_ready.backend
        )));
    }
    Ok(Json(Status {
        status: "ready".into(),
        database: Some(state.store().backend().into()),
        store: Some(state.chats().name().into()),
        log: Some(state.log().name().into()),
        history: Some(state.history().name().into()),
        events: Some(state.feed().name().into()),
    }))
}
