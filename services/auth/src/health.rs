//! `/healthz` (the process answers) and `/readyz` (the database answers too).

use crate::error::ApiError;
use crate::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use confab_token::ErrorBody;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// How long `/readyz` waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

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
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Status)))]
pub(crate) async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
        database: None,
    })
}

/// Readiness: the database answers within two seconds.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "The database does not answer", body = ErrorBody),
    ))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    match tokio::time::timeout(READY_TIMEOUT, state.store().ping()).await {
        Ok(Ok(())) => Ok(Json(Status {
            status: "ready".into(),
            database: Some(state.store().backend().into()),
        })),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "Not ready: the database does not answer.");
            Err(ApiError::Unavailable)
        }
        Err(_) => {
            tracing::warn!("Not ready: the database did not answer in time.");
            Err(ApiError::Unavailable)
        }
    }
}
