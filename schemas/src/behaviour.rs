//! Behavioural diff: what two versions of a definition would have done with the triggers the
//! definition really received. Each recorded run (its trigger and context snapshot) is planned
//! by both versions, and the task sets are compared by task id — nothing is started.
//!
//! The replay is as faithful as the record allows, and says where it is not: a context source
//! the snapshot lacks is replayed as `null`, and templates planned from upstream outputs use
//! the outputs the recorded run produced.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

use crate::definition::TriggerKind;
use crate::diff::{Change, diff};
use crate::plan::{PlanRequest, PlannedTask, plan, plan_deferred};
use crate::run::{LoadedDefinition, RunTrigger, TriggerInfo};
use crate::template::Templates;

/// What one version does with a recorded trigger.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
pub struct VersionReplay {
    /// The version.
    pub version: i32,
    /// Whether it would start a run (an event filter may turn the trigger away).
    pub fires: bool,
    /// Why not, when it does not fire.
    pub not_fired_because: Option<String>,
    /// Tasks it plans.
    pub tasks: usize,
    /// Planning failed: the run would fail with this error.
    pub error: Option<String>,
}

/// A task in a behavioural diff.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct TaskRef {
    /// `{run}/{template}/{item}`.
    pub task_id: String,
    /// The template.
    pub template_id: String,
    /// The item key.
    pub item_key: String,
    /// Its kind and settings, and rendered params.
    pub task: Value,
}

/// A task both versions plan, differently.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct TaskChange {
    /// `{run}/{template}/{item}`.
    pub task_id: String,
    /// Path by path (`params.amount`, `spec.url`).
    pub changes: Vec<Change>,
}

/// One recorded trigger replayed through both versions.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct TriggerReplay {
    /// The recorded run.
    pub workflow_id: String,
    /// When it fired (RFC 3339).
    pub fired_at: String,
    /// What started it.
    pub trigger_kind: RunTrigger,
    /// The old version's outcome.
    pub from: VersionReplay,
    /// The new version's outcome.
    pub to: VersionReplay,
    /// Tasks only the new version plans.
    pub added: Vec<TaskRef>,
    /// Tasks only the old version plans.
    pub removed: Vec<TaskRef>,
    /// Tasks both plan, with different settings or params.
    pub changed: Vec<TaskChange>,
    /// Tasks both plan identically.
    pub unchanged: usize,
    /// Where the replay is not exact.
    pub warnings: Vec<String>,
}

/// Plans a recorded trigger with one version. `outputs` holds the recorded run's task outputs
/// (`{template: {outputs, output, count}}`) for the templates planned from them.
pub fn replay_version(
    loaded: &LoadedDefinition,
    run_workflow_id: &str,
    trigger: &TriggerInfo,
    context: &Value,
    outputs: &Value,
    max_tasks: usize,
    warnings: &mut Vec<String>,
) -> (VersionReplay, Vec<PlannedTask>) {
    let definition = &loaded.definition;
    let mut out = VersionReplay { version: loaded.version, fires: true, ..Default::default() };
    let recorded_kind = match trigger.kind {
        RunTrigger::Schedule => TriggerKind::Cron,
        RunTrigger::Event => TriggerKind::Event,
        RunTrigger::Manual => TriggerKind::Manual,
    };
    if definition.trigger.kind != recorded_kind && trigger.kind != RunTrigger::Manual {
        warnings.push(format!("version {} has a {:?} trigger; the recorded {} trigger is replayed as it was", loaded.version, definition.trigger.kind, trigger.kind.as_str()));
    }
    if let (Some(filter), Some(event)) = (&definition.trigger.filter, &trigger.event) {
        match Templates::new().eval_condition(filter, &json!({"event": event})) {
            Ok(true) => {}
            Ok(false) => {
                out.fires = false;
                out.not_fired_because = Some(format!("filter false: {}", filter.trim()));
                return (out, Vec::new());
            }
            Err(e) => {
                out.fires = false;
                out.error = Some(format!("trigger.filter: {e}"));
                return (out, Vec::new());
            }
        }
    }
    let mut context = context.clone();
    if let Some(snapshot) = context.as_object_mut() {
        for source in &definition.context {
            if !snapshot.contains_key(&source.name) {
                warnings.push(format!("version {}: context source {:?} is not in the recorded snapshot; replayed as null", loaded.version, source.name));
                snapshot.insert(source.name.clone(), Value::Null);
            }
        }
    }
    let request = PlanRequest { definition, version: loaded.version, run_workflow_id, context: &context, trigger, max_tasks };
    let mut made = match plan(&request) {
        Ok(made) => made,
        Err(e) => {
            out.error = Some(e.to_string());
            return (out, Vec::new());
        }
    };
    for deferred in made.templates.iter().filter(|t| t.deferred).map(|t| t.id.clone()).collect::<Vec<_>>() {
        let template = definition.template(&deferred).map(|t| t.depends_on.clone()).unwrap_or_default();
        let scope: serde_json::Map<String, Value> = template
            .iter()
            .map(|dep| (dep.clone(), outputs.get(dep).cloned().unwrap_or_else(|| json!({"outputs": [], "output": null, "count": 0}))))
            .collect();
        warnings.push(format!("version {}: {deferred:?} is planned from the outputs the recorded run's {} produced", loaded.version, template.join(", ")));
        match plan_deferred(&request, &deferred, &Value::Object(scope), made.tasks.len()) {
            Ok(chunk) => made.tasks.extend(chunk.tasks),
            Err(e) => {
                out.error = Some(e.to_string());
                return (out, Vec::new());
            }
        }
    }
    out.tasks = made.tasks.len();
    (out, made.tasks)
}

