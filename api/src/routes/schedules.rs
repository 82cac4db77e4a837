//! Schedule controls of cron definitions: describe, pause, unpause, trigger now, backfill,
//! and the reconciler on demand.

use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use taskfactory_schemas::ActivityDefinition;
use taskfactory_schemas::definition::TriggerKind;
use taskfactory_schemas::ids::schedule_id;
use taskfactory_schemas::preview::{Fire, next_fires};
use taskfactory_schemas::validate::check_instant;
use temporalio_client::schedules::{
    BackfillScheduleOptions, PauseScheduleOptions, ScheduleBackfill, ScheduleError, ScheduleOverlapPolicy,
    TriggerScheduleOptions, UnpauseScheduleOptions,
};
use temporalio_client::tonic::Code;

use super::extract::{IdPath, path_id};
use super::json_body;
use crate::ApiState;
use crate::error::ApiError;
use crate::schedules::{self, Repair, rfc3339};

/// Most slots one backfill may start.
pub const MAX_BACKFILL_SLOTS: usize = 1000;

fn schedule_error(id: &str, e: ScheduleError) -> ApiError {
    match e {
        ScheduleError::Rpc(status) if status.code() == Code::NotFound => ApiError::NotFound(format!("schedule {id:?}")),
        other => ApiError::Unavailable(format!("temporal: {other}")),
    }
}

/// Loads a definition and checks it is a cron definition.
async fn cron_definition(state: &ApiState, raw_id: &str) -> Result<ActivityDefinition, ApiError> {
    let id = path_id(raw_id)?;
    let record = state.store.get_definition(id.as_str()).await?;
    if record.definition.trigger.kind != TriggerKind::Cron {
        return Err(ApiError::Conflict {
            code: "not_cron",
            message: format!("definition {id} has no cron trigger, so no schedule"),
        });
    }
    Ok(record.definition)
}

/// A run the schedule started.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RecentAction {
    /// The slot (RFC 3339).
    pub scheduled_for: Option<String>,
    /// When Temporal started it (RFC 3339).
    pub started_at: Option<String>,
    /// The run's workflow id.
    pub workflow_id: String,
}

/// A run of the schedule still running.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RunningAction {
    /// The run's workflow id.
    pub workflow_id: String,
}

/// A schedule as Temporal describes it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ScheduleDescription {
    /// `tf:{definition id}`.
    pub schedule_id: String,
    /// Whether it is paused.
    pub paused: bool,
    /// The note of the last pause or unpause.
    pub note: Option<String>,
    /// Runs it started.
    pub action_count: i64,
    /// Slots missed because the catch-up window passed.
    pub missed_catchup_window: i64,
    /// Slots skipped by the overlap policy.
    pub overlap_skipped: i64,
    /// Its latest runs.
    pub recent_actions: Vec<RecentAction>,
    /// Its runs still running.
    pub running_actions: Vec<RunningAction>,
    /// The next 10 fire times as Temporal computes them (RFC 3339).
    pub next_fire_times: Vec<String>,
    /// The next 10 fire times as taskfactory computes them, to compare.
    pub local_preview: Vec<Fire>,
}

/// Describe a definition's schedule
///
/// State, counters, recent and running actions, the next 10 fire times as Temporal computes
/// them, and the local preview beside them.
#[utoipa::path(get, path = "/api/v1/definitions/{id}/schedule", operation_id = "describe_schedule", tag = "schedules", params(IdPath),
    responses(
        (status = 200, description = "The schedule", body = ref("#/components/schemas/ScheduleDescription")),
        (status = 404, description = "No such definition or schedule"),
        (status = 409, description = "The definition has no cron trigger (`not_cron`)"),
        (status = 503, description = "Temporal is unavailable"),
    ))]
