//! The ActivityDefinition document: *when* (trigger), *what the situation is* (context) and
//! *what work to create* (task templates).
//!
//! Each part is one flat struct with a `kind` and the fields of every kind, so that serde can
//! reject unknown fields and [`crate::validate`] can say precisely which field does not belong
//! to which kind (`tasks[0].title: not allowed for kind "workflow"`). The planner turns a
//! validated template into the typed [`crate::plan::TaskSpec`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::DefinitionId;

fn yes() -> bool {
    true
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A versioned, declarative description of recurring work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityDefinition {
    /// Unique slug (`[a-z0-9-]`), part of every workflow id this definition creates.
    pub id: DefinitionId,
    /// Human-readable name, carried in the workflows' memo.
    pub name: String,
    /// Free text shown in the API and UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Labels for finding and operating on definitions together (`?tag=` filters, fleet
    /// operations): lowercase `[a-z0-9][a-z0-9._-]*`, 1–40 characters each, at most 20.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Disabled definitions keep their versions but are not triggered.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// When a run starts.
    pub trigger: Trigger,
    /// Named context sources, resolved in order; later ones may use earlier ones.
    #[serde(default)]
    pub context: Vec<ContextSource>,
    /// The work each run creates.
    pub tasks: Vec<TaskTemplate>,
    /// What a failed task does to the rest of the run (default `continue`).
    #[serde(default, skip_serializing_if = "FailurePolicy::is_default")]
    pub failure_policy: FailurePolicy,
    /// Most tasks of one run running at once (default 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// Webhooks told when a run fails, recovers or has failed tasks, or a cron slot passes
    /// without a run (see [`crate::notify`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<crate::notify::NotifyEntry>,
    /// At most `limit` runs per concurrency key at once, and what a run beyond it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// How long this definition's finished runs stay in the run log; wins over the API's
    /// `--run-retention` (default: that, which by default keeps runs forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

/// How long a definition's finished runs are kept: give exactly one of `days` and
/// `last_runs`. Open runs are never pruned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Runs that finished more than this many days ago are pruned (1 to 36,500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    /// Only the newest this many finished runs are kept (1 to 1,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_runs: Option<u32>,
}

/// Largest `retention.days` (a hundred years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;
/// Largest `retention.last_runs`.
pub const MAX_RETENTION_RUNS: u32 = 1_000_000;

/// Runs of one definition that may run at once, per key (any trigger).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    /// Template over the trigger (`{{ event.payload.customer }}`; `trigger.key`,
    /// `trigger.payload`); default: one key for the whole definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Most runs of one key running at once (at least 1; default 1).
    #[serde(default = "one")]
    pub limit: u32,
    /// What a run does when its key is at the limit (default `queue`).
    #[serde(default)]
    pub on_limit: OnLimit,
}

fn one() -> u32 {
    1
}

/// What a run does when its concurrency key is at the limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnLimit {
    /// It waits (status `queued`), first in first out per key, and starts when a slot frees.
    #[default]
    Queue,
    /// It starts nothing: the run ends `skipped` (decision `skipped`, reason `concurrency`).
    Skip,
    /// The oldest running run of the key is cancelled; this one starts when it has ended.
    CancelRunning,
}

impl OnLimit {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::Skip => "skip",
            Self::CancelRunning => "cancel_running",
        }
    }
}

/// What a failed task does to the rest of its run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Independent work goes on; templates depending on a failed one are skipped; the run fails
    /// at the end.
    #[default]
    Continue,
    /// After the first failure no new task starts (running ones finish); the run fails.
    FailFast,
}

impl FailurePolicy {
    /// Whether this is the default (`continue`), which documents leave out.
    pub fn is_default(&self) -> bool {
        *self == Self::Continue
    }
}

/// Default of `max_parallel`.
pub const DEFAULT_MAX_PARALLEL: u32 = 1000;

/// Kinds of trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// A Temporal Schedule fires the definition on cron expressions.
    Cron,
    /// A matching event posted to `/api/v1/events` starts a run.
    Event,
    /// Only explicit triggers (API, CLI) start runs.
    Manual,
}

impl TriggerKind {
    /// The wire name: `cron`, `event` or `manual`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cron => "cron",
            Self::Event => "event",
            Self::Manual => "manual",
        }
    }
}

