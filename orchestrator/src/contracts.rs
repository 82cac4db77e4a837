//! The activities the workflows call, declared without their implementations.
//!
//! The `activities` crate implements each with `#[activity(definition = ...)]`, so a mismatch
//! between a contract and its implementation is a compile error, and this crate never depends
//! on sqlx or any other I/O.

#![allow(unused_variables, clippy::unused_unit)]

use serde_json::Value;
use taskfactory_schemas::notify::{Notification, NotifyOutcome, NotifyRunInput};
use taskfactory_schemas::run::{
    Admission, AdmitInput, CancelRunInput, FinishRunInput, HttpRequestInput, HumanTaskInput, LoadBatchInput,
    LoadedDefinition, PlanRunInput, PlanTemplateInput, ReleaseInput, ResolveContextInput, RunTaskInput, StartRunInput,
    TaskFinishedInput, TaskRanInput, TaskStartedInput, TaskWritesInput, TasksSkippedInput,
};
use taskfactory_schemas::{Plan, PlannedTask};
use temporalio_macros::activity_definitions;
use temporalio_sdk::activities::ActivityError;

/// Marker for the taskfactory activity contracts.
pub struct TfActivities;

#[activity_definitions]
impl TfActivities {
    /// Records the run (row + `WORKFLOW_STARTED`) and loads the definition version it uses.
    #[activity(name = "tf.start_run")]
    pub fn start_run(input: StartRunInput) -> Result<LoadedDefinition, ActivityError> {
        unimplemented!()
    }

    /// Asks for a slot of the run's concurrency key (definitions with `concurrency` only):
    /// admitted, queued (the run is `queued`, with a `queued` decision), or skipped (the run
    /// ended `skipped`). Idempotent: a run asking again gets its standing.
    #[activity(name = "tf.admit_run")]
    pub fn admit_run(input: AdmitInput) -> Result<Admission, ActivityError> {
        unimplemented!()
    }

    /// A run with a concurrency key ended: answers the queued runs of its key that a free
    /// slot may now admit (the run signals them to ask again).
    #[activity(name = "tf.next_admissions")]
    pub fn next_admissions(input: ReleaseInput) -> Result<Vec<String>, ActivityError> {
        unimplemented!()
    }

    /// Resolves the context sources in order; stores the snapshot (`CONTEXT_RESOLVED`).
    #[activity(name = "tf.resolve_context")]
    pub fn resolve_context(input: ResolveContextInput) -> Result<Value, ActivityError> {
        unimplemented!()
    }

    /// Runs the planner; stores the plan and one pending row per task (`PLAN_CREATED`).
    #[activity(name = "tf.plan_run")]
    pub fn plan_run(input: PlanRunInput) -> Result<Plan, ActivityError> {
        unimplemented!()
    }

    /// Plans a deferred template with its dependencies' outputs; stores its tasks
    /// (`PLAN_EXTENDED`) and answers how many there are.
    #[activity(name = "tf.plan_template")]
    pub fn plan_template(input: PlanTemplateInput) -> Result<u64, ActivityError> {
        unimplemented!()
    }

    /// Loads a slice of a template's planned tasks from the run log.
    #[activity(name = "tf.load_batch")]
    pub fn load_batch(input: LoadBatchInput) -> Result<Vec<PlannedTask>, ActivityError> {
        unimplemented!()
    }

    /// Records a human task (`human_tasks` row, `NODE_WAITING`); answers its short id.
    #[activity(name = "tf.human_task_created")]
    pub fn human_task_created(input: HumanTaskInput) -> Result<String, ActivityError> {
        unimplemented!()
    }

    /// Sends the HTTP request of an `http` task: 2xx → `{status, body}`; 4xx → non-retryable
    /// failure; 5xx, timeouts, connection errors → retryable failure.
    #[activity(name = "tf.http_request")]
    pub fn http_request(input: HttpRequestInput) -> Result<Value, ActivityError> {
        unimplemented!()
    }

    /// Marks a task running (`NODE_STARTED`). Cheap: run as a local activity.
    #[activity(name = "tf.task_started")]
    pub fn task_started(input: TaskStartedInput) -> Result<(), ActivityError> {
        unimplemented!()
    }

    /// Records a task's result (`NODE_COMPLETED` / `NODE_FAILED`). Cheap: a local activity.
    #[activity(name = "tf.task_finished")]
    pub fn task_finished(input: TaskFinishedInput) -> Result<(), ActivityError> {
        unimplemented!()
    }

    /// Records a task that started and completed at once (`NODE_STARTED` and
    /// `NODE_COMPLETED` in one write; task protocol 2). Cheap: a local activity.
    #[activity(name = "tf.task_ran")]
    pub fn task_ran(input: TaskRanInput) -> Result<(), ActivityError> {
        unimplemented!()
    }

    /// Runs one task of an own kind (`noop`, `http`) in activity mode and records its start
    /// (every attempt) and its completion with its output in the run log itself; the output
    /// stays out of the batch's history. A failure is returned; the batch records it once it
    /// is final.
    #[activity(name = "tf.run_task")]
    pub fn run_task(input: RunTaskInput) -> Result<(), ActivityError> {
        unimplemented!()
    }

    /// Writes the run-log entries a batch gathered in one activation (starts and ends of its
    /// activity-mode tasks) in one transaction. Cheap: a local activity.
    #[activity(name = "tf.task_writes")]
    pub fn task_writes(input: TaskWritesInput) -> Result<(), ActivityError> {
        unimplemented!()
    }

    /// Marks a template's tasks skipped because a dependency failed.
    #[activity(name = "tf.tasks_skipped")]
    pub fn tasks_skipped(input: TasksSkippedInput) -> Result<(), ActivityError> {
        unimplemented!()
    }

    /// Records the run's outcome (`WORKFLOW_COMPLETED` / `WORKFLOW_FAILED`).
    #[activity(name = "tf.finish_run")]
    pub fn finish_run(input: FinishRunInput) -> Result<(), ActivityError> {
        unimplemented!()
    }

    /// Records the run's cancellation: unfinished tasks `NODE_CANCELLED`, waiting human tasks
    /// cancelled, `WORKFLOW_CANCELLED` with who asked and why.
    #[activity(name = "tf.cancel_run")]
    pub fn cancel_run(input: CancelRunInput) -> Result<(), ActivityError> {
        unimplemented!()
    }

    /// The notifications a run's end asks for: one per kind that applies (`run_failed`,
    /// `task_failed`, `run_recovered`) and entry subscribed to it.
    #[activity(name = "tf.notify_plan")]
    pub fn notify_plan(input: NotifyRunInput) -> Result<Vec<Notification>, ActivityError> {
        unimplemented!()
    }

    /// Delivers one notification once: claims its row, POSTs the webhook, records the attempt;
    /// a delivered row is never posted again.
    #[activity(name = "tf.notify")]
    pub fn notify(input: Notification) -> Result<NotifyOutcome, ActivityError> {
        unimplemented!()
    }
}

/// The marker types, for `#[activity(definition = ...)]` in the implementing crate.
pub mod markers {
    pub use super::tf_activities::{
        AdmitRun, CancelRun, FinishRun, HttpRequest, HumanTaskCreated, LoadBatch, NextAdmissions, Notify, NotifyPlan,
        PlanRun, PlanTemplate, ResolveContext, RunTask, StartRun, TaskFinished, TaskRan, TaskStarted, TaskWrites,
        TasksSkipped,
    };
}
