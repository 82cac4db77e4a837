//! The benchmark's reference point: what Temporal costs for the same shape of work *without*
//! taskfactory (no definition, no context, no plan, no run log). Only `taskfactory bench`
//! starts these workflows, on a worker of its own ([`run_worker`], the hidden `taskfactory
//! bench-floor-worker`); the product worker does not register them.
//!
//! Two floors, one per way of writing "N tasks" by hand:
//! - the **child-workflow floor**: `FloorWorkflow` starts `children` `FloorChildWorkflow`s at
//!   once and waits for all of them; each child runs one trivial *remote* activity
//!   (`tf.floor_step`). Above [`FLOOR_GROUP`] children, the parent starts sub-parents of at most
//!   [`FLOOR_GROUP`] children each instead, because a single workflow may not have more than
//!   2,000 pending children on a default server, nor a history over 50,000 events;
//! - the **activity floor**: `FloorActivitiesWorkflow` starts one `FloorActivityBatchWorkflow`
//!   per [`ACTIVITY_BATCH`] tasks, each running its share of `tf.floor_step` activities at
//!   once: the same run → batches → tasks shape as taskfactory's activity mode, with nothing
//!   else. `--floor-batch` changes the batch size and `--floor-local` adds the same floor with
//!   *local* activities (`FloorLocalBatchWorkflow`): alternatives measured, not what
//!   taskfactory does.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use temporalio_client::Client;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::workflows::join_all;
use temporalio_sdk::{
    ActivityOptions, ChildWorkflowOptions, LocalActivityOptions, Runtime, Worker, WorkerOptions, WorkflowContext,
    WorkflowResult,
};

/// Most children one floor workflow starts directly.
pub const FLOOR_GROUP: u64 = 1_000;

/// What a floor workflow does.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FloorInput {
    /// Prefix of the children's workflow ids (the parent's own id).
    pub id_prefix: String,
    /// How many leaf children, each with one activity.
    pub children: u64,
}

/// Tasks per batch workflow of the activity floor.
pub const ACTIVITY_BATCH: u64 = 250;

/// What the activity floor does.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActivityFloorInput {
    /// Prefix of the batches' workflow ids (the parent's own id).
    pub id_prefix: String,
    /// How many activities in all.
    pub activities: u64,
    /// Activities per batch (0: [`ACTIVITY_BATCH`]).
    #[serde(default)]
    pub batch: u64,
    /// Run them as local activities (`FloorLocalBatchWorkflow`): the alternative measured
    /// for fan-outs the remote floor cannot run fast enough.
    #[serde(default)]
    pub local: bool,
}

/// The floor's activity.
pub struct FloorActivities;

#[activities]
impl FloorActivities {
    /// Returns its input: the cheapest remote activity there is.
    #[activity(name = "tf.floor_step")]
    pub async fn step(_ctx: ActivityContext, input: u64) -> Result<u64, ActivityError> {
        Ok(input)
    }
}

/// N children, each one activity; answers how many completed.
#[workflow]
#[derive(Default)]
pub struct FloorWorkflow;

#[workflow_methods]
impl FloorWorkflow {
    /// The parent (or a sub-parent).
    #[run(name = "TfFloorWorkflow")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: FloorInput) -> WorkflowResult<u64> {
        let ctx = &*ctx;
        if input.children > FLOOR_GROUP {
            let groups = input.children.div_ceil(FLOOR_GROUP);
            let parents = (0..groups).map(|g| {
                let sub = FloorInput {
                    id_prefix: format!("{}/g{g}", input.id_prefix),
                    children: FLOOR_GROUP.min(input.children - g * FLOOR_GROUP),
                };
                async move {
                    let options = ChildWorkflowOptions::builder().workflow_id(sub.id_prefix.clone()).build();
                    match ctx.start_child_workflow(FloorWorkflow::run, sub, options).await {
                        Ok(started) => started.result().await.unwrap_or(0),
                        Err(_) => 0,
                    }
                }
            });
            return Ok(join_all(parents).await.into_iter().sum());
        }
        let children = (0..input.children).map(|i| {
            let options = ChildWorkflowOptions::builder().workflow_id(format!("{}/{i}", input.id_prefix)).build();
            async move {
                match ctx.start_child_workflow(FloorChildWorkflow::run, i, options).await {
                    Ok(started) => u64::from(started.result().await.is_ok()),
                    Err(_) => 0,
                }
            }
        });
        Ok(join_all(children).await.into_iter().sum())
    }
}

