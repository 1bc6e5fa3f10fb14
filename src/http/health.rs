//! Health checks for orchestrators: `/healthz` says the process serves
//! requests; `/readyz` says the database answers too.

use super::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Serving")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// How long readiness waits for the database's answer.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Readiness: the database answers.
///
/// Within 2 s: a database that does not answer by then is a 503.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready"),
        (status = 503, description = "The database does not answer", body = super::wire::ErrorBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    tokio::time::timeout(READY_WITHIN, state.store.ping())
        .await
        .map_err(|_| ApiError::NotReady("the database did not answer within 2 s".into()))?
        .map_err(|e| ApiError::NotReady(e.to_string()))?;
    Ok(Json(json!({"status": "ready"})))
}
