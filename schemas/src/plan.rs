//! The planner: definition + resolved context + trigger → the tasks of one run.
//!
//! Pure and deterministic. It runs inside the `plan_run` activity so its result is recorded
//! in the run's history: replays never re-evaluate templates with newer code. Every template
//! and item gets a [`Decision`] saying whether a task was spawned and why or why not.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::definition::{ActivityDefinition, Execution, TaskTemplate};
use crate::ids::{check_workflow_id_len, task_workflow_id};
pub use crate::kinds::{Retry, TaskSpec};
use crate::template::{Scope, Templates};
use crate::trigger::TriggerInfo;
use crate::validate::FieldError;

/// One task of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedTask {
    /// The task's workflow id: `{run_workflow_id}/{template_id}/{item_key}`.
    pub task_id: String,
    /// The template it came from.
    pub template_id: String,
    /// The item key (rendered `key`, or the item's index).
    pub item_key: String,
    /// What to do.
    pub spec: TaskSpec,
    /// Rendered parameters.
    pub params: Value,
    /// How it runs; plans made before execution modes have none, which means `workflow`.
    #[serde(default, skip_serializing_if = "Execution::is_workflow")]
    pub execution: Execution,
    /// In a retry: the task of the retried run whose outcome this task carries over. A reused
    /// task is recorded completed when it is planned and never runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
}

/// The DAG node of one template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TemplatePlan {
    /// Template id.
    pub id: String,
    /// Templates whose tasks must all finish first.
    pub depends_on: Vec<String>,
    /// How many tasks this template spawns in this run (0 while deferred).
    pub tasks: usize,
    /// Planned only when its dependencies have finished, because it reads their outputs.
    #[serde(default)]
    pub deferred: bool,
}

/// Spawn or skip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A task was planned.
    Spawn,
    /// No task: see the reason.
    Skip,
    /// Not planned yet: the template reads its dependencies' outputs.
    Deferred,
}

/// Why a task was or was not created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Decision {
    /// Template id.
    pub template_id: String,
    /// Item key, when an item was considered.
    pub item_key: Option<String>,
    /// Spawn or skip.
    pub outcome: Outcome,
    /// In words: `condition true`, `condition false: item.amount > 100`, `for_each "x" is empty`.
    pub reason: String,
}

/// The plan of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// Templates in definition order, with their dependencies: the DAG.
    pub templates: Vec<TemplatePlan>,
    /// Every task to spawn, grouped by template in definition order.
    pub tasks: Vec<PlannedTask>,
    /// The explanation: one entry per template and item considered.
    pub decisions: Vec<Decision>,
}

impl Plan {
    /// The tasks of one template.
    pub fn tasks_of<'a>(&'a self, template_id: &'a str) -> impl Iterator<Item = &'a PlannedTask> + 'a {
        self.tasks.iter().filter(move |t| t.template_id == template_id)
    }
}

/// Everything the planner reads.
#[derive(Clone, Copy, Debug)]
pub struct PlanRequest<'a> {
    /// The definition (already validated).
    pub definition: &'a ActivityDefinition,
    /// Its version.
    pub version: i32,
    /// The run's workflow id, the prefix of every task id.
    pub run_workflow_id: &'a str,
    /// The resolved context: an object of source name to value.
    pub context: &'a Value,
    /// What started the run.
    pub trigger: &'a TriggerInfo,
    /// Refuse plans with more tasks than this.
    pub max_tasks: usize,
}

/// The variables every template sees (`item` and `index` are added per item).
pub fn template_scope(req: &PlanRequest<'_>) -> Value {
    json!({
        "context": req.context,
        "trigger": req.trigger,
        "definition": {"id": req.definition.id, "name": req.definition.name, "version": req.version},
        "run": {"workflow_id": req.run_workflow_id},
    })
}

/// Makes the plan. Templates that read their dependencies' outputs are left `deferred` (see
/// [`plan_deferred`]). Errors name the template field and, for fan-outs, the item.
pub fn plan(req: &PlanRequest<'_>) -> Result<Plan, FieldError> {
    let templates = Templates::new();
    let scope = template_scope(req);
    let mut out = Plan::default();
    for (index, template) in req.definition.tasks.iter().enumerate() {
        let path = format!("tasks[{index}]");
        let deferred = !template.depends_on.is_empty() && template.uses_task_outputs();
        let before = out.tasks.len();
        if deferred {
            out.decisions.push(Decision {
                template_id: template.id.clone(),
                item_key: None,
                outcome: Outcome::Deferred,
                reason: format!("reads the outputs of {}: planned when they finish", template.depends_on.join(", ")),
            });
        } else {
            plan_template(&templates, req, &scope, template, &path, &mut out)?;
            check_limit(req, out.tasks.len(), &path)?;
        }
        out.templates.push(TemplatePlan {
            id: template.id.clone(),
            depends_on: template.depends_on.clone(),
            tasks: out.tasks.len() - before,
            deferred,
        });
    }
    Ok(out)
}

