//! `POST /api/v1/definitions/{id}/dry-run`: what would this definition do? And
//! `GET /api/v1/definitions/{id}/diff/behaviour`: what would a new version have done differently?
//!
//! Resolves the context (the real sources, read-only, unless overridden with sample values),
//! runs the same planner a real run uses, and answers the plan with its explanation: for every
//! template and item, `spawn` or `skip` and why, and the rendered params. Nothing is started
//! and nothing is written.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use taskfactory_activities::auth_store::Principal;
use taskfactory_activities::context;
use taskfactory_schemas::behaviour::{Recorded, TriggerReplay, output_dependencies, replay_both};
use taskfactory_schemas::ids::event_workflow_id;
use taskfactory_schemas::plan::{Outcome, Plan, PlanRequest, plan};
use taskfactory_schemas::run::{RunTrigger, TriggerInfo};
use taskfactory_schemas::template::Templates;
use taskfactory_schemas::{DefinitionId, TriggerEvent};

use utoipa::IntoParams;

use super::extract::{IdPath, from_version, parse_version, path_id, query_number};
use super::json_body;
use crate::ApiState;
use crate::auth::sees_sensitive;
use crate::error::ApiError;

/// Body of a dry-run (all optional).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunRequest {
    /// A sample event: the run is planned as that event's run.
    #[serde(default)]
    pub event: Option<TriggerEvent>,
    /// Sample events for a debounced or batched trigger: the run is planned as the run of
    /// those the filter takes, in order (`trigger.events`; `trigger.event` is the last).
    #[serde(default)]
    pub events: Vec<TriggerEvent>,
    /// The payload of a manual run (ignored with `event`).
    #[serde(default)]
    pub payload: Value,
    /// Values for context sources by name, used instead of resolving them.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// The version to plan (default: the current one).
    #[serde(default)]
    pub version: Option<i32>,
    /// The run workflow id task ids are derived from (default `tf:{id}:dry-run`).
    #[serde(default)]
    pub run_workflow_id: Option<String>,
}

/// Whether the trigger's filter holds for the sample event.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct FilterCheck {
    /// The definition's `trigger.filter`.
    pub expression: String,
    /// Its value for the sample event.
    pub holds: bool,
}

/// How many tasks the plan spawns, skips and defers.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct DryRunSummary {
    /// Tasks that would start.
    pub spawn: usize,
    /// Tasks a `when` condition skips.
    pub skip: usize,
    /// Templates planned once their dependencies finish.
    pub deferred: usize,
}

/// What a run would do.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct DryRunAnswer {
    /// The definition.
    pub definition_id: DefinitionId,
    /// The version planned.
    pub version: i32,
    /// The trigger as the run would see it.
    pub trigger: TriggerInfo,
    /// With a sample event and a `trigger.filter`: whether it holds; `null` otherwise.
    pub filter: Option<FilterCheck>,
    /// The resolved context, by source name (`sensitive` sources' values for admin keys only).
    pub context: Value,
    /// Counts of the plan's decisions.
    pub summary: DryRunSummary,
    /// The plan, with the reason for every spawn and skip.
    pub plan: Plan,
}

/// Dry-run a definition
///
/// Resolves the context (read-only, or from the sample values given), plans with the same
/// planner a run uses, and answers the plan with its explanation. Nothing is started or
/// written.
#[utoipa::path(post, path = "/api/v1/definitions/{id}/dry-run", operation_id = "dry_run", tag = "definitions", params(IdPath),
    request_body(content = ref("#/components/schemas/DryRunRequest"), description = "Optional; an empty body is `{}`"),
    responses(
        (status = 200, description = "The plan with its explanation", body = ref("#/components/schemas/DryRunAnswer")),
        (status = 404, description = "No such definition or version"),
        (status = 422, description = "Bad body, or a context source or template fails (with its path)"),
        (status = 503, description = "A context source is unavailable"),
    ))]
