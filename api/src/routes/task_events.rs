//! Task code reporting into its run: progress, log lines and artifacts, sent by the code that
//! serves an `activity` or `workflow` task (any language; the Python client does it from
//! `temporalio.activity.info()`), identified by its Temporal identity. Also serves artifacts.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use taskfactory_activities::store::{ArtifactBody, NewArtifact};
use taskfactory_schemas::events::{NewTraceEvent, canonical_hash};
use taskfactory_schemas::validate::control_character_errors;
use taskfactory_schemas::{EventType, FieldError, Level};

use crate::ApiState;
use crate::error::ApiError;

/// Largest inline artifact content, in bytes (decoded).
pub const MAX_ARTIFACT_BYTES: usize = 1024 * 1024;

/// Fields that take any text (an artifact's content, a log line's structured fields).
const FREE_FORM_FIELDS: &[&str] = &["data", "fields"];

/// Most events in one request.
const MAX_EVENTS: usize = 1000;

/// Where the reporting code runs, as Temporal names it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemporalIdentity {
    /// The workflow id of the reporting code: a workflow-mode task's own (the task id), an
    /// activity-mode task's batch (`{run}/~batch/...`), or a `workflow` task's workflow
    /// (`{task id}/work`).
    pub workflow_id: String,
    /// The activity id, when an activity reports (an activity-mode task's is its task id).
    #[serde(default)]
    pub activity_id: Option<String>,
}

/// One report of task code.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskEvent {
    /// Who reports.
    pub temporal: TemporalIdentity,
    /// `progress`, `log` or `artifact`.
    #[serde(rename = "type")]
    pub kind: String,
    /// progress: how far (≥ 0).
    #[serde(default)]
    pub current: Option<f64>,
    /// progress: out of how much (> 0, when known).
    #[serde(default)]
    pub total: Option<f64>,
    /// progress and log: a line for people.
    #[serde(default)]
    pub message: Option<String>,
    /// log: `debug`, `info` (default), `warn` or `error`.
    #[serde(default)]
    pub level: Option<String>,
    /// log: structured fields.
    #[serde(default)]
    pub fields: Option<Map<String, Value>>,
    /// artifact: its name.
    #[serde(default)]
    pub name: Option<String>,
    /// artifact: a link to it (or give `data` / `data_base64`).
    #[serde(default)]
    pub url: Option<String>,
    /// artifact: inline text content (at most 1 MiB).
    #[serde(default)]
    pub data: Option<String>,
    /// artifact: inline binary content, base64 (at most 1 MiB decoded).
    #[serde(default)]
    pub data_base64: Option<String>,
    /// artifact: its media type (default `text/plain` for `data`, `application/octet-stream`
    /// for `data_base64`).
    #[serde(default)]
    pub media_type: Option<String>,
    /// Idempotency key (default: a hash of the report): a resent report is written once.
    #[serde(default)]
    pub key: Option<String>,
}

/// The body of `POST /api/v1/task-events`: one report or an array (the handler reads the
/// items one by one, so every bad one is reported by its index).
#[derive(Debug, JsonSchema)]
#[serde(untagged)]
pub enum TaskEventsBody {
    /// One report.
    One(Box<TaskEvent>),
    /// 1 to 1,000 reports.
    Batch(Vec<TaskEvent>),
}

/// Reports taken.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct TaskEventsAnswer {
    /// Reports in the request.
    pub accepted: usize,
    /// Reports newly written (the others were in the log already: same key).
    pub new: usize,
    /// The ids of the artifacts the request attached, in order.
    pub artifacts: Vec<String>,
}

/// A report made ready to write: its run, its event, and its artifact.
struct Report {
    run: String,
    event: NewTraceEvent,
    artifact: Option<NewArtifact>,
}

/// Report task progress, log lines and artifacts
///
/// One report or an array, all or nothing. Each names the Temporal identity of the code that
/// sends it; the task it runs gets `NODE_PROGRESS`, `NODE_LOG` or `NODE_ARTIFACT` in its run's
/// log (live on the streams). Reporter, operator and admin keys may send them.
#[utoipa::path(post, path = "/api/v1/task-events", operation_id = "report_task_events", tag = "runs",
    request_body(content = ref("#/components/schemas/TaskEventsBody")),
    responses(
        (status = 200, description = "Written", body = ref("#/components/schemas/TaskEventsAnswer")),
        (status = 400, description = "The body is not JSON"),
        (status = 413, description = "An artifact's content is over 1 MiB"),
        (status = 422, description = "Some report is invalid or names no task (each one listed by index); nothing was written"),
    ))]