/// What happens when a scheduled run is due while the previous one still runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    /// Skip the new run (Temporal's default).
    Skip,
    /// Run once more after the current run finishes.
    BufferOne,
    /// Queue every missed run.
    BufferAll,
    /// Cancel the running run and start the new one.
    CancelOther,
    /// Terminate the running run and start the new one.
    TerminateOther,
    /// Start the new run regardless.
    AllowAll,
}

/// When a run starts. Fields apply to the kinds named in their docs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// `cron`, `event` or `manual`.
    pub kind: TriggerKind,
    /// cron: five-field cron expressions (`0 9 * * MON-FRI`); any of them fires.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cron: Vec<String>,
    /// cron: IANA time zone the expressions are read in (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// cron: random delay added to each fire, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// cron: what to do when a run is due while one is running (default `skip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<OverlapPolicy>,
    /// cron: how late a missed fire may still start (misfire policy), e.g. `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catchup_window: Option<String>,
    /// cron: no fire before this instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
    /// cron: no fire after this instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<chrono::DateTime<chrono::Utc>>,
    /// event: the event type to match, e.g. `repo.pushed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// event: a condition over `event` that must hold, e.g. `event.payload.branch == "main"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// event: template of the dedupe key (default: the event's `key`, else a payload hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_key: Option<String>,
    /// event: events with the same key, each within `period` of the previous, become one run,
    /// started `period` after the last (or `max_wait` after the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce: Option<Debounce>,
    /// event: up to `max_size` events, or what came within `max_wait`, become one run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Batch>,
}

/// Debouncing of an event trigger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Debounce {
    /// Template over `event` of the key events are grouped by (default: one group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Quiet time after the last event before the run starts, e.g. `2s`.
    pub period: String,
    /// Longest wait after the first event of a group, e.g. `1m` (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<String>,
}

/// Batching of an event trigger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Most events in one run (at least 1).
    pub max_size: u32,
    /// Longest wait after the first event of a batch, e.g. `10s`.
    pub max_wait: String,
    /// Template over `event` of the key batches are grouped by (default: one group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Kinds of context source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContextKind {
    /// Rows of a read-only SQL query, as a list of objects.
    Sql,
    /// A JSON document fetched over HTTP (GET or POST), optionally narrowed by a JSON pointer.
    Http,
    /// A literal value.
    Static,
    /// The trigger event's payload.
    Trigger,
}

/// One named piece of context, available to templates as `context.<name>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextSource {
    /// Name under which templates see the value (`[a-z_][a-z0-9_]*`).
    pub name: String,
    /// `sql`, `http`, `static` or `trigger`.
    pub kind: ContextKind,
    /// sql: the query; `$1`, `$2`, ... are bound from `params` as text (cast in SQL: `$1::int`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// sql: templated query parameters, bound in order, never spliced into the SQL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Value>,
    /// sql: a named connection from the worker's config (default: the context database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// http: the URL (templated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// http: `GET` (default) or `POST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// http: request headers (values templated).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// http: JSON body of a `POST` (every string in it templated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// http: a JSON pointer into the response (`/data/items`); default the whole document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<String>,
    /// static: the literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// sql, http: the resolved value is shown to `admin` keys only (in the run's
    /// `context_snapshot` and in dry-run answers); other keys see [`SENSITIVE_PLACEHOLDER`].
    /// What templates copy out of it into params, keys or titles is shown like any param.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// What non-admin keys see instead of a `sensitive` source's value.
pub const SENSITIVE_PLACEHOLDER: &str = "⟦sensitive⟧";

/// Kinds of task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Starts a workflow type on a task queue (workers in any Temporal SDK).
    Workflow,
    /// Runs an activity by name on a task queue (any SDK's worker can serve it).
    Activity,
    /// Calls an HTTP endpoint.
    Http,
    /// Waits for a person to complete or reject it through the API.
    Human,
    /// Does nothing; useful for fan-out tests and as a DAG join point.
    Noop,
}

/// How a task runs in Temporal (ADR-017).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Execution {
    /// As an activity of its batch workflow: one history event group instead of a workflow
    /// execution. The task has no workflow id of its own; its activity id is the task id.
    Activity,
    /// As a `TaskWorkflow` of its own (id: the task id), a child of its batch. Plans made
    /// before execution modes existed carry no mode and mean this.
    #[default]
    Workflow,
    /// As a *local* activity of its batch workflow, in the worker that runs the batch: one
    /// marker in the batch's history, no activity task through the server (taskfactory's own
    /// kinds, `noop` and `http`, only).
    Local,
}