fn check_limit(req: &PlanRequest<'_>, tasks: usize, path: &str) -> Result<(), FieldError> {
    if tasks > req.max_tasks {
        return Err(FieldError {
            path: path.to_owned(),
            message: format!("the plan exceeds the limit of {} tasks per run", req.max_tasks),
        });
    }
    Ok(())
}

/// Plans one deferred template once its dependencies have finished. `task_outputs` is the
/// `tasks` template variable: `{dep: {"outputs": [...], "output": first-or-null, "count": n}}`.
/// Returns the template's tasks and decisions (`templates` is left empty).
pub fn plan_deferred(
    req: &PlanRequest<'_>,
    template_id: &str,
    task_outputs: &Value,
    already_planned: usize,
) -> Result<Plan, FieldError> {
    let templates = Templates::new();
    let mut scope = template_scope(req);
    scope["tasks"] = task_outputs.clone();
    let (index, template) = req
        .definition
        .tasks
        .iter()
        .enumerate()
        .find(|(_, t)| t.id == template_id)
        .ok_or_else(|| FieldError { path: "tasks".into(), message: format!("no template {template_id:?}") })?;
    let path = format!("tasks[{index}]");
    let mut out = Plan::default();
    plan_template(&templates, req, &scope, template, &path, &mut out)?;
    check_limit(req, already_planned + out.tasks.len(), &path)?;
    Ok(out)
}

