//! `TaskWorkflow`: one planned task, as its own workflow.
//!
//! Its workflow id is `{run_workflow_id}/{template_id}/{item_key}`, so a task exists at most
//! once per run whatever replays, retries or resets happen. It records its start and end in
//! the run log through local activities (no extra server round trip per trace write), and does
//! the work by kind:
//! - `noop`: nothing; its output is its rendered params;
//! - `workflow`: starts the named workflow type on the named task queue as a child (any SDK's
//!   worker can serve it), with the task's params as input, and returns its result.
//!
//! A failed task fails this workflow, so the Temporal Web UI shows it red too.

use std::time::Duration;

use serde_json::Value;
use taskfactory_schemas::TaskSpec;
use taskfactory_schemas::run::{Status, TaskFinishedInput, TaskInput, TaskStartedInput};
use temporalio_common::UntypedWorkflow;
use temporalio_common::data_converters::RawValue;
use temporalio_common::protos::temporal::api::common::v1::Payload;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ApplicationFailure, ChildWorkflowOptions, LocalActivityOptions, MemoValue, WorkflowContext, WorkflowResult};

use crate::contracts::TfActivities;
use crate::failure;
use crate::search::MEMO_DEFINITION_NAME;

/// A single task.
#[workflow]
#[derive(Default)]
pub struct TaskWorkflow;

fn trace_options() -> LocalActivityOptions {
    LocalActivityOptions::builder().start_to_close_timeout(Duration::from_secs(30)).build()
}

#[workflow_methods]
impl TaskWorkflow {
    /// Runs the task; the result is the task's output.
    #[run(name = "TaskWorkflow")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: TaskInput) -> WorkflowResult<Value> {
        ctx.upsert_memo([(MEMO_DEFINITION_NAME, Some(MemoValue::new(input.definition_name.clone())))])?;
        let started = TaskStartedInput {
            run_workflow_id: input.run_workflow_id.clone(),
            task_id: input.task.task_id.clone(),
            temporal_run_id: ctx.run_id().to_owned(),
        };
        ctx.execute_local_activity(TfActivities::task_started, started, trace_options()).await?;

        let result = execute(ctx, &input).await;

        let (status, output, error) = match &result {
            Ok(output) => (Status::Completed, output.clone(), None),
            Err(message) => (Status::Failed, Value::Null, Some(message.clone())),
        };
        let finished = TaskFinishedInput {
            run_workflow_id: input.run_workflow_id.clone(),
            task_id: input.task.task_id.clone(),
            status,
            output,
            error,
        };
        ctx.execute_local_activity(TfActivities::task_finished, finished, trace_options()).await?;
        result.map_err(|message| ApplicationFailure::non_retryable(message).into())
    }
}

async fn execute(ctx: &WorkflowContext<TaskWorkflow>, input: &TaskInput) -> Result<Value, String> {
    match &input.task.spec {
        // A noop's output is its rendered params: a data-shaping step for its dependents.
        TaskSpec::Noop => Ok(input.task.params.clone()),
        TaskSpec::Workflow { workflow_type, task_queue, timeout_secs } => {
            let options = ChildWorkflowOptions::builder()
                .workflow_id(format!("{}/work", input.task.task_id))
                .maybe_task_queue(task_queue.clone())
                .maybe_execution_timeout(timeout_secs.map(Duration::from_secs))
                .build();
            let params = RawValue::from_value(&input.task.params, ctx.payload_converter());
            let started = ctx
                .start_child_workflow(UntypedWorkflow::new(workflow_type.as_str()), params, options)
                .await
                .map_err(|e| format!("could not start workflow {workflow_type:?}: {e}"))?;
            match started.result().await {
                Ok(raw) => Ok(json_of(&raw.payloads)),
                Err(e) => Err(e.failure().map_or_else(|| e.to_string(), failure::describe)),
            }
        }
    }
}

/// The JSON value of a workflow result; non-JSON payloads are described, never decoded blindly.
fn json_of(payloads: &[Payload]) -> Value {
    let Some(payload) = payloads.first() else { return Value::Null };
    let encoding = payload.metadata.get("encoding").map(|e| String::from_utf8_lossy(e).into_owned()).unwrap_or_default();
    match encoding.as_str() {
        "json/plain" => serde_json::from_slice(&payload.data).unwrap_or(Value::Null),
        "binary/null" | "" if payload.data.is_empty() => Value::Null,
        other => serde_json::json!({"encoding": other, "bytes": payload.data.len()}),
    }
}
