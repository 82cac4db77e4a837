//! Task kinds: what each kind's template may say, how it is checked, and what the planner
//! makes of it. One module per kind; this module is the dispatch.
//!
//! - [`noop`], [`workflow`], [`activity`], [`http`], [`human`]: each declares the template
//!   fields it owns (`FIELDS`), checks them (`validate`) and renders them into its
//!   [`TaskSpec`] (`spec`).
//!
//! The template fields themselves are flat on [`TaskTemplate`] (a document names them
//! without nesting); a field another kind owns is refused with its path. Adding a kind: a
//! variant of [`TaskKind`] and of [`TaskSpec`], its fields on [`TaskTemplate`], a module here
//! with the three items above, the match arms below, and its execution (the workflow's
//! dispatch in `taskfactory_orchestrator::task_workflow`, and an activity in
//! `taskfactory_activities::kinds` when it has a side effect of its own).

pub mod activity;
pub mod http;
pub mod human;
pub mod noop;
pub mod workflow;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::definition::{Execution, RetrySpec, TaskKind, TaskTemplate};
use crate::duration::parse_duration;
use crate::template::{Scope, Templates};

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

impl TaskSpec {
    /// The kind's name (the spec's `kind` tag).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Noop => "noop",
            Self::Workflow { .. } => "workflow",
            Self::Activity { .. } => "activity",
            Self::Http { .. } => "http",
            Self::Human { .. } => "human",
        }
    }

    /// For kinds taskfactory runs itself in activity mode (`tf.run_task`: `noop`, `http`):
    /// each attempt's start-to-close timeout in seconds and the retry policy (`None`: the SDK's
    /// default, retried until it succeeds). `None` for kinds whose work is elsewhere.
    pub fn own_activity(&self) -> Option<(u64, Option<&Retry>)> {
        match self {
            Self::Noop => Some((30, None)),
            Self::Http { timeout_secs, retry, .. } => Some((timeout_secs.unwrap_or(30) + 5, retry.as_ref())),
            Self::Workflow { .. } | Self::Activity { .. } | Self::Human { .. } => None,
        }
    }
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

impl TaskKind {
    /// The kind's name in documents.
    pub fn name(self) -> &'static str {
        match self {
            Self::Workflow => "workflow",
            Self::Activity => "activity",
            Self::Http => "http",
            Self::Human => "human",
            Self::Noop => "noop",
        }
    }

    /// How the kind's tasks run when the template does not say.
    pub fn default_execution(self) -> Execution {
        if self.needs_own_workflow() { Execution::Workflow } else { Execution::Activity }
    }

    /// Whether every task of this kind needs a workflow of its own: a `workflow` task's child
    /// hangs off it, a `human` task waits for a signal sent to it.
    pub fn needs_own_workflow(self) -> bool {
        matches!(self, Self::Workflow | Self::Human)
    }

    /// The kind-specific template fields this kind reads.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Self::Workflow => workflow::FIELDS,
            Self::Activity => activity::FIELDS,
            Self::Http => http::FIELDS,
            Self::Human => human::FIELDS,
            Self::Noop => noop::FIELDS,
        }
    }
}

/// Problems found in one template's kind-specific fields: (field, message), the field relative
/// to the template.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub(crate) Vec<(String, String)>);

impl Problems {
    pub(crate) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    pub(crate) fn check(&mut self, field: impl Into<String>, result: Result<(), String>) {
        if let Err(message) = result {
            self.push(field, message);
        }
    }

    /// `field` is required (and not blank) for this kind.
    pub(crate) fn require(&mut self, kind: TaskKind, field: &str, value: &Option<String>) {
        if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            self.push(field, format!("required for kind {:?}", kind.name()));
        }
    }
}

