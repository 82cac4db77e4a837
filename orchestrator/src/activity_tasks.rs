//! Tasks in activity mode (ADR-017): each task one activity of its `TaskBatchWorkflow`,
//! instead of a `TaskWorkflow` of its own. The activity id is the task id and its summary a
//! readable label, so the batch's history in the Temporal Web UI lists every task by name.
//!
//! - Own kinds (`noop`, `http`) run `tf.run_task` on the worker's own queue (so the SDK can
//!   hand it back eagerly, with the workflow task's completion), or, in `local` mode, as a
//!   local activity in the worker running the batch (a marker in its history, no activity
//!   task). The activity records the task's start and completion itself, through the
//!   process's group-committed task log.
//! - The `activity` kind runs the named activity on its queue; it knows nothing of
//!   taskfactory, so the batch records the start and the outcome.
//!
//! What the batch records (starts of `activity` tasks, every final failure) goes into a
//! [`WriteBuffer`] in its state; one [`flush`] loop writes all that has gathered with a single
//! `task_writes` local activity, one at a time: one write per activation, not one per task.
//! Replays rebuild the same entries, and every write is idempotent by event key.

use std::time::Duration;

use taskfactory_schemas::plan::PlannedTask;
use taskfactory_schemas::run::{BatchInput, RunTaskInput, Status, TaskLogEntry, TaskWritesInput};
use taskfactory_schemas::{Execution, TaskSpec};
use temporalio_common::UntypedActivity;
use temporalio_common::data_converters::RawValue;
use temporalio_sdk::{ActivityOptions, LocalActivityOptions, WorkflowCancellationToken, WorkflowContext};

use crate::contracts::TfActivities;
use crate::convert::{json_of, retry_policy};
use crate::failure;

/// Run-log entries a batch has gathered and not yet written, and how many of its
/// activity-mode tasks are still open.
#[derive(Debug, Default)]
pub struct WriteBuffer {
    entries: Vec<TaskLogEntry>,
    open: usize,
}

/// A workflow whose state holds a [`WriteBuffer`].
pub(crate) trait Buffered {
    /// The buffer, to change.
    fn buffer(&mut self) -> &mut WriteBuffer;
    /// The buffer, to read.
    fn buffered(&self) -> &WriteBuffer;
}

/// Runs one task as an activity; `true` when it completed. The caller has counted it in
/// [`WriteBuffer`]'s open tasks ([`open`]).
pub(crate) async fn run<W: Buffered>(ctx: &WorkflowContext<W>, batch: &BatchInput, task: &PlannedTask) -> bool {
    let label = format!("{}: {} / {}", batch.meta.definition_name, task.template_id, task.item_key);
    let outcome = match &task.spec {
        spec if spec.own_activity().is_some() => own_kind(ctx, batch, task, label).await,
        TaskSpec::Activity { activity_type, task_queue, timeout_secs, retry } => {
            record(ctx, TaskLogEntry::Started { task_id: task.task_id.clone() });
            let options =
                ActivityOptions::with_start_to_close_timeout(Duration::from_secs(timeout_secs.unwrap_or(300)))
                    .activity_id(task.task_id.clone())
                    .summary(label)
                    .maybe_task_queue(task_queue.clone())
                    .maybe_retry_policy(retry.as_ref().map(retry_policy))
                    .build();
            let params = RawValue::from_value(&task.params, ctx.payload_converter());
            match ctx.execute_activity(UntypedActivity::new(activity_type.as_str()), params, options).await {
                Ok(raw) => {
                    let output = json_of(&raw.payloads);
                    record(ctx, finished(task, Status::Completed, output, None));
                    Ok(())
                }
                Err(e) => Err(failure::describe_error(&e)),
            }
        }
        _ => Err("this kind runs as a workflow of its own, never as an activity".to_owned()),
    };
    let cancellation = ctx.cancellation_token();
    match &outcome {
        Err(_) if cancellation.is_cancelled() => {
            let reason = failure::cancel_reason(&cancellation);
            record(ctx, finished(task, Status::Cancelled, serde_json::Value::Null, Some(reason)));
        }
        Err(message) => record(ctx, finished(task, Status::Failed, serde_json::Value::Null, Some(message.clone()))),
        Ok(()) => {}
    }
    ctx.state_mut(|s| s.buffer().open -= 1);
    outcome.is_ok()
}