pub async fn describe(
    State(state): State<ApiState>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Json<ScheduleDescription>, ApiError> {
    let definition = cron_definition(&state, &id).await?;
    let sid = schedule_id(&definition.id);
    let description = state
        .temporal
        .get_schedule_handle(sid.clone())
        .describe(Default::default())
        .await
        .map_err(|e| schedule_error(&sid, e))?;
    let recent_actions = description
        .recent_actions()
        .into_iter()
        .map(|a| RecentAction {
            scheduled_for: a.schedule_time.map(rfc3339),
            started_at: a.actual_time.map(rfc3339),
            workflow_id: a.workflow_id,
        })
        .collect();
    let running_actions =
        description.running_actions().into_iter().map(|a| RunningAction { workflow_id: a.workflow_id }).collect();
    Ok(Json(ScheduleDescription {
        paused: description.paused(),
        note: description.note().map(str::to_owned),
        action_count: description.action_count(),
        missed_catchup_window: description.missed_catchup_window(),
        overlap_skipped: description.overlap_skipped(),
        recent_actions,
        running_actions,
        next_fire_times: description.future_action_times().into_iter().take(10).map(rfc3339).collect(),
        local_preview: next_fires(&definition.trigger, Utc::now(), 10).unwrap_or_default(),
        schedule_id: sid,
    }))
}

/// Body of pause and unpause.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// Why; shown in the Temporal Web UI and in `describe`.
    #[serde(default)]
    pub note: Option<String>,
}

/// A schedule paused or unpaused.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PauseAnswer {
    /// `tf:{definition id}`.
    pub schedule_id: String,
    /// Its state now.
    pub paused: bool,
    /// The note recorded with it.
    pub note: String,
}

/// Pause a definition's schedule
#[utoipa::path(post, path = "/api/v1/definitions/{id}/schedule/pause", operation_id = "pause_schedule", tag = "schedules", params(IdPath),
    request_body(content = ref("#/components/schemas/NoteRequest"), description = "Optional; an empty body is `{}`"),
    responses(
        (status = 200, description = "Paused", body = ref("#/components/schemas/PauseAnswer")),
        (status = 404, description = "No such definition or schedule"),
        (status = 409, description = "The definition has no cron trigger (`not_cron`)"),
        (status = 503, description = "Temporal is unavailable"),
    ))]
pub async fn pause(
    State(state): State<ApiState>,
    Path(IdPath { id }): Path<IdPath>,
    body: Bytes,
) -> Result<Json<PauseAnswer>, ApiError> {
    let request: NoteRequest = json_body(&body)?;
    let definition = cron_definition(&state, &id).await?;
    Ok(Json(pause_schedule(&state, &definition, request.note).await?))
}

/// Pauses the schedule of a cron definition with `note` (default `paused via taskfactory`):
/// the core of the pause route and of `POST /api/v1/fleet/pause`.
pub async fn pause_schedule(
    state: &ApiState,
    definition: &ActivityDefinition,
    note: Option<String>,
) -> Result<PauseAnswer, ApiError> {
    let sid = schedule_id(&definition.id);
    let note = note.unwrap_or_else(|| "paused via taskfactory".to_owned());
    state
        .temporal
        .get_schedule_handle(sid.clone())
        .pause(Some(note.clone()), PauseScheduleOptions::default())
        .await
        .map_err(|e| schedule_error(&sid, e))?;
    tracing::info!(schedule = %sid, note = %note, "schedule paused");
    Ok(PauseAnswer { schedule_id: sid, paused: true, note })
}

/// Unpause a definition's schedule
#[utoipa::path(post, path = "/api/v1/definitions/{id}/schedule/unpause", operation_id = "unpause_schedule", tag = "schedules", params(IdPath),
    request_body(content = ref("#/components/schemas/NoteRequest"), description = "Optional; an empty body is `{}`"),
    responses(
        (status = 200, description = "Unpaused", body = ref("#/components/schemas/PauseAnswer")),
        (status = 404, description = "No such definition or schedule"),
        (status = 409, description = "No cron trigger (`not_cron`), or the definition is disabled (`definition_disabled`)"),
        (status = 503, description = "Temporal is unavailable"),
    ))]
pub async fn unpause(
    State(state): State<ApiState>,
    Path(IdPath { id }): Path<IdPath>,
    body: Bytes,
) -> Result<Json<PauseAnswer>, ApiError> {
    let request: NoteRequest = json_body(&body)?;
    let definition = cron_definition(&state, &id).await?;
    Ok(Json(unpause_schedule(&state, &definition, request.note).await?))
}

