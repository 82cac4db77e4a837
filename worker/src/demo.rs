//! `taskfactory demo-worker`: a worker of *another team*, serving two workflows and an activity
//! on its own task queue, so `workflow` and `activity` tasks can be tried (and tested) against a
//! separate process. Real deployments use their own workers, in any Temporal SDK.
//!
//! - `DemoGreeter`: `{"name": "Ada"}` → `{"greeting": "Hello, Ada!"}`; fails for `fail`;
//! - `DemoSleeper`: `{"ms": 1500, "value": x}` waits (a durable timer), then → `{"value": x}`;
//! - `demo.shout`: `{"text": "hi"}` → `{"shouted": "HI"}`.

use std::future::Future;

use anyhow::Context;
use serde_json::{Value, json};
use temporalio_client::Client;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ApplicationFailure, Runtime, Worker, WorkerOptions, WorkflowContext, WorkflowResult};

/// Greets `params.name`: `{"greeting": "Hello, NAME!"}`; fails for the name `fail`.
#[workflow]
#[derive(Default)]
pub struct DemoGreeter;

#[workflow_methods]
impl DemoGreeter {
    /// The workflow.
    #[run(name = "DemoGreeter")]
    pub async fn run(_ctx: &mut WorkflowContext<Self>, input: Value) -> WorkflowResult<Value> {
        let name = input["name"].as_str().unwrap_or("nobody").to_owned();
        if name == "fail" {
            return Err(ApplicationFailure::non_retryable(format!("cannot greet {name:?}")).into());
        }
        Ok(json!({"greeting": format!("Hello, {name}!")}))
    }
}

/// Waits `params.ms` milliseconds, then returns `{"value": params.value}`.
#[workflow]
#[derive(Default)]
pub struct DemoSleeper;

#[workflow_methods]
impl DemoSleeper {
    /// The workflow.
    #[run(name = "DemoSleeper")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: Value) -> WorkflowResult<Value> {
        ctx.timer(std::time::Duration::from_millis(input["ms"].as_u64().unwrap_or(0))).await;
        Ok(json!({"value": input["value"]}))
    }
}

/// Activities of the demo worker.
pub struct DemoActivities;

#[activities]
impl DemoActivities {
    /// `{"text": "hi"}` → `{"shouted": "HI"}`.
    #[activity(name = "demo.shout")]
    pub async fn shout(_ctx: ActivityContext, input: Value) -> Result<Value, ActivityError> {
        Ok(json!({"shouted": input["text"].as_str().unwrap_or_default().to_uppercase()}))
    }
}

/// Serves the demo workflow and activity on `task_queue` until `shutdown` resolves.
pub async fn run(client: Client, task_queue: String, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let runtime = Runtime::from_current_tokio(Default::default()).context("starting the Temporal SDK runtime")?;
    let options = WorkerOptions::new(task_queue)
        .register_workflow::<DemoGreeter>()?
        .register_workflow::<DemoSleeper>()?
        .register_activities(DemoActivities)
        .build();
    let mut worker = Worker::new(&runtime, client, options)?;
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
