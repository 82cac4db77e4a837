//! Behavioural diff: what two versions of a definition would have done with the triggers the
//! definition really received. Each recorded run (its trigger and context snapshot) is planned
//! by both versions, and the task sets are compared by task id — nothing is started.
//!
//! Events a version's filter turned away (kept in the decision log) are replayed too: a new
//! version with a wider filter would fire on them. They never resolved a context, so each
//! version gets its own `static` and `trigger` sources and `null` for the others.
//!
//! The replay is as faithful as the record allows, and says where it is not: a context source
//! the snapshot lacks is replayed as `null`, and templates planned from upstream outputs use
//! the outputs the recorded run produced.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::definition::{ContextKind, TriggerKind};
use crate::diff::{Change, diff};
use crate::plan::{PlanRequest, PlannedTask, plan, plan_deferred};
use crate::run::{LoadedDefinition, RunTrigger, TriggerInfo};
use crate::template::Templates;

/// What one version does with a recorded trigger.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskChange {
    /// `{run}/{template}/{item}`.
    pub task_id: String,
    /// Path by path (`params.amount`, `spec.url`).
    pub changes: Vec<Change>,
}

/// One recorded trigger replayed through both versions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TriggerReplay {
    /// `run` (a recorded run with its context snapshot), `filtered_event` (an event the
    /// filter turned away, from the decision log), `sample_event` (an event given to the
    /// diff) or `sample_events` (sample events replayed as one debounced or batched run).
    pub recorded: String,
    /// The recorded run, or the run the event would have started.
    pub workflow_id: String,
    /// When it fired or was filtered (RFC 3339).
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

/// The context a version would resolve without I/O: its `static` values and the `trigger`
/// payload; `sql` and `http` sources are `null` (with a warning).
pub fn local_context(loaded: &LoadedDefinition, trigger: &TriggerInfo, warnings: &mut Vec<String>) -> Value {
    let mut context = serde_json::Map::new();
    for source in &loaded.definition.context {
        let value = match source.kind {
            ContextKind::Static => source.value.clone().unwrap_or(Value::Null),
            ContextKind::Trigger => trigger.payload.clone(),
            ContextKind::Sql | ContextKind::Http => {
                warnings.push(format!(
                    "version {}: context source {:?} was never resolved for this event; replayed as null",
                    loaded.version, source.name
                ));
                Value::Null
            }
        };
        context.insert(source.name.clone(), value);
    }
    Value::Object(context)
}

/// Plans a recorded trigger with one version. `context` is the recorded snapshot (`None`: the
/// version's [`local_context`]). `outputs` holds the recorded run's task outputs
/// (`{template: {outputs, output, count}}`) for the templates planned from them.
pub fn replay_version(
    loaded: &LoadedDefinition,
    run_workflow_id: &str,
    trigger: &TriggerInfo,
    context: Option<&Value>,
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
        warnings.push(format!(
            "version {} has a {:?} trigger; the recorded {} trigger is replayed as it was",
            loaded.version,
            definition.trigger.kind,
            trigger.kind.as_str()
        ));
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
    let mut context = match context {
        Some(snapshot) => snapshot.clone(),
        None => local_context(loaded, trigger, warnings),
    };
    if let Some(snapshot) = context.as_object_mut() {
        for source in &definition.context {
            if !snapshot.contains_key(&source.name) {
                warnings.push(format!(
                    "version {}: context source {:?} is not in the recorded snapshot; replayed as null",
                    loaded.version, source.name
                ));
                snapshot.insert(source.name.clone(), Value::Null);
            }
        }
    }
    let request =
        PlanRequest { definition, version: loaded.version, run_workflow_id, context: &context, trigger, max_tasks };
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
            .map(|dep| {
                (
                    dep.clone(),
                    outputs.get(dep).cloned().unwrap_or_else(|| json!({"outputs": [], "output": null, "count": 0})),
                )
            })
            .collect();
        warnings.push(format!(
            "version {}: {deferred:?} is planned from the outputs the recorded run's {} produced",
            loaded.version,
            template.join(", ")
        ));
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

/// One recorded trigger to replay.
#[derive(Clone, Copy, Debug)]
pub struct Recorded<'a> {
    /// `run` or `filtered_event`.
    pub kind: &'a str,
    /// The run's workflow id (task ids derive from it).
    pub workflow_id: &'a str,
    /// When it fired or was filtered (RFC 3339).
    pub at: &'a str,
    /// The trigger as the run saw it (or would have).
    pub trigger: &'a TriggerInfo,
    /// The context snapshot; `None` for events that never resolved one.
    pub context: Option<&'a Value>,
    /// The recorded run's task outputs, for templates planned from them.
    pub outputs: &'a Value,
}

/// Replays one recorded trigger through both versions and compares their tasks.
pub fn replay_both(
    old: &LoadedDefinition,
    new: &LoadedDefinition,
    recorded: &Recorded<'_>,
    max_tasks: usize,
) -> TriggerReplay {
    let mut warnings = Vec::new();
    let mut replay = |loaded| {
        replay_version(
            loaded,
            recorded.workflow_id,
            recorded.trigger,
            recorded.context,
            recorded.outputs,
            max_tasks,
            &mut warnings,
        )
    };
    let (from, old_tasks) = replay(old);
    let (to, new_tasks) = replay(new);
    let mut seen = std::collections::HashSet::new();
    warnings.retain(|w| seen.insert(w.clone()));
    let (added, removed, changed, unchanged) = compare_tasks(&old_tasks, &new_tasks);
    TriggerReplay {
        recorded: recorded.kind.to_owned(),
        workflow_id: recorded.workflow_id.to_owned(),
        fired_at: recorded.at.to_owned(),
        trigger_kind: recorded.trigger.kind,
        from,
        to,
        added,
        removed,
        changed,
        unchanged,
        warnings,
    }
}

impl TriggerReplay {
    /// Whether one version starts a run (or plans without error) and the other does not.
    pub fn fire_change(&self) -> bool {
        self.from.fires != self.to.fires || self.from.error.is_some() != self.to.error.is_some()
    }

    /// Whether the two versions treat this trigger differently at all.
    pub fn differs(&self) -> bool {
        self.fire_change() || !self.added.is_empty() || !self.removed.is_empty() || !self.changed.is_empty()
    }
}

fn task_value(task: &PlannedTask) -> Value {
    json!({"spec": task.spec, "params": task.params})
}

fn task_ref(task: &PlannedTask) -> TaskRef {
    TaskRef {
        task_id: task.task_id.clone(),
        template_id: task.template_id.clone(),
        item_key: task.item_key.clone(),
        task: task_value(task),
    }
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
        let (v1, old) = replay_version(
            &loaded(1, doc(100, false)),
            "tf:inv:manual:x",
            &trigger,
            Some(&context),
            &json!({}),
            100,
            &mut warnings,
        );
        let (v2, new) = replay_version(
            &loaded(2, doc(10, true)),
            "tf:inv:manual:x",
            &trigger,
            Some(&context),
            &json!({}),
            100,
            &mut warnings,
        );
        assert_eq!((v1.tasks, v2.tasks), (1, 3), "{v1:?} {v2:?}");
        let (added, removed, changed, unchanged) = compare_tasks(&old, &new);
        let ids: Vec<&str> = added.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(ids, ["tf:inv:manual:x/remind/a", "tf:inv:manual:x/report/_"]);
        assert!(removed.is_empty() && changed.is_empty());
        assert_eq!(unchanged, 1);
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
