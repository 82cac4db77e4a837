//! `TaskBatchWorkflow`: up to [`crate::run_workflow::BATCH_SIZE`] tasks of one template.
//!
//! It loads its slice of the plan from the run log (a local activity), starts one
//! `TaskWorkflow` per task (ids unchanged: `{run}/{template}/{key}`) and waits for all of
//! them. Batches keep the run's own history small whatever the fan-out: 10,000 tasks are 40
//! batch children there, each batch holding a few hundred children of its own.

use std::time::Duration;

use taskfactory_schemas::run::{BatchInput, BatchOutcome, LoadBatchInput};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::join_all;
use temporalio_sdk::{LocalActivityOptions, WorkflowContext, WorkflowResult};

use crate::children::run_child;
use crate::contracts::TfActivities;

/// A slice of a template's tasks.
#[workflow]
#[derive(Default)]
pub struct TaskBatchWorkflow;

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
        let children = tasks.iter().map(|task| run_child(&*ctx, &input.run_workflow_id, &input.meta, task));
        let mut outcome = BatchOutcome::default();
        for ok in join_all(children).await {
            if ok { outcome.completed += 1 } else { outcome.failed += 1 }
        }
        Ok(outcome)
    }
}
