//! Runs: manual triggers and the run log read API.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use taskfactory_activities::StoreError;
use taskfactory_activities::auth_store::Principal;
use taskfactory_activities::store::{DefinitionRecord, NewDecision, RunDetail, RunFilter, RunSummary};
use taskfactory_schemas::decisions::DecisionOutcome;
use taskfactory_schemas::definition::SENSITIVE_PLACEHOLDER;
use taskfactory_schemas::ids::{check_workflow_id_len, manual_workflow_id};
use taskfactory_schemas::run::{LoadedDefinition, TriggerInfo};
use taskfactory_schemas::validate::check_instant;
use taskfactory_schemas::{DefinitionId, TraceEvent};
use utoipa::IntoParams;

use super::extract::{IdPath, RunPath, path_id};
use super::json_body;
use crate::ApiState;
use crate::auth::sees_sensitive;
use crate::error::ApiError;
use crate::starter::{Started, start_run};

/// Body of `POST /api/v1/definitions/{id}/runs` (all optional).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// Idempotency key: a second trigger with the same key starts nothing.
    #[serde(default)]
    pub key: Option<String>,
    /// Available to templates as `trigger.payload` (and to `trigger` context sources).
    #[serde(default)]
    pub payload: Value,
}

/// Longest idempotency key accepted.
pub const MAX_KEY_LEN: usize = 200;

pub(crate) fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
        return Err(ApiError::field(
            "key",
            format!("must be 1 to {MAX_KEY_LEN} characters without control characters"),
        ));
    }
    Ok(())
}

/// A manual trigger's run.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct TriggerAnswer {
    /// The run's workflow id (`tf:{id}:manual:{key}`).
    pub workflow_id: String,
    /// Temporal's run id, when known.
    pub run_id: Option<String>,
    /// `false` when the key was used before: nothing new was started.
    pub started: bool,
}

/// Start a manual run
///
/// Of the current version. 201 with `started: true`, or 200 with `started: false` and the
/// existing run when the idempotency key was used before.
#[utoipa::path(post, path = "/api/v1/definitions/{id}/runs", operation_id = "trigger_run", tag = "runs", params(IdPath),
    request_body(content = ref("#/components/schemas/TriggerRequest"), description = "Optional; an empty body is `{}`"),
    responses(
        (status = 201, description = "Started", body = ref("#/components/schemas/TriggerAnswer")),
        (status = 200, description = "The key was used before: the existing run", body = ref("#/components/schemas/TriggerAnswer")),
        (status = 404, description = "No such definition"),
        (status = 409, description = "The definition is disabled (`definition_disabled`)"),
        (status = 422, description = "Bad key or body"),
        (status = 503, description = "Temporal is unavailable"),
    ))]
pub async fn trigger(
    State(state): State<ApiState>,
    Path(IdPath { id }): Path<IdPath>,
    body: Bytes,
) -> Result<(StatusCode, Json<TriggerAnswer>), ApiError> {
    let id = path_id(&id)?;
    let request: TriggerRequest = json_body(&body)?;
    if let Some(key) = &request.key {
        check_key(key)?;
    }
    let record = state.store.get_definition(id.as_str()).await?;
    let started = start_manual_run(&state, record, request.key, request.payload).await?;
    let status = if started.started { StatusCode::CREATED } else { StatusCode::OK };
    Ok((
        status,
        Json(TriggerAnswer { workflow_id: started.workflow_id, run_id: started.run_id, started: started.started }),
    ))
}