/// Which kind-specific fields a template sets, in document order.
fn fields_set(t: &TaskTemplate) -> [(&'static str, bool); 11] {
    [
        ("workflow_type", t.workflow_type.is_some()),
        ("activity_type", t.activity_type.is_some()),
        ("task_queue", t.task_queue.is_some()),
        ("method", t.method.is_some()),
        ("url", t.url.is_some()),
        ("headers", !t.headers.is_empty()),
        ("body", t.body.is_some()),
        ("title", t.title.is_some()),
        ("assignee", t.assignee.is_some()),
        ("retry", t.retry.is_some()),
        ("timeout", t.timeout.is_some()),
    ]
}

/// Checks a template's kind-specific fields: the kind's own checks, then every field set that
/// belongs to another kind.
pub(crate) fn validate(t: &TaskTemplate, templates: &Templates) -> Problems {
    let mut problems = Problems::default();
    match t.kind {
        TaskKind::Workflow => workflow::validate(t, &mut problems),
        TaskKind::Activity => activity::validate(t, &mut problems),
        TaskKind::Http => http::validate(t, templates, &mut problems),
        TaskKind::Human => human::validate(t, templates, &mut problems),
        TaskKind::Noop => {}
    }
    if t.execution == Some(Execution::Activity) && t.kind.needs_own_workflow() {
        problems.push(
            "execution",
            format!("kind {:?} runs as a workflow of its own: execution must be \"workflow\"", t.kind.name()),
        );
    } else if t.execution == Some(Execution::Local) && !matches!(t.kind, TaskKind::Noop | TaskKind::Http) {
        problems.push(
            "execution",
            format!(
                "\"local\" runs taskfactory's own kinds (noop, http) only; kind {:?} needs \"{}\"",
                t.kind.name(),
                t.kind.default_execution().as_str()
            ),
        );
    }
    let own = t.kind.fields();
    for (field, set) in fields_set(t) {
        if set && !own.contains(&field) {
            problems.push(field, format!("not allowed for kind {:?}", t.kind.name()));
        }
    }
    if let Some(retry) = t.retry.as_ref().filter(|_| own.contains(&"retry")) {
        validate_retry(retry, &mut problems);
    }
    problems
}

fn validate_retry(retry: &RetrySpec, problems: &mut Problems) {
    if retry.max_attempts == Some(0) {
        problems.push("retry.max_attempts", "must be at least 1");
    }
    if retry.backoff.is_some_and(|b| b < 1.0) {
        problems.push("retry.backoff", "must be at least 1.0");
    }
    for (field, value) in [("initial_interval", &retry.initial_interval), ("max_interval", &retry.max_interval)] {
        if let Some(v) = value {
            problems.check(format!("retry.{field}"), parse_duration(v).map(|_| ()));
        }
    }
}

/// What every kind's `spec` may read besides the template: the rendered timeout and retry.
pub struct Common {
    /// The template's `timeout`, in whole seconds (at least 1).
    pub timeout_secs: Option<u64>,
}

impl Common {
    /// The template's retry policy with `default_attempts`, if it has one.
    pub fn retry(template: &TaskTemplate, default_attempts: u32) -> Result<Option<Retry>, (String, String)> {
        template
            .retry
            .as_ref()
            .map(|r| Retry::from_spec(Some(r), default_attempts))
            .transpose()
            .map_err(|m| ("retry".to_owned(), m))
    }

    /// The template's retry policy, or the default one with `default_attempts`.
    pub fn retry_or_default(template: &TaskTemplate, default_attempts: u32) -> Result<Retry, (String, String)> {
        Ok(match Self::retry(template, default_attempts)? {
            Some(r) => r,
            None => Retry::from_spec(None, default_attempts).map_err(|m| ("retry".to_owned(), m))?,
        })
    }
}

/// A required field's value, or the planner error naming it.
pub(crate) fn required(name: &str, value: &Option<String>) -> Result<String, (String, String)> {
    value.clone().ok_or_else(|| (name.to_owned(), "required".to_owned()))
}

/// Renders a validated template into its [`TaskSpec`]; errors name the template field.
pub(crate) fn spec(
    template: &TaskTemplate,
    templates: &Templates,
    scope: &Scope,
) -> Result<TaskSpec, (String, String)> {
    let timeout_secs = template
        .timeout
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|m| ("timeout".to_owned(), m))?
        .map(|d| d.as_secs().max(1));
    let common = Common { timeout_secs };
    match template.kind {
        TaskKind::Noop => Ok(noop::spec()),
        TaskKind::Workflow => workflow::spec(template, &common),
        TaskKind::Activity => activity::spec(template, &common),
        TaskKind::Http => http::spec(template, templates, scope, &common),
        TaskKind::Human => human::spec(template, templates, scope, &common),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::definition::Execution;
    use crate::validate::parse_definition;

    fn with_tasks(tasks: serde_json::Value) -> serde_json::Value {
        json!({"id": "k", "name": "Kinds", "trigger": {"kind": "manual"}, "tasks": tasks})
    }

    #[test]
    fn kinds_that_need_a_workflow_refuse_activity_mode_by_field() {
        let document = with_tasks(json!([
            {"id": "a", "kind": "human", "title": "Approve", "execution": "activity"},
            {"id": "b", "kind": "workflow", "workflow_type": "W", "execution": "activity"},
            {"id": "c", "kind": "noop", "execution": "workflow"},
            {"id": "d", "kind": "http", "url": "https://example.com", "execution": "activity"}
        ]));
        let errors = parse_definition(document).unwrap_err();
        let paths: Vec<&str> = errors.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["tasks[0].execution", "tasks[1].execution"], "{errors}");
        assert!(errors.errors[0].message.contains("\"human\" runs as a workflow of its own"), "{errors}");
    }

    #[test]
    fn a_specs_kind_name_is_its_wire_tag() {
        use super::TaskSpec;
        let specs = [
            TaskSpec::Noop,
            TaskSpec::Workflow { workflow_type: "W".into(), task_queue: None, timeout_secs: None, retry: None },
            TaskSpec::Activity { activity_type: "a".into(), task_queue: None, timeout_secs: None, retry: None },
            TaskSpec::Http {
                method: "GET".into(),
                url: "https://example.com".into(),
                headers: Default::default(),
                body: None,
                timeout_secs: None,
                retry: None,
            },
            TaskSpec::Human { title: "t".into(), assignee: None, timeout_secs: None },
        ];
        for spec in specs {
            assert_eq!(serde_json::to_value(&spec).unwrap()["kind"], spec.kind_name());
        }
    }

    #[test]
    fn each_kind_has_its_default_mode() {
        use crate::definition::TaskKind::*;
        let modes: Vec<_> =
            [Noop, Http, Activity, Workflow, Human].into_iter().map(|k| k.default_execution()).collect();
        use Execution::{Activity as A, Workflow as W};
        assert_eq!(modes, [A, A, A, W, W]);
    }

    #[test]
    fn plans_without_a_mode_read_as_workflow_mode_and_write_back_unchanged() {
        let old =
            json!({"task_id": "r/t/0", "template_id": "t", "item_key": "0", "spec": {"kind": "noop"}, "params": {}});
        let task: crate::plan::PlannedTask = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(task.execution, Execution::Workflow);
        assert_eq!(serde_json::to_value(&task).unwrap(), old);
    }
}
