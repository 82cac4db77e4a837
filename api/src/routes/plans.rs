//! `POST /api/v1/definitions/{id}/dry-run`: what would this definition do?
//!
//! Resolves the context (the real sources, read-only, unless overridden with sample values),
//! runs the same planner a real run uses, and answers the plan with its explanation: for every
//! template and item, `spawn` or `skip` and why, and the rendered params. Nothing is started
//! and nothing is written.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use taskfactory_activities::context;
use taskfactory_schemas::plan::{Outcome, Plan, PlanRequest, plan};
use taskfactory_schemas::{DefinitionId, TriggerEvent};
use taskfactory_schemas::run::{RunTrigger, TriggerInfo};
use taskfactory_schemas::template::Templates;

use super::definitions::{IdPath, path_id};
use super::json_body;
use crate::ApiState;
use crate::error::ApiError;

/// Body of a dry-run (all optional).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunRequest {
    /// A sample event: the run is planned as that event's run.
    #[serde(default)]
    pub event: Option<TriggerEvent>,
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
#[derive(Debug, Serialize, JsonSchema)]
pub struct FilterCheck {
    /// The definition's `trigger.filter`.
    pub expression: String,
    /// Its value for the sample event.
    pub holds: bool,
}

/// How many tasks the plan spawns, skips and defers.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DryRunSummary {
    /// Tasks that would start.
    pub spawn: usize,
    /// Tasks a `when` condition skips.
    pub skip: usize,
    /// Templates planned once their dependencies finish.
    pub deferred: usize,
}

/// What a run would do.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DryRunAnswer {
    /// The definition.
    pub definition_id: DefinitionId,
    /// The version planned.
    pub version: i32,
    /// The trigger as the run would see it.
    pub trigger: TriggerInfo,
    /// With a sample event and a `trigger.filter`: whether it holds; `null` otherwise.
    pub filter: Option<FilterCheck>,
    /// The resolved context, by source name.
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
pub async fn dry_run(State(state): State<ApiState>, Path(IdPath { id }): Path<IdPath>, body: Bytes) -> Result<Json<DryRunAnswer>, ApiError> {
    let request: DryRunRequest = json_body(&body)?;
    let id = path_id(&id)?;
    let loaded = state.store.load_for_run(&id, request.version).await?;
    let definition = &loaded.definition;
    let mut filter = None;
    let trigger = match request.event {
        Some(event) => {
            if let Some(expr) = &definition.trigger.filter {
                let holds = Templates::new().eval_condition(expr, &json!({"event": event})).map_err(|m| ApiError::field("trigger.filter", m))?;
                filter = Some(FilterCheck { expression: expr.clone(), holds });
            }
            let key = event.default_dedupe_key();
            TriggerInfo { kind: RunTrigger::Event, key: Some(key), payload: event.payload.clone(), event: Some(event), scheduled_for: None }
        }
        None => TriggerInfo::manual(None, request.payload),
    };
    let resolved = context::resolve(&state.context, &loaded, &trigger, &request.context, context::ContextLimits::default())
        .await
        .map_err(|e| if e.permanent { ApiError::field(e.path, e.message) } else { ApiError::Unavailable(e.to_string()) })?;
    let run_workflow_id = request.run_workflow_id.unwrap_or_else(|| format!("tf:{id}:dry-run"));
    let made = plan(&PlanRequest {
        definition,
        version: loaded.version,
        run_workflow_id: &run_workflow_id,
        context: &resolved,
        trigger: &trigger,
        max_tasks: 50_000,
    })
    .map_err(|e| ApiError::Invalid(vec![e]))?;
    let count = |outcome| made.decisions.iter().filter(|d| d.outcome == outcome).count();
    let summary = DryRunSummary { spawn: count(Outcome::Spawn), skip: count(Outcome::Skip), deferred: count(Outcome::Deferred) };
    Ok(Json(DryRunAnswer { definition_id: id, version: loaded.version, trigger, filter, context: resolved, summary, plan: made }))
}