fn task_value(task: &PlannedTask) -> Value {
    json!({"spec": task.spec, "params": task.params})
}

fn task_ref(task: &PlannedTask) -> TaskRef {
    TaskRef { task_id: task.task_id.clone(), template_id: task.template_id.clone(), item_key: task.item_key.clone(), task: task_value(task) }
}

/// Compares two plans by task id: (added, removed, changed, unchanged), in plan order.
pub fn compare_tasks(old: &[PlannedTask], new: &[PlannedTask]) -> (Vec<TaskRef>, Vec<TaskRef>, Vec<TaskChange>, usize) {
    let old_by_id: BTreeMap<&str, &PlannedTask> = old.iter().map(|t| (t.task_id.as_str(), t)).collect();
    let new_ids: std::collections::BTreeSet<&str> = new.iter().map(|t| t.task_id.as_str()).collect();
    let (mut added, mut changed, mut unchanged) = (Vec::new(), Vec::new(), 0);
    for task in new {
        match old_by_id.get(task.task_id.as_str()) {
            None => added.push(task_ref(task)),
            Some(before) => {
                let changes = diff(&task_value(before), &task_value(task));
                if changes.is_empty() {
                    unchanged += 1;
                } else {
                    changed.push(TaskChange { task_id: task.task_id.clone(), changes });
                }
            }
        }
    }
    let removed = old.iter().filter(|t| !new_ids.contains(t.task_id.as_str())).map(task_ref).collect();
    (added, removed, changed, unchanged)
}

/// The templates whose recorded outputs a replay of either version needs.
pub fn output_dependencies(versions: &[&LoadedDefinition]) -> Vec<String> {
    let mut deps: Vec<String> = versions
        .iter()
        .flat_map(|l| l.definition.tasks.iter())
        .filter(|t| !t.depends_on.is_empty() && t.uses_task_outputs())
        .flat_map(|t| t.depends_on.iter().cloned())
        .collect();
    deps.sort();
    deps.dedup();
    deps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ActivityDefinition;

    fn loaded(version: i32, doc: Value) -> LoadedDefinition {
        LoadedDefinition { version, definition: serde_json::from_value::<ActivityDefinition>(doc).unwrap() }
    }

    fn doc(threshold: i64, extra: bool) -> Value {
        let mut tasks = vec![json!({"id": "remind", "kind": "noop", "for_each": "invoices", "key": "{{ item.id }}",
                                    "when": format!("item.amount > {threshold}"), "params": {"amount": "{{ item.amount }}"}})];
        if extra {
            tasks.push(json!({"id": "report", "kind": "noop", "params": {"n": 1}}));
        }
        json!({"id": "inv", "name": "Invoices", "trigger": {"kind": "manual"},
               "context": [{"name": "invoices", "kind": "static", "value": []}], "tasks": tasks})
    }

    #[test]
    fn a_lower_threshold_adds_tasks_and_a_new_template_adds_its_task() {
        let context = json!({"invoices": [{"id": "a", "amount": 50}, {"id": "b", "amount": 150}]});
        let trigger = TriggerInfo::manual(None, Value::Null);
        let mut warnings = Vec::new();
        let (v1, old) = replay_version(&loaded(1, doc(100, false)), "tf:inv:manual:x", &trigger, &context, &json!({}), 100, &mut warnings);
        let (v2, new) = replay_version(&loaded(2, doc(10, true)), "tf:inv:manual:x", &trigger, &context, &json!({}), 100, &mut warnings);
        assert_eq!((v1.tasks, v2.tasks), (1, 3), "{v1:?} {v2:?}");
        let (added, removed, changed, unchanged) = compare_tasks(&old, &new);
        let ids: Vec<&str> = added.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(ids, ["tf:inv:manual:x/remind/a", "tf:inv:manual:x/report/_"]);
        assert!(removed.is_empty() && changed.is_empty());
        assert_eq!(unchanged, 1);
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
