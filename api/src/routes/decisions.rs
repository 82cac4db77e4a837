//! Why did (or didn't) a definition start a run? The trigger decision log, and the DST-aware
//! preview of a cron trigger's next fires.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use taskfactory_activities::store::DecisionFilter;
use taskfactory_schemas::DefinitionId;
use taskfactory_schemas::decisions::TriggerDecision;
use taskfactory_schemas::definition::TriggerKind;
use taskfactory_schemas::preview::{DstWarning, Fire, preview as preview_fires};
use utoipa::IntoParams;

use super::extract::{IdPath, parse_version, path_id, query_number};
use crate::ApiState;
use crate::error::ApiError;
use crate::schedule_observer::{ScheduleCounters, observe_schedule};

/// Query of the decision log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DecisionQuery {
    /// Only this outcome: `fired`, `fired_zero_tasks`, `skipped`, `deduplicated`, `filtered`, `error`.
    pub outcome: Option<String>,
    /// Only this source: `schedule`, `event`, `manual`.
    pub source: Option<String>,
    /// The `next_before` of the previous page.
    pub before: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<String>,
}

/// A definition's decision log.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct DecisionLog {
    /// The definition.
    pub definition_id: DefinitionId,
    /// Newest first.
    pub decisions: Vec<TriggerDecision>,
    /// How many decisions of each outcome the definition has (all pages).
    pub counts: BTreeMap<String, i64>,
    /// How many of the definition's runs are in each status: `running`, `completed`,
    /// `failed`, `cancelled`, `terminated`, `timed_out`.
    pub run_outcomes: BTreeMap<String, i64>,
    /// Cron definitions: Temporal's schedule counters, as just observed.
    pub schedule: Option<ScheduleCounters>,
    /// Cron definitions: why the schedule could not be observed (the log is still answered).
    pub observer_error: Option<String>,
    /// Pass as `before` for the next page; `null` on the last one.
    pub next_before: Option<i64>,
}

fn parse_wire<T: serde::de::DeserializeOwned>(
    field: &str,
    raw: &Option<String>,
    allowed: &str,
) -> Result<Option<T>, ApiError> {
    raw.as_deref()
        .map(|v| {
            serde_json::from_value(serde_json::Value::String(v.to_owned()))
                .map_err(|_| ApiError::field(field, format!("{v:?} is not one of {allowed}")))
        })
        .transpose()
}

/// A definition's trigger decisions
///
/// One entry per schedule slot, event and manual trigger: fired, fired_zero_tasks, skipped
/// (overlap, catch-up window, paused), deduplicated (with the earlier run), filtered (with the
/// condition and the values it saw) or error. For cron definitions the schedule is observed
/// first, so slots that started no run are listed as soon as they settle.
#[utoipa::path(get, path = "/api/v1/definitions/{id}/decisions", operation_id = "list_decisions", tag = "definitions", params(IdPath, DecisionQuery),
    responses(
        (status = 200, description = "The decisions, newest first", body = ref("#/components/schemas/DecisionLog")),
        (status = 404, description = "No such definition"),
        (status = 422, description = "A filter is not one of its values"),
    ))]
