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
            let last = taken.last().cloned();
            TriggerInfo {
                kind: RunTrigger::Event,
                key: taken.first().map(TriggerEvent::default_dedupe_key),
                payload: last.as_ref().map(|e| e.payload.clone()).unwrap_or_default(),
                event: last,
                events: taken,
                scheduled_for: None,
            }
        }
        Some(event) => {
            if let Some(expr) = &definition.trigger.filter {
                let holds = Templates::new()
                    .eval_condition(expr, &json!({"event": event}))
                    .map_err(|m| ApiError::field("trigger.filter", m))?;
                filter = Some(FilterCheck { expression: expr.clone(), holds });
            }
            let key = event.default_dedupe_key();
            TriggerInfo {
                kind: RunTrigger::Event,
                key: Some(key),
                events: Vec::new(),
                payload: event.payload.clone(),
                event: Some(event),
                scheduled_for: None,
            }
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
    let old = state.store.load_for_run(&id, Some(from)).await?;
    let new = state.store.load_for_run(&id, to).await?;
    let dependencies = output_dependencies(&[&old, &new]);
    let mut triggers = Vec::new();
    for run in state.store.recorded_triggers(id.as_str(), last).await? {
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
    for (when, event) in state.store.filtered_events(id.as_str(), last).await? {
        let Ok(event) = serde_json::from_value::<TriggerEvent>(event) else { continue };
        let key = event.default_dedupe_key();
        let workflow_id = event_workflow_id(&id, &key);
        let trigger = TriggerInfo {
            kind: RunTrigger::Event,
            key: Some(key),
            events: Vec::new(),
            payload: event.payload.clone(),
            event: Some(event),
            scheduled_for: None,
        };
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
    let summary = BehaviourSummary {
        replayed: triggers.len(),
        differing: triggers.iter().filter(|t| t.differs()).count(),
        fire_changes: triggers.iter().filter(|t| t.fire_change()).count(),
        tasks_added: triggers.iter().map(|t| t.added.len()).sum(),
        tasks_removed: triggers.iter().map(|t| t.removed.len()).sum(),
        tasks_changed: triggers.iter().map(|t| t.changed.len()).sum(),
    };
    Ok(Json(BehaviourDiffAnswer { definition_id: id, from: old.version, to: new.version, summary, triggers }))
}

/// Most tasks a dry-run or a replayed plan may hold (the worker's default per-run limit).
const MAX_REPLAY_TASKS: usize = 50_000;
