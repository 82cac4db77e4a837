//! The Temporal worker: taskfactory's workflows and activities on one task queue.

use std::future::Future;

use anyhow::Context;
use taskfactory_activities::context::ContextClients;
use taskfactory_activities::{ActivityConfig, Store, TfActivityImpls};
use taskfactory_orchestrator::{NotifyWorkflow, RunActivityWorkflow, TaskBatchWorkflow, TaskWorkflow};
use temporalio_client::Client;
use temporalio_common::telemetry::TelemetryOptions;
use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder, WorkerTuner};
use temporalio_sdk::runtime::{PollerBehavior, RuntimeOptions};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

/// What the worker needs.
pub struct WorkerConfig {
    /// Temporal client (namespace-bound).
    pub client: Client,
    /// Task queue to poll.
    pub task_queue: String,
    /// The run log.
    pub store: Store,
    /// What context sources read from.
    pub context: ContextClients,
    /// Activity limits.
    pub activity_config: ActivityConfig,
    /// Pollers and slots.
    pub tuning: WorkerTuning,
}

/// How hard the worker polls. The defaults are the SDK's (five workflow-task polls, a fifth of
/// them on the non-sticky queue where new task workflows arrive; five activity polls). Raising
/// them made no difference to fan-out throughput on a 2-core machine, where the Temporal
/// server is the bottleneck (wiki/benchmarks.md); on a real cluster with several workers,
/// more pollers per worker can help.
#[derive(Clone, Copy, Debug)]
pub struct WorkerTuning {
    /// Concurrent workflow-task polls, sticky and non-sticky together.
    pub workflow_pollers: usize,
    /// Share of `workflow_pollers` on the non-sticky queue.
    pub nonsticky_ratio: f32,
    /// Concurrent activity-task polls.
    pub activity_pollers: usize,
    /// Workflows kept in the worker's cache (sticky execution).
    pub max_cached_workflows: usize,
    /// Activities run at once (the SDK's default: 100). In activity mode a batch of 250 tasks
    /// has 250 activities ready at once.
    pub activity_slots: usize,
    /// Activities the server may hand back with a workflow task's completion (eager dispatch,
    /// no poll round trip; the SDK's default: 3).
    pub eager_activities: usize,
}

impl Default for WorkerTuning {
    fn default() -> Self {
        Self {
            workflow_pollers: 5,
            nonsticky_ratio: 0.2,
            activity_pollers: 5,
            max_cached_workflows: 2_500,
            activity_slots: 100,
            eager_activities: 3,
        }
    }
}

/// Builds the worker with every workflow and activity registered.
pub fn build(runtime: &Runtime, setup: WorkerConfig) -> anyhow::Result<Worker> {
    let activities = TfActivityImpls::new(setup.store, setup.context, setup.activity_config);
    let tuning = setup.tuning;
    let options = WorkerOptions::new(setup.task_queue)
        .workflow_task_poller_behavior(PollerBehavior::SimpleMaximum(tuning.workflow_pollers.max(2)))
        .nonsticky_to_sticky_poll_ratio(tuning.nonsticky_ratio)
        .activity_task_poller_behavior(PollerBehavior::SimpleMaximum(tuning.activity_pollers.max(1)))
        .max_cached_workflows(tuning.max_cached_workflows)
        .tuner(tuner(tuning.activity_slots))
        .max_eager_activity_reservations_per_workflow_task(tuning.eager_activities)
        .register_workflow::<RunActivityWorkflow>()?
        .register_workflow::<TaskWorkflow>()?
        .register_workflow::<TaskBatchWorkflow>()?
        .register_workflow::<NotifyWorkflow>()?
        .register_activities(activities)
        .build();
    Worker::new(runtime, setup.client, options).context("creating the Temporal worker")
}

/// The SDK's default slots (100 of each), with `activity_slots` activity slots.
fn tuner(activity_slots: usize) -> WorkerTuner {
    let fixed = |n: usize| FixedSizeSlotSupplier::new(n.max(1));
    TunerHolder::builder()
        .workflow_task_slot_supplier(fixed(100))
        .activity_task_slot_supplier(fixed(activity_slots))
        .local_activity_task_slot_supplier(fixed(100))
        .nexus_task_slot_supplier(fixed(100))
        .build()
        .into()
}

/// Runs the worker until `shutdown` resolves, then drains it (in-flight tasks finish).
///
/// The worker's future is not `Send`: call this on the task that owns it (`block_on`,
/// `select!`), not through `tokio::spawn`.
pub async fn run(setup: WorkerConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    // The SDK's worker metrics go to the process-wide registry behind `/metrics`.
    let telemetry = TelemetryOptions::builder().metrics(taskfactory_activities::metrics::temporal_meter()).build();
    let options = RuntimeOptions::builder().telemetry_options(telemetry).build().map_err(anyhow::Error::msg)?;
    let runtime = Runtime::from_current_tokio(options).context("starting the Temporal SDK runtime")?;
    let task_queue = setup.task_queue.clone();
    let mut worker = build(&runtime, setup)?;
    tracing::info!(task_queue = %task_queue, "worker running");
    let stop = worker.shutdown_handle();
    let running = worker.run();
    tokio::pin!(running);
    tokio::select! {
        result = &mut running => result.context("the worker stopped")?,
        () = shutdown => {
            stop();
            running.await.context("draining the worker")?;
        }
    }
    Ok(())
}
