//! The Temporal worker: taskfactory's workflows and activities on one task queue.

use std::future::Future;

use anyhow::Context;
use taskfactory_activities::context::ContextClients;
use taskfactory_activities::{ActivityConfig, Store, TfActivityImpls};
use taskfactory_orchestrator::{RunActivityWorkflow, TaskBatchWorkflow, TaskWorkflow};
use temporalio_client::Client;
use temporalio_common::telemetry::TelemetryOptions;
use temporalio_sdk::runtime::RuntimeOptions;
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

/// What the worker needs.
pub struct WorkerSetup {
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
}

/// Builds the worker with every workflow and activity registered.
pub fn build(runtime: &Runtime, setup: WorkerSetup) -> anyhow::Result<Worker> {
    let activities = TfActivityImpls::new(setup.store, setup.context, setup.activity_config);
    let options = WorkerOptions::new(setup.task_queue)
        .register_workflow::<RunActivityWorkflow>()?
        .register_workflow::<TaskWorkflow>()?
        .register_workflow::<TaskBatchWorkflow>()?
        .register_activities(activities)
        .build();
    Worker::new(runtime, setup.client, options).context("creating the Temporal worker")
}

/// Runs the worker until `shutdown` resolves, then drains it (in-flight tasks finish).
///
/// The worker's future is not `Send`: call this on the task that owns it (`block_on`,
/// `select!`), not through `tokio::spawn`.
pub async fn run(setup: WorkerSetup, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
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
