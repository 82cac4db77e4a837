//! Inputs and outputs of the workflows and activities: what crosses Temporal's wire.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::definition::ActivityDefinition;
use crate::ids::DefinitionId;
use crate::plan::PlannedTask;
pub use crate::trigger::{RunTrigger, TriggerInfo};

/// Input of `RunActivityWorkflow`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunInput {
    /// The definition to run.
    pub definition_id: DefinitionId,
    /// A pinned version; `None` runs the current version at load time.
    #[serde(default)]
    pub version: Option<i32>,
    /// What started the run.
    pub trigger: TriggerInfo,
    /// The finished run this one retries (`{workflow_id}:retry:{n}`): which of its tasks run
    /// again and which are reused is kept with the retry in the run log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
}

/// Which tasks of a finished run a retry runs again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RetryTasks {
    /// `"failed"` (every task that did not complete: failed, skipped, cancelled) or `"all"`.
    Named(RetryWhich),
    /// These task ids, and every task that did not complete.
    Ids(Vec<String>),
}

impl Default for RetryTasks {
    fn default() -> Self {
        Self::Named(RetryWhich::Failed)
    }
}

/// A named choice of [`RetryTasks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryWhich {
    /// What did not complete runs again; completed tasks are reused.
    Failed,
    /// Everything runs again.
    All,
}

/// How a retry runs, as stored with it (`run_retries.request`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RetryPlan {
    /// Which tasks run again.
    #[serde(default)]
    pub tasks: RetryTasks,
    /// Resolve the context anew instead of reusing the retried run's snapshot.
    #[serde(default)]
    pub refresh_context: bool,
}

/// Status of a run or a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Planned, not started.
    Pending,
    /// Started, not finished.
    Running,
    /// A run waiting for a slot of its concurrency key (started in Temporal, no work yet).
    Queued,
    /// Finished successfully.
    Completed,
    /// Finished with an error.
    Failed,
    /// A task: not run because a dependency failed. A run: not run because its concurrency
    /// key was at the limit (`on_limit: skip`).
    Skipped,
    /// A run: cancelled in Temporal. A task: its run closed before it finished.
    Cancelled,
    /// A run terminated in Temporal (no workflow code ran to record it).
    Terminated,
    /// A run whose execution timed out in Temporal.
    TimedOut,
}

impl Status {
    /// Every status, in declaration order (the order the web UI counts them in).
    pub fn all() -> &'static [Self] {
        &[
            Self::Pending,
            Self::Running,
            Self::Queued,
            Self::Completed,
            Self::Failed,
            Self::Skipped,
            Self::Cancelled,
            Self::Terminated,
            Self::TimedOut,
        ]
    }

    /// Whether a run in this status has not ended (`running` or `queued`).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Running | Self::Queued)
    }

    /// The wire name, as stored in Postgres.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Queued => "queued",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
            Self::Terminated => "terminated",
            Self::TimedOut => "timed_out",
        }
    }
}

/// Result of `RunActivityWorkflow`, also recorded in `activity_runs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RunOutcome {
    /// Tasks started as workflows.
    pub tasks_spawned: u64,
    /// Tasks that completed.
    pub tasks_completed: u64,
    /// Tasks that failed.
    pub tasks_failed: u64,
    /// Tasks not started because a dependency failed.
    pub tasks_skipped: u64,
}

/// What every task and batch workflow of a run carries about it (search attributes, memo).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskMeta {
    /// The definition.
    pub definition_id: DefinitionId,
    /// Its name, for the memo.
    pub definition_name: String,
    /// The version the run uses.
    pub version: i32,
    /// What started the run.
    pub trigger: RunTrigger,
}

/// Input of `TaskBatchWorkflow`: a slice of one template's tasks (by plan position), run
/// concurrently. The tasks themselves are loaded from the run log, so plans of thousands of
/// tasks never travel through workflow history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchInput {
    /// The parent run's workflow id.
    pub run_workflow_id: String,
    /// About the run.
    pub meta: TaskMeta,
    /// The template.
    pub template_id: String,
    /// Index of the first task within the template.
    pub offset: u64,
    /// How many tasks.
    pub limit: u64,
}

/// Input of `load_batch`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoadBatchInput {
    /// The run's workflow id.
    pub run_workflow_id: String,
    /// The template.
    pub template_id: String,
    /// Index of the first task within the template.
    pub offset: u64,
    /// How many tasks.
    pub limit: u64,
}