pub async fn dry_run(
    State(state): State<ApiState>,
    principal: Option<Extension<Principal>>,
    Path(IdPath { id }): Path<IdPath>,
    body: Bytes,
) -> Result<Json<DryRunAnswer>, ApiError> {
    let request: DryRunRequest = json_body(&body)?;
    let id = path_id(&id)?;
    let loaded = state.store.load_for_run(&id, request.version).await?;
    let definition = &loaded.definition;
    let mut filter = None;
    let trigger = match request.event {
        None if !request.events.is_empty() => {
            let mut taken = Vec::new();
            for (i, event) in request.events.into_iter().enumerate() {
                let holds = match &definition.trigger.filter {
                    None => true,
                    Some(expr) => Templates::new()
                        .eval_condition(expr, &json!({"event": event}))
                        .map_err(|m| ApiError::field(format!("events[{i}]"), format!("trigger.filter: {m}")))?,
                };
                if holds {
                    taken.push(event);
                }
            }
            if let Some(expr) = &definition.trigger.filter {
                filter = Some(FilterCheck { expression: expr.clone(), holds: !taken.is_empty() });
            }
            grouped_trigger(taken)
        }
        Some(event) => {
            if let Some(expr) = &definition.trigger.filter {
                let holds = Templates::new()
                    .eval_condition(expr, &json!({"event": event}))
                    .map_err(|m| ApiError::field("trigger.filter", m))?;
                filter = Some(FilterCheck { expression: expr.clone(), holds });
            }
            event_trigger(event)
        }
        None => TriggerInfo::manual(None, request.payload),
    };
    let resolved =
        context::resolve(&state.context, &loaded, &trigger, &request.context, context::ContextLimits::default())
            .await
            .map_err(|e| {
                if e.permanent { ApiError::field(e.path, e.message) } else { ApiError::Unavailable(e.to_string()) }
            })?;
    let run_workflow_id = request.run_workflow_id.unwrap_or_else(|| format!("tf:{id}:dry-run"));
    let made = plan(&PlanRequest {
        definition,
        version: loaded.version,
        run_workflow_id: &run_workflow_id,
        context: &resolved,
        trigger: &trigger,
        max_tasks: MAX_REPLAY_TASKS,
    })
    .map_err(|e| ApiError::Invalid(vec![e]))?;
    let count = |outcome| made.decisions.iter().filter(|d| d.outcome == outcome).count();
    let summary =
        DryRunSummary { spawn: count(Outcome::Spawn), skip: count(Outcome::Skip), deferred: count(Outcome::Deferred) };
    let mut context = resolved;
    if !sees_sensitive(principal.as_deref()) {
        definition.redact_sensitive(&mut context);
    }
    Ok(Json(DryRunAnswer { definition_id: id, version: loaded.version, trigger, filter, context, summary, plan: made }))
}

/// Query of the behavioural diff.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BehaviourQuery {
    /// The old version (required).
    pub from: Option<String>,
    /// The new version (default: the current one).
    pub to: Option<String>,
    /// How many recorded runs, and how many filtered events, to replay, newest first (default
    /// 10 each, at most 100).
    pub last: Option<String>,
}

/// Body of `POST /api/v1/definitions/{id}/diff/behaviour`: the query's fields, and sample events.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BehaviourRequest {
    /// The old version (required).
    pub from: Option<i32>,
    /// The new version (default: the current one).
    #[serde(default)]
    pub to: Option<i32>,
    /// How many recorded runs, and how many filtered events, to replay as well (default 10
    /// each, at most 100; 0 replays the samples only).
    #[serde(default)]
    pub last: Option<i64>,
    /// Sample events (at most 1,000), replayed through both versions: each as its own
    /// trigger, or with `group` as one debounced or batched run's (`trigger.events`, in order).
    #[serde(default)]
    pub events: Vec<TriggerEvent>,
    /// Replay `events` as one group instead of one trigger each.
    #[serde(default)]
    pub group: bool,
}

/// Totals of a behavioural diff.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct BehaviourSummary {
    /// Recorded triggers replayed.
    pub replayed: usize,
    /// Of those, the ones the two versions treat differently.
    pub differing: usize,
    /// Triggers one version fires on and the other does not.
    pub fire_changes: usize,
    /// Tasks only the new version plans, over all triggers.
    pub tasks_added: usize,
    /// Tasks only the old version plans.
    pub tasks_removed: usize,
    /// Tasks both plan differently.
    pub tasks_changed: usize,
}

