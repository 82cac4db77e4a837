//! The run graph and events reported from outside Temporal.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use taskfactory_schemas::events::{NewTraceEvent, canonical_hash};
use taskfactory_schemas::validate::control_character_errors;
use taskfactory_schemas::{EventType, FieldError, Level};
use utoipa::IntoParams;

use super::FREE_FORM_FIELDS;
use super::extract::RunPath;
use crate::ApiState;
use crate::error::ApiError;

/// Query of the graph.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GraphQuery {
    /// Templates with more tasks than this are collapsed into one group node (default 200).
    pub expand_up_to: Option<i64>,
}

/// A run as a graph
///
/// Groups (templates) with per-status counts, task nodes (status, timings, attempt),
/// dependency edges, external jobs.
#[utoipa::path(get, path = "/api/v1/runs/{workflow_id}/graph", operation_id = "get_run_graph", tag = "runs", params(RunPath, GraphQuery),
    responses(
        (status = 200, description = "`{workflow_id, status, groups, nodes, edges, external}`", body = Object),
        (status = 404, description = "No such run in the run log"),
    ))]
pub async fn graph(
    State(state): State<ApiState>,
    Path(RunPath { workflow_id }): Path<RunPath>,
    Query(q): Query<GraphQuery>,
) -> Result<Json<Value>, ApiError> {
    let expand = q.expand_up_to.unwrap_or(200).clamp(0, 5000);
    Ok(Json(state.store.graph(&workflow_id, expand).await?))
}

/// One event of a job outside Temporal (e.g. a queue worker's).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalEvent {
    /// `job_started`, `job_finished`, `job_failed` or `job_log`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The job's id in its own system.
    pub job_id: String,
    /// A line for the log.
    #[serde(default)]
    pub message: Option<String>,
    /// Structured detail.
    #[serde(default)]
    pub payload: Value,
    /// Idempotency key (default: a hash of the event).
    #[serde(default)]
    pub key: Option<String>,
}

fn to_trace(index: usize, raw: Value) -> Result<NewTraceEvent, FieldError> {
    let at = |field: &str| if field.is_empty() { format!("[{index}]") } else { format!("[{index}].{field}") };
    if let Some(refused) = control_character_errors(&raw, FREE_FORM_FIELDS).into_iter().next() {
        return Err(FieldError { path: at(&refused.path), message: refused.message });
    }
    let hash = canonical_hash(&raw);
    let event: ExternalEvent = serde_path_to_error::deserialize(raw).map_err(|e| {
        let path = e.path().to_string();
        FieldError { path: at(if path == "." { "" } else { &path }), message: e.into_inner().to_string() }
    })?;
    let (event_type, level) = match event.kind.as_str() {
        "job_started" => (EventType::NodeStarted, Level::Info),
        "job_finished" => (EventType::NodeCompleted, Level::Info),
        "job_failed" => (EventType::NodeFailed, Level::Error),
        "job_log" => (EventType::NodeLog, Level::Info),
        other => {
            return Err(FieldError {
                path: at("type"),
                message: format!("{other:?} is not one of job_started, job_finished, job_failed, job_log"),
            });
        }
    };
    if event.job_id.trim().is_empty() || event.job_id.len() > 200 {
        return Err(FieldError { path: at("job_id"), message: "must be 1 to 200 characters".into() });
    }
    Ok(NewTraceEvent {
        key: format!("ext:{}:{}", event.job_id, event.key.unwrap_or(hash)),
        event_type,
        node_id: Some(format!("job:{}", event.job_id)),
        level,
        message: event.message,
        payload: json!({"external": true, "job_id": event.job_id, "data": event.payload}),
    })
}

/// The body of `POST /api/v1/runs/{workflow_id}/external-events`; the handler reads the items
/// one by one, so every bad one is reported by its index.
#[derive(Debug, JsonSchema)]
#[serde(untagged)]
pub enum ExternalEventsBody {
    /// One event.
    One(ExternalEvent),
    /// 1 to 1,000 events.
    Batch(Vec<ExternalEvent>),
}

/// External events taken.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExternalAnswer {
    /// Events in the request.
    pub accepted: usize,
    /// Events newly written (the others were already in the log: same key).
    pub new: usize,
}

/// Report events of jobs outside Temporal
///
/// One event or an array, all or nothing; idempotent by `key`. They appear in the run's log
/// and graph.
#[utoipa::path(post, path = "/api/v1/runs/{workflow_id}/external-events", operation_id = "report_external_events", tag = "runs", params(RunPath),
    request_body(content = ref("#/components/schemas/ExternalEventsBody")),
    responses(
        (status = 200, description = "Written", body = ref("#/components/schemas/ExternalAnswer")),
        (status = 400, description = "The body is not JSON"),
        (status = 404, description = "No such run in the run log"),
        (status = 422, description = "Some event is invalid (each one listed by index); nothing was written"),
    ))]
pub async fn external_events(
    State(state): State<ApiState>,
    Path(RunPath { workflow_id }): Path<RunPath>,
    body: Bytes,
) -> Result<Json<ExternalAnswer>, ApiError> {
    let value: Value = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?;
    let items = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    if items.is_empty() || items.len() > 1000 {
        return Err(ApiError::field("", "send 1 to 1,000 events"));
    }
    let mut events = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, raw) in items.into_iter().enumerate() {
        match to_trace(i, raw) {
            Ok(e) => events.push(e),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let written = state.store.append_external(&workflow_id, &events).await?;
    Ok(Json(ExternalAnswer { accepted: events.len(), new: written }))
}