/// Unpauses the schedule of a cron definition with `note` (default `unpaused via
/// taskfactory`); refuses a disabled definition (`definition_disabled`), whose schedule stays
/// paused until it is enabled. The core of the unpause route and of `POST /api/v1/fleet/resume`.
pub async fn unpause_schedule(
    state: &ApiState,
    definition: &ActivityDefinition,
    note: Option<String>,
) -> Result<PauseAnswer, ApiError> {
    if !definition.enabled {
        return Err(ApiError::Conflict {
            code: "definition_disabled",
            message: format!("definition {} is disabled: enable it to unpause", definition.id),
        });
    }
    let sid = schedule_id(&definition.id);
    let note = note.unwrap_or_else(|| "unpaused via taskfactory".to_owned());
    state
        .temporal
        .get_schedule_handle(sid.clone())
        .unpause(Some(note.clone()), UnpauseScheduleOptions::default())
        .await
        .map_err(|e| schedule_error(&sid, e))?;
    tracing::info!(schedule = %sid, note = %note, "schedule unpaused");
    Ok(PauseAnswer { schedule_id: sid, paused: false, note })
}

/// A schedule triggered.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ScheduleTriggered {
    /// `tf:{definition id}`.
    pub schedule_id: String,
    /// Always `true`.
    pub triggered: bool,
}

/// Run a definition's schedule now
///
/// One run now, under the schedule's overlap policy.
#[utoipa::path(post, path = "/api/v1/definitions/{id}/schedule/trigger", operation_id = "trigger_schedule", tag = "schedules", params(IdPath),
    responses(
        (status = 202, description = "Temporal took the request", body = ref("#/components/schemas/ScheduleTriggered")),
        (status = 404, description = "No such definition or schedule"),
        (status = 409, description = "The definition has no cron trigger (`not_cron`)"),
        (status = 503, description = "Temporal is unavailable"),
    ))]
pub async fn trigger(
    State(state): State<ApiState>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<(StatusCode, Json<ScheduleTriggered>), ApiError> {
    let definition = cron_definition(&state, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(trigger_schedule(&state, &definition).await?)))
}

/// Fires the schedule of a cron definition now, under its overlap policy: the core of the
/// trigger route and of `POST /api/v1/fleet/trigger` for cron definitions.
pub async fn trigger_schedule(
    state: &ApiState,
    definition: &ActivityDefinition,
) -> Result<ScheduleTriggered, ApiError> {
    let sid = schedule_id(&definition.id);
    state
        .temporal
        .get_schedule_handle(sid.clone())
        .trigger(ScheduleOverlapPolicy::Unspecified, TriggerScheduleOptions::default())
        .await
        .map_err(|e| schedule_error(&sid, e))?;
    tracing::info!(schedule = %sid, "schedule triggered");
    Ok(ScheduleTriggered { schedule_id: sid, triggered: true })
}

/// Body of a backfill.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// Start of the range (RFC 3339, inclusive).
    pub start: Option<DateTime<Utc>>,
    /// End of the range (RFC 3339, inclusive).
    pub end: Option<DateTime<Utc>>,
}

/// A backfill requested.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BackfillAnswer {
    /// `tf:{definition id}`.
    pub schedule_id: String,
    /// The slots in the range (RFC 3339): one run each.
    pub slots: Vec<String>,
}

/// Backfill a definition's schedule
///
/// One run per slot in `[start, end]`, each with its own workflow id (the slot time), whatever
/// the overlap policy; at most 1,000 slots.
#[utoipa::path(post, path = "/api/v1/definitions/{id}/schedule/backfill", operation_id = "backfill_schedule", tag = "schedules", params(IdPath),
    request_body(content = ref("#/components/schemas/BackfillRequest")),
    responses(
        (status = 202, description = "Temporal took the request", body = ref("#/components/schemas/BackfillAnswer")),
        (status = 404, description = "No such definition or schedule"),
        (status = 409, description = "The definition has no cron trigger (`not_cron`)"),
        (status = 422, description = "`start` or `end` missing, out of order, or the range holds too many slots"),
        (status = 503, description = "Temporal is unavailable"),
    ))]
