//! Human tasks: the inbox, and completing or rejecting a task (a signal to its TaskWorkflow).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use taskfactory_orchestrator::TaskWorkflow;
use taskfactory_schemas::run::HumanDecision;
use temporalio_client::WorkflowSignalOptions;

use super::json_body;
use crate::ApiState;
use crate::error::ApiError;

/// Query of the inbox.
#[derive(Debug, Deserialize)]
pub struct InboxQuery {
    /// `waiting`, `completed`, `rejected` or `timed_out`.
    pub status: Option<String>,
    /// Only tasks for this person.
    pub assignee: Option<String>,
    /// Page size (default 100, at most 500).
    pub limit: Option<i64>,
}

/// `GET /api/v1/human-tasks`.
pub async fn list(State(state): State<ApiState>, Query(q): Query<InboxQuery>) -> Result<Json<Value>, ApiError> {
    if let Some(status) = &q.status
        && !["waiting", "completed", "rejected", "timed_out"].contains(&status.as_str()) {
            return Err(ApiError::field("status", format!("{status:?} is not one of waiting, completed, rejected, timed_out")));
        }
    let tasks = state.store.list_human_tasks(q.status.as_deref(), q.assignee.as_deref(), q.limit.unwrap_or(100)).await?;
    Ok(Json(json!({"human_tasks": tasks})))
}

/// Body of complete and reject.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// The form's answer (complete): the task's output.
    #[serde(default)]
    pub payload: Value,
    /// Why (reject).
    #[serde(default)]
    pub reason: Option<String>,
    /// Who decides.
    #[serde(default)]
    pub by: Option<String>,
}

async fn decide(state: &ApiState, id: &str, approved: bool, body: &[u8]) -> Result<Json<Value>, ApiError> {
    let request: DecisionRequest = json_body(body)?;
    let (task_id, status) = state.store.human_task(id).await?;
    if status != "waiting" {
        return Err(ApiError::Conflict { code: "already_decided", message: format!("human task {id} is {status}") });
    }
    let new_status = if approved { "completed" } else { "rejected" };
    let response = json!({"payload": request.payload, "reason": request.reason});
    // Claim the decision first: the workflow finishes right after the signal and would
    // otherwise find the task still waiting.
    if !state.store.decide_human_task(id, new_status, request.by.as_deref(), &response).await? {
        return Err(ApiError::Conflict { code: "already_decided", message: format!("human task {id} was decided meanwhile") });
    }
    let decision = HumanDecision { approved, payload: request.payload.clone(), by: request.by.clone(), reason: request.reason.clone() };
    let signal = state
        .temporal
        .get_workflow_handle::<TaskWorkflow>(task_id.clone())
        .signal(TaskWorkflow::decide, decision, WorkflowSignalOptions::default())
        .await;
    if let Err(e) = signal {
        // Not delivered: give the decision back so it can be made again.
        let _ = state.store.undecide_human_task(id).await;
        return Err(ApiError::Unavailable(format!("temporal: {e}")));
    }
    tracing::info!(human_task = %id, task = %task_id, status = new_status, "human task decided");
    Ok(Json(json!({"id": id, "task_id": task_id, "status": new_status})))
}

/// `POST /api/v1/human-tasks/{id}/complete`: `{payload?, by?}`.
pub async fn complete(State(state): State<ApiState>, Path(id): Path<String>, body: Bytes) -> Result<Json<Value>, ApiError> {
    decide(&state, &id, true, &body).await
}

/// `POST /api/v1/human-tasks/{id}/reject`: `{reason?, by?}`.
pub async fn reject(State(state): State<ApiState>, Path(id): Path<String>, body: Bytes) -> Result<Json<Value>, ApiError> {
    decide(&state, &id, false, &body).await
}