/// What two versions would have done with the recorded triggers.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct BehaviourDiffAnswer {
    /// The definition.
    pub definition_id: DefinitionId,
    /// The old version.
    pub from: i32,
    /// The new version.
    pub to: i32,
    /// Totals.
    pub summary: BehaviourSummary,
    /// One per recorded trigger, newest first.
    pub triggers: Vec<TriggerReplay>,
}

/// Behavioural diff of two versions
///
/// Replays the last recorded triggers through both versions' planners: each run's trigger and
/// context snapshot, and each event a filter turned away (with the version's static and
/// trigger context). Shows, per trigger, which tasks would be added, removed or changed, and
/// whether each version fires at all. Nothing is started or written.
#[utoipa::path(get, path = "/api/v1/definitions/{id}/diff/behaviour", operation_id = "behaviour_diff", tag = "definitions", params(IdPath, BehaviourQuery),
    responses(
        (status = 200, description = "Per recorded trigger, what changes", body = ref("#/components/schemas/BehaviourDiffAnswer")),
        (status = 404, description = "No such definition or version"),
        (status = 422, description = "`from` is missing, or `from`, `to` or `last` is malformed"),
    ))]
pub async fn behaviour_diff(
    State(state): State<ApiState>,
    Path(IdPath { id }): Path<IdPath>,
    Query(q): Query<BehaviourQuery>,
) -> Result<Json<BehaviourDiffAnswer>, ApiError> {
    let id = path_id(&id)?;
    let from = from_version(q.from.as_deref())?;
    let to = q.to.as_deref().map(|raw| parse_version("to", raw)).transpose()?;
    let last = query_number("last", &q.last, 1..=100)?.unwrap_or(10);
    Ok(Json(behaviour(&state, id, from, to, last, Vec::new()).await?))
}

/// Behavioural diff of two versions, with sample events
///
/// What `GET` does, and the sample events of the body replayed through both versions too
/// (`recorded: sample_event`, or `sample_events` for a group), with each version's filter.
#[utoipa::path(post, path = "/api/v1/definitions/{id}/diff/behaviour", operation_id = "behaviour_diff_with_samples", tag = "definitions", params(IdPath),
    request_body(content = ref("#/components/schemas/BehaviourRequest")),
    responses(
        (status = 200, description = "Per recorded trigger and sample, what changes", body = ref("#/components/schemas/BehaviourDiffAnswer")),
        (status = 404, description = "No such definition or version"),
        (status = 422, description = "A bad body (with the field's path): `from` missing, `last` or `events` out of range"),
    ))]
pub async fn behaviour_diff_with_samples(
    State(state): State<ApiState>,
    Path(IdPath { id }): Path<IdPath>,
    body: Bytes,
) -> Result<Json<BehaviourDiffAnswer>, ApiError> {
    let request: BehaviourRequest = json_body(&body)?;
    let id = path_id(&id)?;
    let from = request.from.ok_or_else(|| ApiError::field("from", "the old version is required"))?;
    for (field, version) in [("from", Some(from)), ("to", request.to)] {
        if version.is_some_and(|v| v < 1) {
            return Err(ApiError::field(field, "a version is a number from 1"));
        }
    }
    let last = request.last.unwrap_or(10);
    if !(0..=100).contains(&last) {
        return Err(ApiError::field("last", "must be 0 to 100"));
    }
    if request.events.len() > MAX_SAMPLES {
        return Err(ApiError::field("events", format!("at most {MAX_SAMPLES} sample events")));
    }
    let samples = if request.group && !request.events.is_empty() {
        vec![grouped_trigger(request.events)]
    } else {
        request.events.into_iter().map(event_trigger).collect()
    };
    Ok(Json(behaviour(&state, id, from, request.to, last, samples).await?))
}

/// Most sample events one behavioural diff replays.
const MAX_SAMPLES: usize = 1_000;

/// The trigger the run of one event sees.
fn event_trigger(event: TriggerEvent) -> TriggerInfo {
    TriggerInfo {
        kind: RunTrigger::Event,
        key: Some(event.default_dedupe_key()),
        events: Vec::new(),
        payload: event.payload.clone(),
        event: Some(event),
        scheduled_for: None,
    }
}

