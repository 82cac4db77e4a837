//! `TaskBatchWorkflow`: up to [`crate::run_workflow::BATCH_SIZE`] tasks of one template.
//!
//! It loads its slice of the plan from the run log (a local activity) and runs every task at
//! once, each the way its plan says (ADR-017): a task in `workflow` mode as a `TaskWorkflow`
//! child (ids unchanged: `{run}/{template}/{key}`), a task in `activity` mode as one activity
//! of this workflow ([`crate::activity_tasks`]). Batches keep the run's own history small
//! whatever the fan-out: 10,000 tasks are 40 batch children there.
//!
//! In a retry, tasks reused from the retried run are counted completed and never run. A
//! cancelled batch records its unfinished activity-mode tasks `cancelled` and ends Canceled.
//!
//! Plans made before execution modes existed carry no mode: every task is a child, and the
//! batch issues exactly the commands it always did, so their histories replay unchanged.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use taskfactory_schemas::Execution;
use taskfactory_schemas::run::{BatchInput, BatchOutcome, LoadBatchInput};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::{join, join_all};
use temporalio_sdk::{ApplicationFailure, LocalActivityOptions, WorkflowContext, WorkflowResult, WorkflowTermination};

use crate::activity_tasks::{self, Buffered, WriteBuffer};
use crate::children::run_child;
use crate::contracts::TfActivities;

/// A slice of a template's tasks; holds the run-log writes of its activity-mode tasks until
/// they are written.
#[workflow]
#[derive(Default)]
pub struct TaskBatchWorkflow {
    buffer: WriteBuffer,
}

impl Buffered for TaskBatchWorkflow {
    fn buffer(&mut self) -> &mut WriteBuffer {
        &mut self.buffer
    }

    fn buffered(&self) -> &WriteBuffer {
        &self.buffer
    }
}

type TaskFuture<'a> = Pin<Box<dyn Future<Output = bool> + 'a>>;

#[workflow_methods]
impl TaskBatchWorkflow {
    /// Runs the slice; counts completed and failed tasks.
    #[run(name = "TaskBatchWorkflow")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: BatchInput) -> WorkflowResult<BatchOutcome> {
        let load = LoadBatchInput {
            run_workflow_id: input.run_workflow_id.clone(),
            template_id: input.template_id.clone(),
            offset: input.offset,
            limit: input.limit,
        };
        let options = LocalActivityOptions::builder().start_to_close_timeout(Duration::from_secs(60)).build();
        let tasks = ctx.execute_local_activity(TfActivities::load_batch, load, options).await?;
        let ctx = &*ctx;
        let mut outcome = BatchOutcome::default();
        let count = |outcome: &mut BatchOutcome, results: Vec<bool>| {
            for ok in results {
                if ok { outcome.completed += 1 } else { outcome.failed += 1 }
            }
        };
        // Tasks a retry reused are recorded completed already: they never run.
        let reused = tasks.iter().filter(|t| t.reused_from.is_some()).count();
        outcome.completed += reused as u64;
        let tasks: Vec<_> = tasks.into_iter().filter(|t| t.reused_from.is_none()).collect();
        let as_activities = tasks.iter().filter(|t| t.execution.in_batch()).count();
        if as_activities == 0 {
            let children = tasks.iter().map(|task| run_child(ctx, &input.run_workflow_id, &input.meta, task));
            count(&mut outcome, join_all(children).await);
            if ctx.cancellation_token().is_cancelled() {
                // Each child records its own cancellation.
                return Err(WorkflowTermination::cancelled());
            }
            return Ok(outcome);
        }
        activity_tasks::open(ctx, as_activities);
        let runs = tasks.iter().map(|task| -> TaskFuture<'_> {
            match task.execution {
                Execution::Activity | Execution::Local => Box::pin(activity_tasks::run(ctx, &input, task)),
                Execution::Workflow => Box::pin(run_child(ctx, &input.run_workflow_id, &input.meta, task)),
            }
        });
        let (results, written) = join!(join_all(runs), activity_tasks::flush(ctx, &input));
        count(&mut outcome, results);
        if ctx.cancellation_token().is_cancelled() {
            activity_tasks::write_rest(ctx, &input).await.map_err(ApplicationFailure::non_retryable)?;
            return Err(WorkflowTermination::cancelled());
        }
        written.map_err(ApplicationFailure::non_retryable)?;
        Ok(outcome)
    }
}