pub async fn backfill(
    State(state): State<ApiState>,
    Path(IdPath { id }): Path<IdPath>,
    body: Bytes,
) -> Result<(StatusCode, Json<BackfillAnswer>), ApiError> {
    let request: BackfillRequest = json_body(&body)?;
    let range = backfill_range(request.start, request.end)?;
    let definition = cron_definition(&state, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(backfill_schedule(&state, &definition, range).await?)))
}

/// A checked backfill range: `(start, end)`, both inclusive, `end` after `start`.
pub type BackfillRange = (DateTime<Utc>, DateTime<Utc>);

/// Checks a backfill's `start` and `end` (errors name the field).
pub fn backfill_range(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Result<BackfillRange, ApiError> {
    let start = start.ok_or_else(|| ApiError::field("start", "required (RFC 3339)"))?;
    let end = end.ok_or_else(|| ApiError::field("end", "required (RFC 3339)"))?;
    check_instant(&start).map_err(|m| ApiError::field("start", m))?;
    check_instant(&end).map_err(|m| ApiError::field("end", m))?;
    if end <= start {
        return Err(ApiError::field("end", "must be after start"));
    }
    Ok((start, end))
}

/// Backfills the schedule of a cron definition over `range`: one run per slot, at most
/// [`MAX_BACKFILL_SLOTS`]. The core of the backfill route and of `POST /api/v1/fleet/backfill`.
pub async fn backfill_schedule(
    state: &ApiState,
    definition: &ActivityDefinition,
    (start, end): BackfillRange,
) -> Result<BackfillAnswer, ApiError> {
    // Count the slots locally first, so a typo in the range cannot start a flood of runs.
    let probe = next_fires(&definition.trigger, start - chrono::Duration::seconds(1), MAX_BACKFILL_SLOTS + 1)
        .map_err(|m| ApiError::field("trigger.cron", m))?;
    let slots: Vec<String> = probe.iter().filter(|f| f.utc <= end).map(|f| rfc3339(f.utc.into())).collect();
    if slots.len() > MAX_BACKFILL_SLOTS {
        return Err(ApiError::field("end", format!("the range holds more than {MAX_BACKFILL_SLOTS} slots; split it")));
    }
    let sid = schedule_id(&definition.id);
    // Temporal's backfill range is exclusive of its start: widen it by a second.
    let range = ScheduleBackfill::new(SystemTime::from(start - chrono::Duration::seconds(1)), SystemTime::from(end))
        .overlap_policy(ScheduleOverlapPolicy::AllowAll)
        .build();
    state
        .temporal
        .get_schedule_handle(sid.clone())
        .backfill([range], BackfillScheduleOptions::default())
        .await
        .map_err(|e| schedule_error(&sid, e))?;
    tracing::info!(schedule = %sid, slots = slots.len(), "backfill requested");
    Ok(BackfillAnswer { schedule_id: sid, slots })
}

/// What the reconciler repaired.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ReconcileAnswer {
    /// One per schedule created, updated or deleted; empty when nothing drifted.
    pub repairs: Vec<Repair>,
}

/// Reconcile schedules with definitions
///
/// Repairs drift: missing schedules are created, stale ones updated, orphaned ones deleted.
#[utoipa::path(post, path = "/api/v1/schedules/reconcile", operation_id = "reconcile_schedules", tag = "schedules",
    responses(
        (status = 200, description = "The repairs made", body = ref("#/components/schemas/ReconcileAnswer")),
        (status = 503, description = "Temporal or Postgres is unavailable"),
    ))]
pub async fn reconcile(State(state): State<ApiState>) -> Result<Json<ReconcileAnswer>, ApiError> {
    let repairs = schedules::reconcile(&state.temporal, &state.store, &state.task_queue)
        .await
        .map_err(|e| ApiError::Unavailable(format!("{e:#}")))?;
    Ok(Json(ReconcileAnswer { repairs }))
}
