//! Schedule controls of cron definitions: describe, pause, unpause, trigger now, backfill,
//! and the reconciler on demand.

use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use taskfactory_schemas::definition::TriggerKind;
use taskfactory_schemas::ids::schedule_id;
use taskfactory_schemas::preview::next_fires;
use temporalio_client::schedules::{
    BackfillScheduleOptions, PauseScheduleOptions, ScheduleBackfill, ScheduleError, ScheduleOverlapPolicy, TriggerScheduleOptions,
    UnpauseScheduleOptions,
};
use temporalio_client::tonic::Code;

use super::definitions::path_id;
use super::json_body;
use crate::ApiState;
use crate::error::ApiError;
use crate::schedules::{self, rfc3339};

/// Most slots one backfill may start.
pub const MAX_BACKFILL_SLOTS: usize = 1000;

fn schedule_error(id: &str, e: ScheduleError) -> ApiError {
    match e {
        ScheduleError::Rpc(status) if status.code() == Code::NotFound => ApiError::NotFound(format!("schedule {id:?}")),
        other => ApiError::Unavailable(format!("temporal: {other}")),
    }
}

/// Loads a definition and checks it is a cron definition.
async fn cron_definition(state: &ApiState, raw_id: &str) -> Result<taskfactory_schemas::ActivityDefinition, ApiError> {
    let id = path_id(raw_id)?;
    let record = state.store.get_definition(id.as_str()).await?;
    if record.definition.trigger.kind != TriggerKind::Cron {
        return Err(ApiError::Conflict { code: "not_cron", message: format!("definition {id} has no cron trigger, so no schedule") });
    }
    Ok(record.definition)
}

/// `GET /api/v1/definitions/{id}/schedule`: state, counters, recent and running actions, the
/// next 10 fire times as Temporal computes them, and the local preview beside them.
pub async fn describe(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let definition = cron_definition(&state, &id).await?;
    let sid = schedule_id(&definition.id);
    let description = state.temporal.get_schedule_handle(sid.clone()).describe(Default::default()).await.map_err(|e| schedule_error(&sid, e))?;
    let recent: Vec<Value> = description
        .recent_actions()
        .into_iter()
        .map(|a| json!({"scheduled_for": a.schedule_time.map(rfc3339), "started_at": a.actual_time.map(rfc3339), "workflow_id": a.workflow_id}))
        .collect();
    let running: Vec<Value> = description.running_actions().into_iter().map(|a| json!({"workflow_id": a.workflow_id})).collect();
    let future: Vec<String> = description.future_action_times().into_iter().take(10).map(rfc3339).collect();
    Ok(Json(json!({
        "schedule_id": sid,
        "paused": description.paused(),
        "note": description.note(),
        "action_count": description.action_count(),
        "missed_catchup_window": description.missed_catchup_window(),
        "overlap_skipped": description.overlap_skipped(),
        "recent_actions": recent,
        "running_actions": running,
        "next_fire_times": future,
        "local_preview": next_fires(&definition.trigger, Utc::now(), 10).unwrap_or_default(),
    })))
}