fn lookup<'v>(context: &'v Value, dotted: &str) -> Option<&'v Value> {
    dotted.split('.').try_fold(context, |v, part| v.get(part))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn plan_template(
    templates: &Templates,
    req: &PlanRequest<'_>,
    scope: &Value,
    template: &TaskTemplate,
    path: &str,
    out: &mut Plan,
) -> Result<(), FieldError> {
    let err = |field: &str, item: Option<usize>, message: String| FieldError {
        path: format!("{path}.{field}"),
        message: match item {
            Some(i) => format!("item {i}: {message}"),
            None => message,
        },
    };
    // The variables are converted once; each item only adds `item` and `index`.
    let base = Scope::new(scope);
    let list: Option<&Vec<Value>> = match &template.for_each {
        None => None,
        Some(source) => {
            let found = if let Some(path) = source.strip_prefix("tasks.") {
                scope.get("tasks").and_then(|outputs| lookup(outputs, path))
            } else if let Some(path) = source.strip_prefix("trigger.") {
                // `trigger.events`: the events of a debounced or batched run.
                scope.get("trigger").and_then(|trigger| lookup(trigger, path))
            } else {
                lookup(req.context, source)
            };
            let list = found.ok_or_else(|| err("for_each", None, format!("context {source:?} has no value")))?;
            let Value::Array(list) = list else {
                return Err(err("for_each", None, format!("context {source:?} is {}, not a list", type_name(list))));
            };
            if list.is_empty() {
                out.decisions.push(Decision {
                    template_id: template.id.clone(),
                    item_key: None,
                    outcome: Outcome::Skip,
                    reason: format!("for_each {source:?} is empty"),
                });
            }
            Some(list)
        }
    };
    // (index, item scope) pairs, made one at a time: one per for_each element, or a single one.
    let items: Box<dyn Iterator<Item = (Option<usize>, Scope)>> = match list {
        None => Box::new(std::iter::once((None, base.clone()))),
        Some(list) => Box::new(list.iter().enumerate().map(|(i, item)| (Some(i), base.with_item(item, i)))),
    };
    let mut seen_keys: HashMap<String, Option<usize>> = HashMap::new();
    for (item_index, item_scope) in items {
        let item_key = match (&template.key, item_index) {
            (Some(key), _) => templates.render_text(key, &item_scope).map_err(|m| err("key", item_index, m))?,
            (None, Some(i)) => i.to_string(),
            (None, None) => "_".to_owned(),
        };
        if item_key.is_empty() {
            return Err(err("key", item_index, "rendered to an empty key".into()));
        }
        // The key is part of a workflow id and a text column: no NUL or other control characters.
        if let Some(bad) = item_key.chars().find(|c| c.is_control()) {
            return Err(err("key", item_index, format!("rendered to a key with the control character {bad:?}")));
        }
        if let Some(previous) = seen_keys.insert(item_key.clone(), item_index) {
            let first = previous.map_or_else(String::new, |p| format!(" (first seen at item {p})"));
            return Err(err(
                "key",
                item_index,
                format!("duplicate key {item_key:?}{first}: keys must be unique per template"),
            ));
        }
        if let Some(when) = &template.when {
            let holds = templates.eval_condition(when, &item_scope).map_err(|m| err("when", item_index, m))?;
            if !holds {
                out.decisions.push(Decision {
                    template_id: template.id.clone(),
                    item_key: Some(item_key),
                    outcome: Outcome::Skip,
                    reason: format!("condition false: {}", when.trim()),
                });
                continue;
            }
        }
        let params = templates.render_value(&template.params, &item_scope).map_err(|m| err("params", item_index, m))?;
        let spec =
            crate::kinds::spec(template, templates, &item_scope).map_err(|(field, m)| err(&field, item_index, m))?;
        out.decisions.push(Decision {
            template_id: template.id.clone(),
            item_key: Some(item_key.clone()),
            outcome: Outcome::Spawn,
            reason: if template.when.is_some() { "condition true".into() } else { "unconditional".into() },
        });
        let task_id = task_workflow_id(req.run_workflow_id, &template.id, &item_key);
        check_workflow_id_len(&task_id).map_err(|m| err("key", item_index, m))?;
        let execution = template.execution.unwrap_or(template.kind.default_execution());
        out.tasks.push(PlannedTask {
            task_id,
            template_id: template.id.clone(),
            item_key,
            spec,
            params,
            execution,
            reused_from: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validate::parse_definition;

    fn definition() -> ActivityDefinition {
        parse_definition(json!({
            "id": "invoices",
            "name": "Invoices",
            "trigger": {"kind": "manual"},
            "context": [{"name": "invoices", "kind": "static",
                         "value": [{"id": "a", "amount": 50}, {"id": "b/1", "amount": 150}, {"id": "c", "amount": 500}]}],
            "tasks": [
                {"id": "remind", "kind": "noop", "for_each": "invoices", "key": "{{ item.id }}",
                 "when": "item.amount > 100", "params": {"amount": "{{ item.amount }}", "who": "inv {{ item.id }}"}},
                {"id": "report", "kind": "noop", "depends_on": ["remind"],
                 "params": {"count": "{{ context.invoices | length }}"}}
            ]
        }))
        .unwrap()
    }

    fn request<'a>(def: &'a ActivityDefinition, ctx: &'a Value, trigger: &'a TriggerInfo) -> PlanRequest<'a> {
        PlanRequest {
            definition: def,
            version: 1,
            run_workflow_id: "tf:invoices:manual:x",
            context: ctx,
            trigger,
            max_tasks: 100,
        }
    }

    #[test]
    fn fans_out_filters_and_explains() {
        let def = definition();
        let ctx = json!({"invoices": def.context[0].value.clone().unwrap()});
        let trigger = TriggerInfo::manual(None, Value::Null);
        let plan = plan(&request(&def, &ctx, &trigger)).unwrap();
        let ids: Vec<&str> = plan.tasks.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(
            ids,
            ["tf:invoices:manual:x/remind/b%2F1", "tf:invoices:manual:x/remind/c", "tf:invoices:manual:x/report/_"]
        );
        assert_eq!(plan.tasks[0].params, json!({"amount": 150, "who": "inv b/1"}));
        assert_eq!(plan.tasks[2].params, json!({"count": 3}));
        assert_eq!(plan.decisions[0].outcome, Outcome::Skip);
        assert_eq!(plan.decisions[0].reason, "condition false: item.amount > 100");
        assert_eq!(plan.templates[1].depends_on, vec!["remind".to_string()]);
        assert_eq!(plan.templates[0].tasks, 2);
    }

    #[test]
    fn duplicate_keys_and_bad_lists_are_errors() {
        let mut def = definition();
        def.tasks[0].key = Some("same".into());
        def.tasks[0].when = None;
        let ctx = json!({"invoices": def.context[0].value.clone().unwrap()});
        let trigger = TriggerInfo::manual(None, Value::Null);
        let err = plan(&request(&def, &ctx, &trigger)).unwrap_err();
        assert_eq!(err.path, "tasks[0].key");
        assert!(err.message.contains("duplicate key \"same\""), "{}", err.message);

        let ctx = json!({"invoices": {"not": "a list"}});
        let err = plan(&request(&def, &ctx, &trigger)).unwrap_err();
        assert_eq!(err.to_string(), "tasks[0].for_each: context \"invoices\" is an object, not a list");
    }

    #[test]
    fn a_key_that_makes_the_task_id_too_long_is_an_error_naming_the_item() {
        let mut def = definition();
        def.tasks[0].key = Some("{{ item.id }}-{{ 'x' * 300 }}".into());
        let ctx = json!({"invoices": def.context[0].value.clone().unwrap()});
        let trigger = TriggerInfo::manual(None, Value::Null);
        let err = plan(&request(&def, &ctx, &trigger)).unwrap_err();
        assert!(err.path.starts_with("tasks[0].key"), "{err}");
        assert!(err.message.contains("255 at most"), "{err}");
    }

    #[test]
    fn empty_fan_out_is_explained() {
        let def = definition();
        let ctx = json!({"invoices": []});
        let trigger = TriggerInfo::manual(None, Value::Null);
        let plan = plan(&request(&def, &ctx, &trigger)).unwrap();
        assert_eq!(plan.tasks.len(), 1);
        assert_eq!(plan.decisions[0].reason, "for_each \"invoices\" is empty");
    }

    #[test]
    fn the_limit_is_enforced() {
        let def = definition();
        let ctx = json!({"invoices": def.context[0].value.clone().unwrap()});
        let trigger = TriggerInfo::manual(None, Value::Null);
        let mut req = request(&def, &ctx, &trigger);
        req.max_tasks = 1;
        assert!(plan(&req).unwrap_err().message.contains("limit of 1 tasks"));
    }
}