impl Execution {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Activity => "activity",
            Self::Workflow => "workflow",
            Self::Local => "local",
        }
    }

    /// Parses a stored mode name (anything unknown is `workflow`, what old rows mean).
    pub fn parse(raw: &str) -> Self {
        match raw {
            "activity" => Self::Activity,
            "local" => Self::Local,
            _ => Self::Workflow,
        }
    }

    /// Whether the task runs as an activity of its batch (remote or local), not a workflow.
    pub fn in_batch(self) -> bool {
        self != Self::Workflow
    }

    /// Whether this is the default (workflow) mode; plans leave it out then.
    pub fn is_workflow(&self) -> bool {
        *self == Self::Workflow
    }
}

/// How a task is retried.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, the first included (default: 5 for activity and http, 1 for workflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Wait before the first retry, e.g. `1s` (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_interval: Option<String>,
    /// Factor each wait grows by (default 2.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<f64>,
    /// Longest wait between attempts, e.g. `1m` (default 100 × initial_interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interval: Option<String>,
}

/// A template for one task, or one task per item of a context list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskTemplate {
    /// Template id (`[a-z0-9_-]`), unique in the definition, part of each task's workflow id.
    pub id: String,
    /// The kind of work.
    pub kind: TaskKind,
    /// Fan out: one task per element of this list: a context name (`invoices`, `push.files`),
    /// or the outputs of a dependency (`tasks.fetch.outputs`, `tasks.fetch.output.items`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    /// Condition: the task is created only when this expression is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Stable item key (templated) for the task's workflow id; default: the item's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Parameters passed to the task; every string in it is a template.
    #[serde(default = "empty_object")]
    pub params: Value,
    /// Template ids that must finish before this template's tasks start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// workflow: the workflow type to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_type: Option<String>,
    /// workflow: the task queue to start it on (default: taskfactory's own queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_queue: Option<String>,
    /// human: the title (templated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// human: who should act.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// activity: the activity type to run (on `task_queue`, default taskfactory's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_type: Option<String>,
    /// http: the method (default `GET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// http: the URL (templated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// http: request headers (values templated).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// http: the JSON body (every string in it templated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// How long the task may take, e.g. `10m`: the workflow's execution timeout, the activity's
    /// or request's start-to-close timeout, how long a person has for a human task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Retries of `workflow`, `activity` and `http` tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// How each task runs: `activity` (an activity of its batch workflow: cheap, the default
    /// for `noop`, `http` and `activity`) or `workflow` (a `TaskWorkflow` of its own: the
    /// default, and the only choice, for `workflow` and `human`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<Execution>,
    /// Labels shown in the UI; not interpreted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl ActivityDefinition {
    /// Replaces the values of `sensitive` sources in a resolved context (an object by source
    /// name) with [`SENSITIVE_PLACEHOLDER`].
    pub fn redact_sensitive(&self, context: &mut Value) {
        let Some(values) = context.as_object_mut() else { return };
        for source in self.context.iter().filter(|s| s.sensitive) {
            if let Some(value) = values.get_mut(&source.name) {
                *value = Value::String(SENSITIVE_PLACEHOLDER.to_owned());
            }
        }
    }

    /// The template with this id.
    pub fn template(&self, id: &str) -> Option<&TaskTemplate> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// `max_parallel`, or its default.
    pub fn max_parallel(&self) -> u32 {
        self.max_parallel.unwrap_or(DEFAULT_MAX_PARALLEL)
    }
}

impl TaskTemplate {
    /// Whether the template reads its dependencies' outputs (`tasks.<id>...` anywhere in its
    /// templates); such a template is planned when its dependencies have finished.
    pub fn uses_task_outputs(&self) -> bool {
        fn mentions(s: &str) -> bool {
            s.match_indices("tasks.")
                .any(|(i, _)| i == 0 || !s.as_bytes()[i - 1].is_ascii_alphanumeric() && s.as_bytes()[i - 1] != b'_')
        }
        fn in_value(v: &Value) -> bool {
            match v {
                Value::String(s) => mentions(s),
                Value::Array(items) => items.iter().any(in_value),
                Value::Object(map) => map.values().any(in_value),
                _ => false,
            }
        }
        [&self.for_each, &self.when, &self.key, &self.title].into_iter().flatten().any(|s| mentions(s))
            || in_value(&self.params)
    }
}