/// Body of pause and unpause.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// Why; shown in the Temporal Web UI and in `describe`.
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /api/v1/definitions/{id}/schedule/pause`.
pub async fn pause(State(state): State<ApiState>, Path(id): Path<String>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let request: NoteRequest = json_body(&body)?;
    let definition = cron_definition(&state, &id).await?;
    let sid = schedule_id(&definition.id);
    let note = request.note.unwrap_or_else(|| "paused via taskfactory".to_owned());
    state.temporal.get_schedule_handle(sid.clone()).pause(Some(note.clone()), PauseScheduleOptions::default()).await.map_err(|e| schedule_error(&sid, e))?;
    tracing::info!(schedule = %sid, note = %note, "schedule paused");
    Ok(Json(json!({"schedule_id": sid, "paused": true, "note": note})))
}

/// `POST /api/v1/definitions/{id}/schedule/unpause`.
pub async fn unpause(State(state): State<ApiState>, Path(id): Path<String>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let request: NoteRequest = json_body(&body)?;
    let definition = cron_definition(&state, &id).await?;
    if !definition.enabled {
        return Err(ApiError::Conflict { code: "definition_disabled", message: format!("definition {} is disabled: enable it to unpause", definition.id) });
    }
    let sid = schedule_id(&definition.id);
    let note = request.note.unwrap_or_else(|| "unpaused via taskfactory".to_owned());
    state.temporal.get_schedule_handle(sid.clone()).unpause(Some(note.clone()), UnpauseScheduleOptions::default()).await.map_err(|e| schedule_error(&sid, e))?;
    tracing::info!(schedule = %sid, note = %note, "schedule unpaused");
    Ok(Json(json!({"schedule_id": sid, "paused": false, "note": note})))
}

/// `POST /api/v1/definitions/{id}/schedule/trigger`: one run now, under the schedule's
/// overlap policy.
pub async fn trigger(State(state): State<ApiState>, Path(id): Path<String>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let definition = cron_definition(&state, &id).await?;
    let sid = schedule_id(&definition.id);
    state
        .temporal
        .get_schedule_handle(sid.clone())
        .trigger(ScheduleOverlapPolicy::Unspecified, TriggerScheduleOptions::default())
        .await
        .map_err(|e| schedule_error(&sid, e))?;
    Ok((StatusCode::ACCEPTED, Json(json!({"schedule_id": sid, "triggered": true}))))
}

/// Body of a backfill.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// Start of the range (RFC 3339, inclusive).
    pub start: Option<DateTime<Utc>>,
    /// End of the range (RFC 3339, inclusive).
    pub end: Option<DateTime<Utc>>,
}

/// `POST /api/v1/definitions/{id}/schedule/backfill`: one run per slot in `[start, end]`, each
/// with its own workflow id (the slot time), whatever the overlap policy.
pub async fn backfill(State(state): State<ApiState>, Path(id): Path<String>, body: Bytes) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: BackfillRequest = json_body(&body)?;
    let start = request.start.ok_or_else(|| ApiError::field("start", "required (RFC 3339)"))?;
    let end = request.end.ok_or_else(|| ApiError::field("end", "required (RFC 3339)"))?;
    if end <= start {
        return Err(ApiError::field("end", "must be after start"));
    }
    let definition = cron_definition(&state, &id).await?;
    // Count the slots locally first, so a typo in the range cannot start a flood of runs.
    let probe = next_fires(&definition.trigger, start - chrono::Duration::seconds(1), MAX_BACKFILL_SLOTS + 1).map_err(|m| ApiError::field("trigger.cron", m))?;
    let slots: Vec<String> = probe.iter().filter(|f| f.utc <= end).map(|f| rfc3339(f.utc.into())).collect();
    if slots.len() > MAX_BACKFILL_SLOTS {
        return Err(ApiError::field("end", format!("the range holds more than {MAX_BACKFILL_SLOTS} slots; split it")));
    }
    let sid = schedule_id(&definition.id);
    // Temporal's backfill range is exclusive of its start: widen it by a second.
    let range = ScheduleBackfill::new(SystemTime::from(start - chrono::Duration::seconds(1)), SystemTime::from(end))
        .overlap_policy(ScheduleOverlapPolicy::AllowAll)
        .build();
    state.temporal.get_schedule_handle(sid.clone()).backfill([range], BackfillScheduleOptions::default()).await.map_err(|e| schedule_error(&sid, e))?;
    tracing::info!(schedule = %sid, slots = slots.len(), "backfill requested");
    Ok((StatusCode::ACCEPTED, Json(json!({"schedule_id": sid, "slots": slots}))))
}

/// `POST /api/v1/schedules/reconcile`: repairs drift between definitions and schedules.
pub async fn reconcile(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let repairs = schedules::reconcile(&state.temporal, &state.store, &state.task_queue).await.map_err(|e| ApiError::Unavailable(format!("{e:#}")))?;
    Ok(Json(json!({"repairs": repairs})))
}
