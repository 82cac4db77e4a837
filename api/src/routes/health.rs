//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use schemars::JsonSchema;
use serde::Serialize;
use temporalio_client::WorkflowCountOptions;

use crate::ApiState;
use crate::error::ApiError;

/// The answer of the health routes.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HealthAnswer {
    /// `ok` (healthz) or `ready` (readyz).
    pub status: &'static str,
}

/// Liveness: the process is up
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "health",
    responses((status = 200, description = "Up", body = ref("#/components/schemas/HealthAnswer"))))]
pub async fn healthz() -> Json<HealthAnswer> {
    Json(HealthAnswer { status: "ok" })
}

/// Readiness: Postgres and Temporal both answer
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = ref("#/components/schemas/HealthAnswer")),
        (status = 503, description = "Postgres or Temporal does not answer"),
    ))]
pub async fn readyz(State(state): State<ApiState>) -> Result<Json<HealthAnswer>, ApiError> {
    sqlx_ping(&state).await?;
    state
        .temporal
        .count_workflows("", WorkflowCountOptions::default())
        .await
        .map_err(|e| ApiError::Unavailable(format!("temporal: {e}")))?;
    Ok(Json(HealthAnswer { status: "ready" }))
}

async fn sqlx_ping(state: &ApiState) -> Result<(), ApiError> {
    state.store.ping().await.map_err(|e| ApiError::Unavailable(format!("postgres: {e}")))
}