/// Kinds taskfactory runs itself (`noop`, `http`): `tf.run_task` records start and completion,
/// as an activity of the batch or, in `local` mode, as a local activity.
async fn own_kind<W: Buffered>(
    ctx: &WorkflowContext<W>,
    batch: &BatchInput,
    task: &PlannedTask,
    label: String,
) -> Result<(), String> {
    let (timeout_secs, retry) = task.spec.own_activity().unwrap_or((30, None));
    let input = RunTaskInput { run_workflow_id: batch.run_workflow_id.clone(), task: task.clone() };
    let ran = if task.execution == Execution::Local {
        let mut options = LocalActivityOptions::builder()
            .start_to_close_timeout(Duration::from_secs(timeout_secs))
            .activity_id(task.task_id.clone())
            .summary(label)
            .build();
        if let Some(retry) = retry {
            options.retry_policy = retry_policy(retry);
        }
        ctx.execute_local_activity(TfActivities::run_task, input, options).await
    } else {
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(timeout_secs))
            .activity_id(task.task_id.clone())
            .summary(label)
            .maybe_retry_policy(retry.map(retry_policy))
            .build();
        ctx.execute_activity(TfActivities::run_task, input, options).await
    };
    ran.map(|_| ()).map_err(|e| failure::describe_error(&e))
}

fn finished(task: &PlannedTask, status: Status, output: serde_json::Value, error: Option<String>) -> TaskLogEntry {
    TaskLogEntry::Finished { task_id: task.task_id.clone(), status, output, error }
}

fn record<W: Buffered>(ctx: &WorkflowContext<W>, entry: TaskLogEntry) {
    ctx.state_mut(|s| s.buffer().entries.push(entry));
}

/// Counts `n` tasks as open before they start, so [`flush`] waits for all of them.
pub(crate) fn open<W: Buffered>(ctx: &WorkflowContext<W>, n: usize) {
    ctx.state_mut(|s| s.buffer().open += n);
}

/// Writes what the batch gathers until every open task has finished and everything is
/// written. A write that fails for good fails the batch (its error is returned); so does a
/// cancellation, which leaves what is gathered to [`write_rest`].
pub(crate) async fn flush<W: Buffered>(ctx: &WorkflowContext<W>, batch: &BatchInput) -> Result<(), String> {
    loop {
        ctx.wait_condition(|s| !s.buffered().entries.is_empty() || s.buffered().open == 0)
            .await
            .map_err(|_| "the batch was cancelled".to_owned())?;
        if !write(ctx, batch, None).await? {
            return Ok(());
        }
    }
}

/// Writes what is gathered once the batch was cancelled (its tasks recorded `cancelled`), on a
/// token of its own so the write still happens.
pub(crate) async fn write_rest<W: Buffered>(ctx: &WorkflowContext<W>, batch: &BatchInput) -> Result<(), String> {
    write(ctx, batch, Some(WorkflowCancellationToken::new())).await.map(|_| ())
}

/// Writes the gathered entries with one `task_writes` local activity; `false` when there
/// were none.
async fn write<W: Buffered>(
    ctx: &WorkflowContext<W>,
    batch: &BatchInput,
    token: Option<WorkflowCancellationToken>,
) -> Result<bool, String> {
    let entries = ctx.state_mut(|s| std::mem::take(&mut s.buffer().entries));
    if entries.is_empty() {
        return Ok(false);
    }
    let input = TaskWritesInput {
        run_workflow_id: batch.run_workflow_id.clone(),
        workflow_id: ctx.workflow_id().to_owned(),
        temporal_run_id: ctx.run_id().to_owned(),
        entries,
    };
    let mut options = LocalActivityOptions::builder().start_to_close_timeout(Duration::from_secs(60)).build();
    options.cancellation_token = token;
    ctx.execute_local_activity(TfActivities::task_writes, input, options)
        .await
        .map_err(|e| format!("recording task outcomes failed: {}", failure::describe_error(&e)))?;
    Ok(true)
}
