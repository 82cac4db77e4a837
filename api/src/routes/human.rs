//! Human tasks: the inbox, and completing or rejecting a task (a signal to its TaskWorkflow).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use taskfactory_orchestrator::TaskWorkflow;
use taskfactory_schemas::run::HumanDecision;
use temporalio_client::WorkflowSignalOptions;
use utoipa::IntoParams;

use super::json_body;
use crate::ApiState;
use crate::error::ApiError;

/// Query of the inbox.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// `waiting`, `completed`, `rejected`, `timed_out` or `cancelled` (its run was closed in Temporal).
    pub status: Option<String>,
    /// Only tasks for this person.
    pub assignee: Option<String>,
    /// Page size (default 100, at most 500).
    pub limit: Option<i64>,
}

/// The inbox.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HumanTaskList {
    /// Rows of the `human_tasks` table, newest first: `id`, `task_id`, `run_workflow_id`,
    /// `title`, `assignee`, `form`, `status`, `created_at`, `decided_at`, `decided_by`,
    /// `response`.
    pub human_tasks: Vec<Value>,
}

/// List human tasks (the inbox)
#[utoipa::path(get, path = "/api/v1/human-tasks", operation_id = "list_human_tasks", tag = "human-tasks", params(InboxQuery),
    responses(
        (status = 200, description = "Newest first", body = ref("#/components/schemas/HumanTaskList")),
        (status = 422, description = "Unknown `status`"),
    ))]
pub async fn list(State(state): State<ApiState>, Query(q): Query<InboxQuery>) -> Result<Json<HumanTaskList>, ApiError> {
    if let Some(status) = &q.status
        && !["waiting", "completed", "rejected", "timed_out", "cancelled"].contains(&status.as_str())
    {
        return Err(ApiError::field(
            "status",
            format!("{status:?} is not one of waiting, completed, rejected, timed_out, cancelled"),
        ));
    }
    let tasks =
        state.store.list_human_tasks(q.status.as_deref(), q.assignee.as_deref(), q.limit.unwrap_or(100)).await?;
    Ok(Json(HumanTaskList { human_tasks: tasks }))
}

/// Body of complete and reject.
#[derive(Debug, Default, Deserialize, JsonSchema)]
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

/// A decision taken.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DecisionAnswer {
    /// The human task.
    pub id: String,
    /// Its task's workflow id (signalled with the decision).
    pub task_id: String,
    /// `completed` or `rejected`.
    pub status: &'static str,
}

/// The `{id}` of a human task's routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct HumanTaskPath {
    /// The human task's id (from the inbox).
    pub id: String,
}

async fn decide(state: &ApiState, id: &str, approved: bool, body: &[u8]) -> Result<Json<DecisionAnswer>, ApiError> {
    let request: DecisionRequest = json_body(body)?;
    let (task_id, status) = state.store.human_task(id).await?;
    if status != "waiting" {
        let message = if status == "cancelled" {
            format!("human task {id} is cancelled: its run was closed in Temporal")
        } else {
            format!("human task {id} is {status}")
        };
        return Err(ApiError::Conflict { code: "already_decided", message });
    }
    let new_status = if approved { "completed" } else { "rejected" };
    let response = json!({"payload": request.payload, "reason": request.reason});
    // Claim the decision first: the workflow finishes right after the signal and would
    // otherwise find the task still waiting.
    if !state.store.decide_human_task(id, new_status, request.by.as_deref(), &response).await? {
        return Err(ApiError::Conflict {
            code: "already_decided",
            message: format!("human task {id} was decided meanwhile"),
        });
    }
    let decision = HumanDecision {
        approved,
        payload: request.payload.clone(),
        by: request.by.clone(),
        reason: request.reason.clone(),
    };
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
    Ok(Json(DecisionAnswer { id: id.to_owned(), task_id, status: new_status }))
}

/// Complete a human task
///
/// `{payload?, by?}`: the payload is the task's output.
#[utoipa::path(post, path = "/api/v1/human-tasks/{id}/complete", operation_id = "complete_human_task", tag = "human-tasks", params(HumanTaskPath),
    request_body(content = ref("#/components/schemas/DecisionRequest"), description = "Optional; an empty body is `{}`"),
    responses(
        (status = 200, description = "Completed; the task's workflow was signalled", body = ref("#/components/schemas/DecisionAnswer")),
        (status = 404, description = "No such human task"),
        (status = 409, description = "Already decided (`already_decided`)"),
        (status = 422, description = "Unknown field in the body"),
        (status = 503, description = "Temporal is unavailable; the decision can be made again"),
    ))]
pub async fn complete(
    State(state): State<ApiState>,
    Path(HumanTaskPath { id }): Path<HumanTaskPath>,
    body: Bytes,
) -> Result<Json<DecisionAnswer>, ApiError> {
    decide(&state, &id, true, &body).await
}

/// Reject a human task
///
/// `{reason?, by?}`: the task fails.
#[utoipa::path(post, path = "/api/v1/human-tasks/{id}/reject", operation_id = "reject_human_task", tag = "human-tasks", params(HumanTaskPath),
    request_body(content = ref("#/components/schemas/DecisionRequest"), description = "Optional; an empty body is `{}`"),
    responses(
        (status = 200, description = "Rejected; the task's workflow was signalled", body = ref("#/components/schemas/DecisionAnswer")),
        (status = 404, description = "No such human task"),
        (status = 409, description = "Already decided (`already_decided`)"),
        (status = 422, description = "Unknown field in the body"),
        (status = 503, description = "Temporal is unavailable; the decision can be made again"),
    ))]
pub async fn reject(
    State(state): State<ApiState>,
    Path(HumanTaskPath { id }): Path<HumanTaskPath>,
    body: Bytes,
) -> Result<Json<DecisionAnswer>, ApiError> {
    decide(&state, &id, false, &body).await
}