/// The trigger a debounced or batched run of `events` sees (`event` is the last).
fn grouped_trigger(events: Vec<TriggerEvent>) -> TriggerInfo {
    let last = events.last().cloned();
    TriggerInfo {
        kind: RunTrigger::Event,
        key: events.first().map(TriggerEvent::default_dedupe_key),
        payload: last.as_ref().map(|e| e.payload.clone()).unwrap_or_default(),
        event: last,
        events,
        scheduled_for: None,
    }
}

/// The recorded runs and filtered events (the `last` of each) and the `samples` replayed
/// through versions `from` and `to`.
async fn behaviour(
    state: &ApiState,
    id: DefinitionId,
    from: i32,
    to: Option<i32>,
    last: i64,
    samples: Vec<TriggerInfo>,
) -> Result<BehaviourDiffAnswer, ApiError> {
    let old = state.store.load_for_run(&id, Some(from)).await?;
    let new = state.store.load_for_run(&id, to).await?;
    let dependencies = output_dependencies(&[&old, &new]);
    let mut triggers = Vec::new();
    let recorded_runs = if last > 0 { state.store.recorded_triggers(id.as_str(), last).await? } else { Vec::new() };
    for run in recorded_runs {
        let outputs = if dependencies.is_empty() {
            json!({})
        } else {
            state.store.task_outputs(&run.workflow_id, &dependencies).await?
        };
        let at = run.fired_at.to_rfc3339();
        let recorded = Recorded {
            kind: "run",
            workflow_id: &run.workflow_id,
            at: &at,
            trigger: &run.trigger,
            context: Some(&run.context),
            outputs: &outputs,
        };
        triggers.push(replay_both(&old, &new, &recorded, MAX_REPLAY_TASKS));
    }
    // Events a filter turned away: a wider filter in the new version would fire on them.
    let filtered = if last > 0 { state.store.filtered_events(id.as_str(), last).await? } else { Vec::new() };
    for (when, event) in filtered {
        let Ok(event) = serde_json::from_value::<TriggerEvent>(event) else { continue };
        let trigger = event_trigger(event);
        let workflow_id = event_workflow_id(&id, trigger.key.as_deref().unwrap_or_default());
        let at = when.to_rfc3339();
        let recorded = Recorded {
            kind: "filtered_event",
            workflow_id: &workflow_id,
            at: &at,
            trigger: &trigger,
            context: None,
            outputs: &json!({}),
        };
        triggers.push(replay_both(&old, &new, &recorded, MAX_REPLAY_TASKS));
    }
    triggers.sort_by(|a, b| b.fired_at.cmp(&a.fired_at));
    // Samples come first, in the order given.
    let now = chrono::Utc::now().to_rfc3339();
    let kind = if samples.iter().any(|t| !t.events.is_empty()) { "sample_events" } else { "sample_event" };
    let replayed: Vec<TriggerReplay> = samples
        .iter()
        .map(|trigger| {
            let workflow_id = event_workflow_id(&id, trigger.key.as_deref().unwrap_or_default());
            let recorded =
                Recorded { kind, workflow_id: &workflow_id, at: &now, trigger, context: None, outputs: &json!({}) };
            replay_both(&old, &new, &recorded, MAX_REPLAY_TASKS)
        })
        .collect();
    triggers.splice(0..0, replayed);
    let summary = BehaviourSummary {
        replayed: triggers.len(),
        differing: triggers.iter().filter(|t| t.differs()).count(),
        fire_changes: triggers.iter().filter(|t| t.fire_change()).count(),
        tasks_added: triggers.iter().map(|t| t.added.len()).sum(),
        tasks_removed: triggers.iter().map(|t| t.removed.len()).sum(),
        tasks_changed: triggers.iter().map(|t| t.changed.len()).sum(),
    };
    Ok(BehaviourDiffAnswer { definition_id: id, from: old.version, to: new.version, summary, triggers })
}

/// Most tasks a dry-run or a replayed plan may hold (the worker's default per-run limit).
const MAX_REPLAY_TASKS: usize = 50_000;