pub async fn report(State(state): State<ApiState>, body: Bytes) -> Result<Json<TaskEventsAnswer>, ApiError> {
    let value: Value = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?;
    let items = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    if items.is_empty() || items.len() > MAX_EVENTS {
        return Err(ApiError::field("", "send 1 to 1,000 reports"));
    }
    let mut reports = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, raw) in items.into_iter().enumerate() {
        match to_report(&state, i, raw).await? {
            Ok(report) => reports.push(report),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    // One write per run, in the order given.
    let mut new = 0;
    let artifacts = reports.iter().filter_map(|r| r.artifact.as_ref().map(|a| a.id.clone())).collect();
    let mut runs: Vec<&str> = reports.iter().map(|r| r.run.as_str()).collect();
    runs.dedup();
    for run in runs {
        let of_run: Vec<&Report> = reports.iter().filter(|r| r.run == run).collect();
        let events: Vec<NewTraceEvent> = of_run.iter().map(|r| r.event.clone()).collect();
        let artifacts: Vec<_> = of_run.iter().filter_map(|r| r.artifact.clone()).collect();
        new += state.store.append_task_reports(run, &events, &artifacts).await?;
    }
    Ok(Json(TaskEventsAnswer { accepted: reports.len(), new, artifacts }))
}

/// Checks report `index` and finds its task; `Err` inside `Ok` is the report's own fault.
async fn to_report(state: &ApiState, index: usize, raw: Value) -> Result<Result<Report, FieldError>, ApiError> {
    let at = |field: &str| if field.is_empty() { format!("[{index}]") } else { format!("[{index}].{field}") };
    let fail = |field: &str, message: String| Ok(Err(FieldError { path: at(field), message }));
    if let Some(refused) = control_character_errors(&raw, FREE_FORM_FIELDS).into_iter().next() {
        return fail(&refused.path, refused.message);
    }
    let hash = canonical_hash(&raw);
    let event: TaskEvent = match serde_path_to_error::deserialize(raw) {
        Ok(event) => event,
        Err(e) => {
            let path = e.path().to_string();
            return fail(if path == "." { "" } else { &path }, e.into_inner().to_string());
        }
    };
    let identity = &event.temporal;
    let Some((run, task)) = state.store.task_of(&identity.workflow_id, identity.activity_id.as_deref()).await? else {
        return fail(
            "temporal.workflow_id",
            format!(
                "no task of any run runs as workflow {:?}{}",
                identity.workflow_id,
                identity.activity_id.as_deref().map(|a| format!(", activity {a:?}")).unwrap_or_default()
            ),
        );
    };
    let key = format!("report:{task}:{}", event.key.clone().unwrap_or(hash));
    let new_event = |event_type, level, message: String, payload| NewTraceEvent {
        key: key.clone(),
        event_type,
        node_id: Some(task.clone()),
        level,
        message: Some(message),
        payload,
    };
    let report = match event.kind.as_str() {
        "progress" => {
            let Some(current) = event.current.filter(|c| c.is_finite() && *c >= 0.0) else {
                return fail("current", "required for progress: a number ≥ 0".to_owned());
            };
            if event.total.is_some_and(|t| !t.is_finite() || t <= 0.0) {
                return fail("total", "must be a number > 0".to_owned());
            }
            let shown = match event.total {
                Some(total) => format!("progress {current}/{total}"),
                None => format!("progress {current}"),
            };
            let message = match &event.message {
                Some(m) => format!("{shown}: {m}"),
                None => shown,
            };
            let payload = json!({"current": current, "total": event.total, "message": event.message});
            Report { run, event: new_event(EventType::NodeProgress, Level::Info, message, payload), artifact: None }
        }
        "log" => {
            let Some(message) = event.message.clone().filter(|m| !m.is_empty()) else {
                return fail("message", "required for log".to_owned());
            };
            let level = match event.level.as_deref().unwrap_or("info") {
                "debug" => Level::Debug,
                "info" => Level::Info,
                "warn" | "warning" => Level::Warn,
                "error" => Level::Error,
                other => return fail("level", format!("{other:?} is not one of debug, info, warn, error")),
            };
            let payload = json!({"fields": event.fields.clone().unwrap_or_default()});
            Report { run, event: new_event(EventType::NodeLog, level, message, payload), artifact: None }
        }
        "artifact" => {
            let Some(name) = event.name.clone().filter(|n| !n.trim().is_empty() && n.len() <= 200) else {
                return fail("name", "required for an artifact: 1 to 200 characters".to_owned());
            };
            let (body, media_type) = match (&event.url, &event.data, &event.data_base64) {
                (Some(url), None, None) => {
                    if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2000 {
                        return fail("url", "must be an http(s) URL of at most 2,000 characters".to_owned());
                    }
                    (ArtifactBody::Url(url.clone()), event.media_type.clone())
                }
                (None, Some(text), None) => (
                    ArtifactBody::Inline(text.clone().into_bytes()),
                    Some(event.media_type.clone().unwrap_or_else(|| "text/plain".to_owned())),
                ),
                (None, None, Some(encoded)) => match base64::engine::general_purpose::STANDARD.decode(encoded) {
                    Ok(bytes) => (
                        ArtifactBody::Inline(bytes),
                        Some(event.media_type.clone().unwrap_or_else(|| "application/octet-stream".to_owned())),
                    ),
                    Err(e) => return fail("data_base64", format!("not base64: {e}")),
                },
                _ => return fail("", "an artifact needs exactly one of url, data, data_base64".to_owned()),
            };
            if let ArtifactBody::Inline(bytes) = &body
                && bytes.len() > MAX_ARTIFACT_BYTES
            {
                return Err(ApiError::TooLarge(format!(
                    "report [{index}]: the artifact {name:?} has {} bytes; inline content is limited to {MAX_ARTIFACT_BYTES} bytes (1 MiB): give a url instead",
                    bytes.len()
                )));
            }
            let id = hex::encode(&key_hash(&key)[..12]);
            let (size, url) = match &body {
                ArtifactBody::Inline(bytes) => (bytes.len(), None),
                ArtifactBody::Url(url) => (0, Some(url.clone())),
            };
            let payload = json!({"artifact_id": id, "name": name, "url": url, "media_type": media_type, "size": size});
            let message = format!("artifact {name}");
            Report {
                run,
                event: new_event(EventType::NodeArtifact, Level::Info, message, payload),
                artifact: Some(NewArtifact { id, task_id: task.clone(), name, media_type, body }),
            }
        }
        other => return fail("type", format!("{other:?} is not one of progress, log, artifact")),
    };
    Ok(Ok(report))
}

/// A stable id for an artifact: from its event key, so a resent report names the same one.
fn key_hash(key: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes()).to_vec()
}

