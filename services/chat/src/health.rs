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

async fn within<E: std::fmt::Display>(
    what: &str,
    check: impl Future<Output = Result<(), E>>,
) -> Result<(), ApiError> {
    match tokio::time::timeout(READY_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => {
            tracing::warn!(backend = what, error = %err, "Not ready.");
            // The backend's own error stays in the log: it can name hosts, users and versions.
            Err(ApiError::NotReady(format!(
                "{what} is not ready; the service's log says why"
            )))
        }
        Err(_) => {
            tracing::warn!(backend = what, "Not ready: no answer in time.");
            Err(ApiError::NotReady(format!(
                "{what} did not answer within {} s",
                READY_TIMEOUT.as_secs()
            )))
        }
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
    within("the database", state.store().ping()).await?;
    within("the chat store", state.chats().check()).await?;
    within("the message log", state.log().check()).await?;
    within("the history store", state.history().check()).await?;
    within("the event feed", async { state.feed().check() }).await?;
    within("the live lane", async { state.realtime().check() }).await?;
    if state.embedded_running().await == Some(false) {
        return Err(ApiError::NotReady(
            "the embedded aggregator stopped; see the service's log".into(),
        ));
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