/// Result of `TaskBatchWorkflow`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BatchOutcome {
    /// Tasks that completed.
    pub completed: u64,
    /// Tasks that failed.
    pub failed: u64,
}

/// Input of `plan_template`: plan a deferred template now that its dependencies finished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlanTemplateInput {
    /// The run's workflow id.
    pub run_workflow_id: String,
    /// The definition version in use.
    pub loaded: LoadedDefinition,
    /// What started the run.
    pub trigger: TriggerInfo,
    /// The deferred template.
    pub template_id: String,
}

/// A person's decision on a human task, delivered to its `TaskWorkflow` as a signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HumanDecision {
    /// `true` completes the task, `false` rejects it (the task fails).
    pub approved: bool,
    /// The form's answer: the task's output when completed.
    #[serde(default)]
    pub payload: Value,
    /// Who decided.
    #[serde(default)]
    pub by: Option<String>,
    /// Why (for rejections).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Input of `human_task_created`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HumanTaskInput {
    /// The parent run's workflow id.
    pub run_workflow_id: String,
    /// The task's workflow id.
    pub task_id: String,
    /// Rendered title.
    pub title: String,
    /// Who should act.
    pub assignee: Option<String>,
    /// The form payload (the task's params).
    pub form: Value,
}

/// Input of `http_request`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HttpRequestInput {
    /// Method.
    pub method: String,
    /// URL.
    pub url: String,
    /// Headers.
    pub headers: std::collections::BTreeMap<String, String>,
    /// JSON body.
    pub body: Option<Value>,
    /// Timeout of the request, in seconds.
    pub timeout_secs: u64,
}

/// Input of `TaskWorkflow`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskInput {
    /// The parent run's workflow id.
    pub run_workflow_id: String,
    /// The definition's name, for the task workflow's memo.
    pub definition_name: String,
    /// The planned task.
    pub task: PlannedTask,
    /// How the task workflow records itself; see [`TASK_PROTOCOL`]. Inputs recorded before
    /// the field existed read as 1, so their histories replay the way they were written.
    #[serde(default = "task_protocol_1")]
    pub protocol: u32,
}

/// The task protocol new runs use.
/// - 1: the task workflow records its start and its end with two local activities;
/// - 2: a `noop` task (which starts and ends at once) records both with one local activity:
///   one history event and one Postgres transaction fewer per task (wiki/benchmarks.md).
pub const TASK_PROTOCOL: u32 = 2;

fn task_protocol_1() -> u32 {
    1
}

/// Input of the `start_run` activity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StartRunInput {
    /// The run's workflow id.
    pub run_workflow_id: String,
    /// The run's Temporal run id.
    pub temporal_run_id: String,
    /// What to run.
    pub run: RunInput,
}

/// Output of `start_run`: the definition version this run uses, for its whole life.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoadedDefinition {
    /// Version number, from 1.
    pub version: i32,
    /// The document.
    pub definition: ActivityDefinition,
}

/// Input of `resolve_context`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResolveContextInput {
    /// The run's workflow id.
    pub run_workflow_id: String,
    /// The definition version in use.
    pub loaded: LoadedDefinition,
    /// What started the run.
    pub trigger: TriggerInfo,
}

/// Input of `plan_run`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlanRunInput {
    /// The run's workflow id.
    pub run_workflow_id: String,
    /// The definition version in use.
    pub loaded: LoadedDefinition,
    /// What started the run.
    pub trigger: TriggerInfo,
    /// The resolved context (an object of source name to value).
    pub context: Value,
    /// Answer only the templates (with task counts), not every task and decision: the run
    /// stores those in Postgres and its batches load them from there.
    #[serde(default)]
    pub summary_only: bool,
}

/// Input of `task_started`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskStartedInput {
    /// The parent run's workflow id.
    pub run_workflow_id: String,
    /// The task's workflow id.
    pub task_id: String,
    /// The task's Temporal run id.
    pub temporal_run_id: String,
}

/// Input of `task_finished`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskFinishedInput {
    /// The parent run's workflow id.
    pub run_workflow_id: String,
    /// The task's workflow id.
    pub task_id: String,
    /// `completed` or `failed`.
    pub status: Status,
    /// The task's output (workflow result, ...).
    pub output: Value,
    /// Why it failed.
    pub error: Option<String>,
}