/// Starts a manual run of a definition's current version (`tf:{id}:manual:{key}`, a fresh
/// uuid without a key); refuses a disabled definition (`definition_disabled`). The core of
/// `POST /api/v1/definitions/{id}/runs` and of `POST /api/v1/fleet/trigger` for manual and
/// event definitions.
pub async fn start_manual_run(
    state: &ApiState,
    record: DefinitionRecord,
    key: Option<String>,
    payload: Value,
) -> Result<Started, ApiError> {
    let id = record.definition.id.clone();
    if !record.definition.enabled {
        return Err(ApiError::Conflict {
            code: "definition_disabled",
            message: format!("definition {id} is disabled"),
        });
    }
    let workflow_id = manual_workflow_id(&id, &key.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string()));
    check_workflow_id_len(&workflow_id).map_err(|m| ApiError::field("key", format!("the key {m}")))?;
    let loaded = LoadedDefinition { version: record.version, definition: record.definition };
    let trigger = TriggerInfo::manual(key.clone(), payload);
    let started = start_run(state, &loaded, trigger.clone(), workflow_id, None).await?;
    // The run records its own `fired` decision; a reused key is recorded here.
    let mut decision = NewDecision::fired(id.as_str(), &trigger, &started.workflow_id);
    if !started.started {
        decision.entry.outcome = DecisionOutcome::Deduplicated;
        decision.entry.message =
            format!("idempotency key {:?} already started {}", key.as_deref().unwrap_or_default(), started.workflow_id);
        decision.key = None;
    }
    state.store.record_decision(&decision).await?;
    Ok(started)
}

/// Query of `GET /api/v1/runs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this definition's runs.
    pub definition_id: Option<String>,
    /// Only runs in this status (`running`, `completed`, `failed`, `cancelled`, `terminated`,
    /// `timed_out`).
    pub status: Option<String>,
    /// Only runs started by `schedule`, `event` or `manual`.
    pub trigger: Option<String>,
    /// Only runs fired at or after this instant (RFC 3339).
    pub since: Option<String>,
    /// Only runs fired before this instant (RFC 3339).
    pub until: Option<String>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<i64>,
}

fn one_of(field: &str, value: &Option<String>, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => {
            Err(ApiError::field(field, format!("{v:?} is not one of {}", allowed.join(", "))))
        }
        _ => Ok(()),
    }
}

fn instant(field: &str, value: &Option<String>) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    let parsed: Option<chrono::DateTime<chrono::Utc>> = value
        .as_deref()
        .map(|v| v.parse().map_err(|_| ApiError::field(field, format!("{v:?} is not an RFC 3339 time"))))
        .transpose()?;
    if let Some(at) = &parsed {
        check_instant(at).map_err(|m| ApiError::field(field, m))?;
    }
    Ok(parsed)
}

/// A page of runs.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RunList {
    /// Newest first.
    pub runs: Vec<RunSummary>,
    /// The `cursor` of the next page; `null` on the last page.
    pub next: Option<String>,
}

/// List runs
///
/// Newest first, filtered, with a keyset cursor (`next`).
#[utoipa::path(get, path = "/api/v1/runs", operation_id = "list_runs", tag = "runs", params(ListQuery),
    responses(
        (status = 200, description = "A page of runs", body = ref("#/components/schemas/RunList")),
        (status = 422, description = "A bad filter or cursor (with the parameter's name)"),
    ))]
pub async fn list(State(state): State<ApiState>, Query(q): Query<ListQuery>) -> Result<Json<RunList>, ApiError> {
    one_of(
        "status",
        &q.status,
        &["queued", "running", "completed", "skipped", "failed", "cancelled", "terminated", "timed_out"],
    )?;
    one_of("trigger", &q.trigger, &["schedule", "event", "manual"])?;
    let after = match q.cursor.as_deref() {
        None => None,
        Some(raw) => {
            let bad = || ApiError::field("cursor", "not a cursor from a previous page");
            let text = String::from_utf8(hex::decode(raw).map_err(|_| bad())?).map_err(|_| bad())?;
            let (time, id) = text.split_once('|').ok_or_else(bad)?;
            Some((time.parse().map_err(|_| bad())?, id.to_owned()))
        }
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let filter = RunFilter {
        definition_id: q.definition_id,
        status: q.status,
        trigger: q.trigger,
        since: instant("since", &q.since)?,
        until: instant("until", &q.until)?,
        after,
        limit,
    };
    let runs = state.store.list_runs(&filter).await?;
    let next = (runs.len() as i64 == limit)
        .then(|| runs.last().map(|r| hex::encode(format!("{}|{}", r.fired_at.to_rfc3339(), r.workflow_id))))
        .flatten();
    Ok(Json(RunList { runs, next }))
}

/// Query of `GET /api/v1/runs/{workflow_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// `false`: leave the plan out (`null`); a fan-out's plan lists every task (default `true`).
    pub plan: Option<bool>,
}

