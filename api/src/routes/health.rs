//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use temporalio_client::WorkflowCountOptions;

use crate::ApiState;
use crate::error::ApiError;

/// The process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Postgres and Temporal both answer.
pub async fn readyz(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    sqlx_ping(&state).await?;
    state
        .temporal
        .count_workflows("", WorkflowCountOptions::default())
        .await
        .map_err(|e| ApiError::Unavailable(format!("temporal: {e}")))?;
    Ok(Json(json!({"status": "ready"})))
}

async fn sqlx_ping(state: &ApiState) -> Result<(), ApiError> {
    state.store.ping().await.map_err(|e| ApiError::Unavailable(format!("postgres: {e}")))
}