/// Read an artifact
///
/// Inline content with its media type, or a redirect (307) to an artifact that lives
/// elsewhere. Viewer keys and above.
#[utoipa::path(get, path = "/api/v1/artifacts/{id}", operation_id = "get_artifact", tag = "runs",
    params(("id" = String, Path, description = "The artifact's id, from its `NODE_ARTIFACT` event or the run's `artifacts`")),
    responses(
        (status = 200, description = "The content, with its media type"),
        (status = 307, description = "An artifact that is a link: where it lives"),
        (status = 404, description = "No such artifact"),
    ))]
pub async fn artifact(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let stored = state.store.artifact(&id).await?;
    Ok(match stored.body {
        ArtifactBody::Url(url) => (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, url)]).into_response(),
        ArtifactBody::Inline(bytes) => {
            let media_type = stored.media_type.unwrap_or_else(|| "application/octet-stream".to_owned());
            let disposition = format!("inline; filename=\"{}\"", stored.name.replace(['"', '\\'], "_"));
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, media_type)
                .header(header::CONTENT_DISPOSITION, disposition)
                .header("x-content-type-options", "nosniff")
                // Content from task code never runs as this origin's page (where the UI keeps
                // its API key).
                .header(header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'")
                .body(Body::from(bytes))
                .map_err(|e| ApiError::Internal(e.into()))?
        }
    })
}
