//! The planner: definition + resolved context + trigger → the tasks of one run.
//!
//! Pure and deterministic. It runs inside the `plan_run` activity so its result is recorded
//! in the run's history: replays never re-evaluate templates with newer code. Every template
//! and item gets a [`Decision`] saying whether a task was spawned and why or why not.

use std::collections::{BTreeMap, HashMap};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::definition::{ActivityDefinition, RetrySpec, TaskKind, TaskTemplate};
use crate::duration::parse_duration;
use crate::ids::{check_workflow_id_len, task_workflow_id};
use crate::run::TriggerInfo;
use crate::template::{Scope, Templates};
use crate::validate::FieldError;

/// What a task does, typed: the planner's view of a validated template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskSpec {
    /// Nothing.
    Noop,
    /// Start `workflow_type` on `task_queue` (or taskfactory's own queue) and wait for it.
    Workflow {
        /// Workflow type name.
        workflow_type: String,
        /// Task queue; `None` means the TaskWorkflow's own queue.
        task_queue: Option<String>,
        /// Execution timeout of the started workflow, in seconds.
        timeout_secs: Option<u64>,
        /// Retries of the started workflow.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry: Option<Retry>,
    },
    /// Run `activity_type` on `task_queue` with the params as input.
    Activity {
        /// Activity type name.
        activity_type: String,
        /// Task queue; `None` means the TaskWorkflow's own queue.
        task_queue: Option<String>,
        /// Start-to-close timeout of each attempt, in seconds (default 300).
        timeout_secs: Option<u64>,
        /// Retries.
        retry: Option<Retry>,
    },
    /// Send an HTTP request: 2xx completes, 4xx fails at once, 5xx and timeouts are retried.
    Http {
        /// Method.
        method: String,
        /// Rendered URL.
        url: String,
        /// Rendered headers.
        headers: BTreeMap<String, String>,
        /// Rendered JSON body.
        body: Option<Value>,
        /// Timeout of each attempt, in seconds (default 30).
        timeout_secs: Option<u64>,
        /// Retries.
        retry: Option<Retry>,
    },
    /// Wait for a person: complete (the payload is the output) or reject (the task fails).
    Human {
        /// Rendered title.
        title: String,
        /// Who should act.
        assignee: Option<String>,
        /// How long to wait, in seconds (default: forever).
        timeout_secs: Option<u64>,
    },
}

/// A retry policy, in numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Retry {
    /// Attempts in all (0 = unlimited).
    pub max_attempts: u32,
    /// First wait, in milliseconds.
    pub initial_interval_ms: u64,
    /// Growth factor.
    pub backoff: f64,
    /// Longest wait, in milliseconds.
    pub max_interval_ms: u64,
}

impl Retry {
    /// The template's retry settings with defaults filled in.
    pub fn from_spec(spec: Option<&RetrySpec>, default_attempts: u32) -> Result<Self, String> {
        let default = RetrySpec::default();
        let spec = spec.unwrap_or(&default);
        let initial = spec
            .initial_interval
            .as_deref()
            .map(parse_duration)
            .transpose()?
            .unwrap_or(std::time::Duration::from_secs(1));
        let max = spec.max_interval.as_deref().map(parse_duration).transpose()?.unwrap_or(initial * 100);
        Ok(Self {
            max_attempts: spec.max_attempts.unwrap_or(default_attempts),
            initial_interval_ms: u64::try_from(initial.as_millis()).unwrap_or(u64::MAX).max(1),
            backoff: spec.backoff.unwrap_or(2.0),
            max_interval_ms: u64::try_from(max.as_millis()).unwrap_or(u64::MAX).max(1),
        })
    }
}

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
            let found = match source.strip_prefix("tasks.") {
                Some(path) => scope.get("tasks").and_then(|outputs| lookup(outputs, path)),
                None => lookup(req.context, source),
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
        let spec = task_spec(template, templates, &item_scope).map_err(|(field, m)| err(&field, item_index, m))?;
        out.decisions.push(Decision {
            template_id: template.id.clone(),
            item_key: Some(item_key.clone()),
            outcome: Outcome::Spawn,
            reason: if template.when.is_some() { "condition true".into() } else { "unconditional".into() },
        });
        let task_id = task_workflow_id(req.run_workflow_id, &template.id, &item_key);
        check_workflow_id_len(&task_id).map_err(|m| err("key", item_index, m))?;
        out.tasks.push(PlannedTask { task_id, template_id: template.id.clone(), item_key, spec, params });
    }
    Ok(())
}

fn task_spec(template: &TaskTemplate, templates: &Templates, scope: &Scope) -> Result<TaskSpec, (String, String)> {
    fn field(name: &str) -> impl FnOnce(String) -> (String, String) + '_ {
        move |m| (name.to_owned(), m)
    }
    let timeout_secs = template
        .timeout
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(field("timeout"))?
        .map(|d| d.as_secs().max(1));
    let retry = |default_attempts| {
        template.retry.as_ref().map(|r| Retry::from_spec(Some(r), default_attempts)).transpose().map_err(field("retry"))
    };
    let required =
        |name: &str, value: &Option<String>| value.clone().ok_or_else(|| (name.to_owned(), "required".to_owned()));
    Ok(match template.kind {
        TaskKind::Noop => TaskSpec::Noop,
        TaskKind::Workflow => TaskSpec::Workflow {
            workflow_type: required("workflow_type", &template.workflow_type)?,
            task_queue: template.task_queue.clone(),
            timeout_secs,
            retry: retry(1)?,
        },
        TaskKind::Activity => TaskSpec::Activity {
            activity_type: required("activity_type", &template.activity_type)?,
            task_queue: template.task_queue.clone(),
            timeout_secs,
            retry: Some(match retry(5)? {
                Some(r) => r,
                None => Retry::from_spec(None, 5).map_err(field("retry"))?,
            }),
        },
        TaskKind::Http => {
            let url = templates.render_text(&required("url", &template.url)?, scope).map_err(field("url"))?;
            let mut headers = BTreeMap::new();
            for (name, value) in &template.headers {
                headers.insert(
                    name.clone(),
                    templates.render_text(value, scope).map_err(field(&format!("headers.{name}")))?,
                );
            }
            let body =
                template.body.as_ref().map(|b| templates.render_value(b, scope)).transpose().map_err(field("body"))?;
            TaskSpec::Http {
                method: template.method.as_deref().unwrap_or("GET").to_ascii_uppercase(),
                url,
                headers,
                body,
                timeout_secs,
                retry: Some(match retry(5)? {
                    Some(r) => r,
                    None => Retry::from_spec(None, 5).map_err(field("retry"))?,
                }),
            }
        }
        TaskKind::Human => TaskSpec::Human {
            title: templates.render_text(&required("title", &template.title)?, scope).map_err(field("title"))?,
            assignee: template.assignee.clone(),
            timeout_secs,
        },
    })
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