pub async fn list(
    State(state): State<ApiState>,
    Path(IdPath { id }): Path<IdPath>,
    Query(q): Query<DecisionQuery>,
) -> Result<Json<DecisionLog>, ApiError> {
    let id = path_id(&id)?;
    let filter = DecisionFilter {
        outcome: parse_wire("outcome", &q.outcome, "fired, fired_zero_tasks, skipped, deduplicated, filtered, error")?,
        source: parse_wire("source", &q.source, "schedule, event, manual")?,
        before: query_number("before", &q.before, 1..=i64::MAX)?,
        limit: query_number("limit", &q.limit, 1..=500)?.unwrap_or(50),
    };
    let record = state.store.get_definition(id.as_str()).await?;
    let (schedule, observer_error) = if record.definition.trigger.kind == TriggerKind::Cron {
        match observe_schedule(&state.temporal, &state.store, &state.task_queue, &record.definition, Utc::now()).await {
            Ok(observed) => (observed.counters, None),
            Err(e) => (None, Some(format!("{e:#}"))),
        }
    } else {
        (None, None)
    };
    let decisions = state.store.list_decisions(id.as_str(), &filter).await?;
    let next_before = (decisions.len() as i64 == filter.limit).then(|| decisions.last().map(|d| d.id)).flatten();
    let counts = state.store.decision_counts(id.as_str()).await?.into_iter().collect();
    let run_outcomes = state.store.run_outcome_counts(id.as_str()).await?.into_iter().collect();
    Ok(Json(DecisionLog { definition_id: id, decisions, counts, run_outcomes, schedule, observer_error, next_before }))
}

/// Query of the preview.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// How many fires (default 10, at most 1,000).
    pub count: Option<String>,
    /// Fires strictly after this instant (RFC 3339; default now).
    pub after: Option<String>,
    /// The version to preview (default: the current one).
    pub version: Option<String>,
}

/// The next fires of a cron definition.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PreviewAnswer {
    /// The definition.
    pub definition_id: DefinitionId,
    /// The version previewed.
    pub version: i32,
    /// The trigger's time zone.
    pub timezone: String,
    /// The next fires, in UTC and local time.
    pub fires: Vec<Fire>,
    /// Slots up to the last fire that a daylight-saving change removes (nonexistent local
    /// time) or collapses (repeated local time: one fire, at the later occurrence).
    pub warnings: Vec<DstWarning>,
}

/// Preview a cron definition's next fires
///
/// In UTC and in the trigger's time zone, with a warning for every slot a daylight-saving
/// change removes or collapses. Jitter is not applied.
#[utoipa::path(get, path = "/api/v1/definitions/{id}/preview", operation_id = "preview_fires", tag = "schedules", params(IdPath, PreviewQuery),
    responses(
        (status = 200, description = "The next fires and DST warnings", body = ref("#/components/schemas/PreviewAnswer")),
        (status = 404, description = "No such definition or version"),
        (status = 409, description = "The definition has no cron trigger (`not_cron`)"),
        (status = 422, description = "`count`, `after` or `version` is malformed"),
    ))]
pub async fn preview(
    State(state): State<ApiState>,
    Path(IdPath { id }): Path<IdPath>,
    Query(q): Query<PreviewQuery>,
) -> Result<Json<PreviewAnswer>, ApiError> {
    let id = path_id(&id)?;
    let count = query_number("count", &q.count, 1..=1000)?.unwrap_or(10);
    let after = match q.after.as_deref() {
        Some(raw) => {
            let after = DateTime::parse_from_rfc3339(raw)
                .map_err(|e| ApiError::field("after", format!("{raw:?} is not RFC 3339: {e}")))?
                .with_timezone(&Utc);
            taskfactory_schemas::validate::check_instant(&after).map_err(|m| ApiError::field("after", m))?;
            after
        }
        None => Utc::now(),
    };
    let version = q.version.as_deref().map(|raw| parse_version("version", raw)).transpose()?;
    let loaded = state.store.load_for_run(&id, version).await?;
    let trigger = &loaded.definition.trigger;
    if trigger.kind != TriggerKind::Cron {
        return Err(ApiError::Conflict {
            code: "not_cron",
            message: format!("definition {id} has no cron trigger, so no fires to preview"),
        });
    }
    let made = preview_fires(trigger, after, count as usize).map_err(|m| ApiError::field("trigger.cron", m))?;
    Ok(Json(PreviewAnswer {
        definition_id: id,
        version: loaded.version,
        timezone: trigger.timezone.clone().unwrap_or_else(|| "UTC".to_owned()),
        fires: made.fires,
        warnings: made.warnings,
    }))
}