/// Read a run
///
/// Status, counts, trigger, context, the plan (with its explanation), the tasks, and the
/// retry links. A run the log says is open is checked against Temporal first.
#[utoipa::path(get, path = "/api/v1/runs/{workflow_id}", operation_id = "get_run", tag = "runs", params(RunPath, RunQuery),
    responses(
        (status = 200, description = "The run", body = ref("#/components/schemas/RunDetail")),
        (status = 404, description = "No such run in the run log"),
    ))]
pub async fn get(
    State(state): State<ApiState>,
    principal: Option<Extension<Principal>>,
    Path(RunPath { workflow_id }): Path<RunPath>,
    Query(q): Query<RunQuery>,
) -> Result<Json<RunDetail>, ApiError> {
    let with_plan = q.plan.unwrap_or(true);
    let mut run = state.store.get_run_with(&workflow_id, with_plan).await?;
    // An open run is checked against Temporal on every read: what an operator did there
    // shows at once.
    if matches!(run.summary.status.as_str(), "running" | "queued")
        && crate::run_reconciler::reconcile_run(&state, &workflow_id).await
    {
        run = state.store.get_run_with(&workflow_id, with_plan).await?;
    }
    if !sees_sensitive(principal.as_deref()) {
        redact_snapshot(&state, &mut run).await?;
    }
    Ok(Json(run))
}

/// Hides the values of the run's `sensitive` context sources (its version's definition says
/// which). When the version cannot be read, the whole snapshot is hidden: fail closed.
async fn redact_snapshot(state: &ApiState, run: &mut RunDetail) -> Result<(), ApiError> {
    let Some(snapshot) = run.context_snapshot.as_mut() else { return Ok(()) };
    let loaded = match (DefinitionId::parse(&run.summary.definition_id), run.summary.version_used) {
        (Ok(id), Some(version)) => match state.store.load_for_run(&id, Some(version)).await {
            Ok(loaded) => Some(loaded),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        },
        _ => None,
    };
    match loaded {
        Some(loaded) => loaded.definition.redact_sensitive(snapshot),
        None => *snapshot = Value::String(SENSITIVE_PLACEHOLDER.to_owned()),
    }
    Ok(())
}

/// Query of `GET /api/v1/runs/{workflow_id}/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events with a greater seq.
    pub after: Option<i64>,
    /// Page size (default 100, at most 10,000).
    pub limit: Option<i64>,
}

/// A page of a run's trace events.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct EventPage {
    /// In seq order.
    pub events: Vec<TraceEvent>,
    /// The `after` of the following page; `null` on the last page.
    pub next: Option<i64>,
}

/// Read a run's trace events
///
/// `?after=SEQ`: a page in seq order; gapless.
#[utoipa::path(get, path = "/api/v1/runs/{workflow_id}/events", operation_id = "list_run_events", tag = "runs", params(RunPath, EventsQuery),
    responses(
        (status = 200, description = "A page of events", body = ref("#/components/schemas/EventPage")),
        (status = 404, description = "No such run in the run log"),
    ))]
pub async fn events(
    State(state): State<ApiState>,
    Path(RunPath { workflow_id }): Path<RunPath>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let events = state.store.list_events(&workflow_id, q.after.unwrap_or(0), limit).await?;
    let next = if events.len() as i64 == limit { events.last().map(|e| e.seq) } else { None };
    Ok(Json(EventPage { events, next }))
}