/// One leaf: one remote activity.
#[workflow]
#[derive(Default)]
pub struct FloorChildWorkflow;

#[workflow_methods]
impl FloorChildWorkflow {
    /// Runs `tf.floor_step` once.
    #[run(name = "TfFloorChildWorkflow")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: u64) -> WorkflowResult<u64> {
        let options = ActivityOptions::start_to_close_timeout(Duration::from_secs(30));
        Ok(ctx.execute_activity(FloorActivities::step, input, options).await?)
    }
}

/// N activities in batches of [`ACTIVITY_BATCH`]; answers how many completed.
#[workflow]
#[derive(Default)]
pub struct FloorActivitiesWorkflow;

#[workflow_methods]
impl FloorActivitiesWorkflow {
    /// The parent: one batch child per [`ACTIVITY_BATCH`] activities.
    #[run(name = "TfFloorActivitiesWorkflow")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: ActivityFloorInput) -> WorkflowResult<u64> {
        let ctx = &*ctx;
        let per_batch = if input.batch == 0 { ACTIVITY_BATCH } else { input.batch };
        let batches = (0..input.activities.div_ceil(per_batch)).map(|b| {
            let size = per_batch.min(input.activities - b * per_batch);
            let options = ChildWorkflowOptions::builder().workflow_id(format!("{}/b{b}", input.id_prefix)).build();
            async move {
                if input.local {
                    match ctx.start_child_workflow(FloorLocalBatchWorkflow::run, size, options).await {
                        Ok(started) => started.result().await.unwrap_or(0),
                        Err(_) => 0,
                    }
                } else {
                    match ctx.start_child_workflow(FloorActivityBatchWorkflow::run, size, options).await {
                        Ok(started) => started.result().await.unwrap_or(0),
                        Err(_) => 0,
                    }
                }
            }
        });
        Ok(join_all(batches).await.into_iter().sum())
    }
}

/// One batch of the activity floor: `input` activities at once.
#[workflow]
#[derive(Default)]
pub struct FloorActivityBatchWorkflow;

#[workflow_methods]
impl FloorActivityBatchWorkflow {
    /// Runs `tf.floor_step` `input` times, concurrently.
    #[run(name = "TfFloorActivityBatchWorkflow")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: u64) -> WorkflowResult<u64> {
        let ctx = &*ctx;
        let steps = (0..input).map(|i| async move {
            let options = ActivityOptions::start_to_close_timeout(Duration::from_secs(30));
            u64::from(ctx.execute_activity(FloorActivities::step, i, options).await.is_ok())
        });
        Ok(join_all(steps).await.into_iter().sum())
    }
}

/// One batch of the local-activity floor: `input` local activities at once (each a marker in
/// the batch's history, no activity task through the server).
#[workflow]
#[derive(Default)]
pub struct FloorLocalBatchWorkflow;

#[workflow_methods]
impl FloorLocalBatchWorkflow {
    /// Runs `tf.floor_step` `input` times as local activities, concurrently.
    #[run(name = "TfFloorLocalBatchWorkflow")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: u64) -> WorkflowResult<u64> {
        let ctx = &*ctx;
        let steps = (0..input).map(|i| async move {
            let options = LocalActivityOptions::builder().start_to_close_timeout(Duration::from_secs(30)).build();
            u64::from(ctx.execute_local_activity(FloorActivities::step, i, options).await.is_ok())
        });
        Ok(join_all(steps).await.into_iter().sum())
    }
}

/// Serves the floor on `task_queue` with the SDK's defaults until `shutdown` resolves.
pub async fn run_worker(client: Client, task_queue: String, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let runtime = Runtime::from_current_tokio(Default::default()).context("starting the Temporal SDK runtime")?;
    let options = WorkerOptions::new(task_queue.clone())
        .register_workflow::<FloorWorkflow>()?
        .register_workflow::<FloorChildWorkflow>()?
        .register_workflow::<FloorActivitiesWorkflow>()?
        .register_workflow::<FloorActivityBatchWorkflow>()?
        .register_workflow::<FloorLocalBatchWorkflow>()?
        .register_activities(FloorActivities)
        .build();
    let mut worker = Worker::new(&runtime, client, options)?;
    tracing::info!(%task_queue, "worker running");
    let stop = worker.shutdown_handle();
    let running = worker.run();
    tokio::pin!(running);
    tokio::select! {
        result = &mut running => result?,
        () = shutdown => {
            stop();
            running.await?;
        }
    }
    Ok(())
}