/// Input of `task_ran`: a task that started and ended at once (`noop`), recorded in one write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskRanInput {
    /// The parent run's workflow id.
    pub run_workflow_id: String,
    /// The task's workflow id.
    pub task_id: String,
    /// The task workflow's run id.
    pub temporal_run_id: String,
    /// The task's output.
    pub output: Value,
}

/// Input of `tasks_skipped`: tasks not started because a dependency failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TasksSkippedInput {
    /// The parent run's workflow id.
    pub run_workflow_id: String,
    /// The skipped template.
    pub template_id: String,
    /// Why.
    pub reason: String,
}

/// Input of `finish_run`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FinishRunInput {
    /// The run's workflow id.
    pub run_workflow_id: String,
    /// `completed` or `failed`.
    pub status: Status,
    /// Task counts.
    pub outcome: RunOutcome,
    /// Why it failed.
    pub error: Option<String>,
}

/// Input of `cancel_run`: the run workflow was cancelled (through taskfactory's API or in
/// Temporal) and records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CancelRunInput {
    /// The run's workflow id.
    pub run_workflow_id: String,
    /// The reason Temporal delivered with the cancellation, if any.
    pub reason: Option<String>,
}

/// Input of `admit_run`: a run of a definition with `concurrency` asks for a slot of its key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AdmitInput {
    /// The run's workflow id.
    pub run_workflow_id: String,
    /// The definition.
    pub definition_id: DefinitionId,
    /// The definition's concurrency settings (of the version the run uses).
    pub concurrency: crate::definition::Concurrency,
    /// The run's trigger (the key template reads it).
    pub trigger: TriggerInfo,
}

/// What `admit_run` answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "admission", rename_all = "snake_case")]
pub enum Admission {
    /// The run has a slot: it goes on.
    Admitted {
        /// The rendered concurrency key.
        key: String,
    },
    /// The run waits (status `queued`) until a slot frees; it is woken by a signal, and asks
    /// again.
    Queued {
        /// The rendered concurrency key.
        key: String,
        /// `on_limit: cancel_running`: the run to cancel to free a slot (asked once).
        cancel: Option<String>,
    },
    /// `on_limit: skip`: the run ended `skipped` without work.
    Skipped {
        /// The rendered concurrency key.
        key: String,
        /// Why, in words.
        message: String,
    },
    /// The key template could not be rendered: the run fails with this message.
    Invalid {
        /// What went wrong.
        message: String,
    },
}

/// Input of `next_admissions`: a run of a definition with `concurrency` ended; which queued
/// runs of its key may now have a slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseInput {
    /// The run that ended.
    pub run_workflow_id: String,
}

/// Input of `run_task`: one task of an own kind (`noop`, `http`) in activity mode, run by the
/// activity itself, which records its start and its end in the run log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunTaskInput {
    /// The parent run's workflow id.
    pub run_workflow_id: String,
    /// The task.
    pub task: PlannedTask,
}

/// One entry of a batch's coalesced run-log write (`task_writes`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "write", rename_all = "snake_case")]
pub enum TaskLogEntry {
    /// The task's activity was scheduled: `NODE_STARTED`.
    Started {
        /// The task id.
        task_id: String,
    },
    /// The task ended: `NODE_COMPLETED` or `NODE_FAILED`.
    Finished {
        /// The task id.
        task_id: String,
        /// `completed` or `failed`.
        status: Status,
        /// Its output.
        output: Value,
        /// Why it failed.
        error: Option<String>,
    },
}

/// Input of `task_writes`: the run-log writes a batch workflow gathered in one activation,
/// written in order in one transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskWritesInput {
    /// The parent run's workflow id.
    pub run_workflow_id: String,
    /// The batch workflow's id (where the tasks' activities are, for the UI's link).
    pub workflow_id: String,
    /// The batch workflow's run id.
    pub temporal_run_id: String,
    /// The writes, in order.
    pub entries: Vec<TaskLogEntry>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::tests::schema_names;

    #[test]
    fn every_status_is_listed_once_under_its_wire_name() {
        let listed: Vec<String> = Status::all().iter().map(|s| s.as_str().to_owned()).collect();
        assert_eq!(listed, schema_names::<Status>());
        for s in Status::all() {
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
    }
}
