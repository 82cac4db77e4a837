//! `POST /api/v1/definitions/{id}/dry-run`: what would this definition do?
//!
//! Resolves the context (the real sources, read-only, unless overridden with sample values),
//! runs the same planner a real run uses, and answers the plan with its explanation: for every
//! template and item, `spawn` or `skip` and why, and the rendered params. Nothing is started
//! and nothing is written.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use taskfactory_activities::context;
use taskfactory_schemas::TriggerEvent;
use taskfactory_schemas::plan::{Outcome, PlanRequest, plan};
use taskfactory_schemas::run::{RunTrigger, TriggerInfo};
use taskfactory_schemas::template::Templates;

use super::definitions::path_id;
use super::json_body;
use crate::ApiState;
use crate::error::ApiError;

/// Body of a dry-run (all optional).
#[derive(Debug, Default, Deserialize)]
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

/// `POST /api/v1/definitions/{id}/dry-run`.
pub async fn dry_run(State(state): State<ApiState>, Path(id): Path<String>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let request: DryRunRequest = json_body(&body)?;
    let id = path_id(&id)?;
    let loaded = state.store.load_for_run(&id, request.version).await?;
    let definition = &loaded.definition;
    let mut filter = Value::Null;
    let trigger = match request.event {
        Some(event) => {
            if let Some(expr) = &definition.trigger.filter {
                let holds = Templates::new().eval_condition(expr, &json!({"event": event})).map_err(|m| ApiError::field("trigger.filter", m))?;
                filter = json!({"expression": expr, "holds": holds});
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
    let summary = json!({"spawn": count(Outcome::Spawn), "skip": count(Outcome::Skip), "deferred": count(Outcome::Deferred)});
    Ok(Json(json!({
        "definition_id": id,
        "version": loaded.version,
        "trigger": trigger,
        "filter": filter,
        "context": resolved,
        "summary": summary,
        "plan": made,
    })))
}
