//! `TaskWorkflow`: one planned task, as its own workflow.
//!
//! Its workflow id is `{run_workflow_id}/{template_id}/{item_key}`, so a task exists at most
//! once per run whatever replays, retries or resets happen. It records its start and end in
//! the run log through local activities (no extra server round trip per trace write; a `noop`
//! records both in one, under task protocol 2), and does the work by kind:
//! - `noop`: nothing; its output is its rendered params;
//! - `workflow`: starts the named workflow type on the named task queue as a child (any SDK's
//!   worker can serve it), with the task's params as input, and returns its result;
//! - `activity`: runs the named activity on the named task queue with the params as input;
//! - `http`: sends the request through the `http_request` activity (4xx fails at once, 5xx and
//!   timeouts are retried by the template's policy);
//! - `human`: records a human task and waits for the `human_decision` signal the API sends on
//!   complete or reject, or for the timeout.
//!
//! A failed task fails this workflow, so the Temporal Web UI shows it red too. A cancelled one
//! (its run was cancelled, or an operator cancelled this workflow in Temporal) is recorded
//! `cancelled` and ends Canceled.

use std::time::Duration;

use serde_json::Value;
use taskfactory_schemas::TaskSpec;
use taskfactory_schemas::run::{
    HttpRequestInput, HumanDecision, HumanTaskInput, Status, TaskFinishedInput, TaskInput, TaskRanInput,
    TaskStartedInput,
};
use temporalio_common::data_converters::RawValue;
use temporalio_common::{UntypedActivity, UntypedWorkflow};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::select;
use temporalio_sdk::{
    ActivityOptions, ApplicationFailure, ChildWorkflowOptions, LocalActivityOptions, MemoValue, SyncWorkflowContext,
    WorkflowCancellationToken, WorkflowContext, WorkflowResult, WorkflowTermination,
};

use crate::contracts::TfActivities;
use crate::convert::{json_of, retry_policy};
use crate::failure;
use crate::search::MEMO_DEFINITION_NAME;

/// A single task; holds a human task's decision once it arrives.
#[workflow]
#[derive(Default)]
pub struct TaskWorkflow {
    decision: Option<HumanDecision>,
}

fn trace_options() -> LocalActivityOptions {
    LocalActivityOptions::builder().start_to_close_timeout(Duration::from_secs(30)).build()
}

#[workflow_methods]
impl TaskWorkflow {
    /// Runs the task; the result is the task's output.
    #[run(name = "TaskWorkflow")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: TaskInput) -> WorkflowResult<Value> {
        ctx.upsert_memo([(MEMO_DEFINITION_NAME, Some(MemoValue::new(input.definition_name.clone())))])?;
        if input.protocol >= 2 && input.task.spec == TaskSpec::Noop {
            // Starts and ends at once: one write records both.
            let ran = TaskRanInput {
                run_workflow_id: input.run_workflow_id.clone(),
                task_id: input.task.task_id.clone(),
                temporal_run_id: ctx.run_id().to_owned(),
                output: input.task.params.clone(),
            };
            ctx.execute_local_activity(TfActivities::task_ran, ran, trace_options()).await?;
            return Ok(input.task.params);
        }
        let started = TaskStartedInput {
            run_workflow_id: input.run_workflow_id.clone(),
            task_id: input.task.task_id.clone(),
            temporal_run_id: ctx.run_id().to_owned(),
        };
        ctx.execute_local_activity(TfActivities::task_started, started, trace_options()).await?;

        let result = execute(ctx, &input).await;

        let cancellation = ctx.cancellation_token();
        let mut options = trace_options();
        let (status, output, error) = match &result {
            _ if cancellation.is_cancelled() => {
                // The write must still happen: on a token of its own.
                options.cancellation_token = Some(WorkflowCancellationToken::new());
                (Status::Cancelled, Value::Null, Some(failure::cancel_reason(&cancellation)))
            }
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
        ctx.execute_local_activity(TfActivities::task_finished, finished, options).await?;
        if status == Status::Cancelled {
            return Err(WorkflowTermination::cancelled());
        }
        result.map_err(|message| ApplicationFailure::non_retryable(message).into())
    }

    /// A person completed or rejected this (human) task; the first decision counts.
    #[signal(name = "human_decision")]
    pub fn decide(&mut self, _ctx: &mut SyncWorkflowContext<Self>, decision: HumanDecision) {
        if self.decision.is_none() {
            self.decision = Some(decision);
        }
    }
}

async fn execute(ctx: &WorkflowContext<TaskWorkflow>, input: &TaskInput) -> Result<Value, String> {
    let task = &input.task;
    match &task.spec {
        TaskSpec::Noop => Ok(task.params.clone()),
        TaskSpec::Workflow { workflow_type, task_queue, timeout_secs, retry } => {
            let options = ChildWorkflowOptions::builder()
                .workflow_id(format!("{}/work", task.task_id))
                .maybe_task_queue(task_queue.clone())
                .maybe_execution_timeout(timeout_secs.map(Duration::from_secs))
                .maybe_retry_policy(retry.as_ref().map(retry_policy))
                .build();
            let params = RawValue::from_value(&task.params, ctx.payload_converter());
            let started = ctx
                .start_child_workflow(UntypedWorkflow::new(workflow_type.as_str()), params, options)
                .await
                .map_err(|e| format!("could not start workflow {workflow_type:?}: {e}"))?;
            match started.result().await {
                Ok(raw) => Ok(json_of(&raw.payloads)),
                Err(e) => Err(failure::describe_error(&e)),
            }
        }
        TaskSpec::Activity { activity_type, task_queue, timeout_secs, retry } => {
            let options =
                ActivityOptions::with_start_to_close_timeout(Duration::from_secs(timeout_secs.unwrap_or(300)))
                    .maybe_task_queue(task_queue.clone())
                    .maybe_retry_policy(retry.as_ref().map(retry_policy))
                    .build();
            let params = RawValue::from_value(&task.params, ctx.payload_converter());
            match ctx.execute_activity(UntypedActivity::new(activity_type.as_str()), params, options).await {
                Ok(raw) => Ok(json_of(&raw.payloads)),
                Err(e) => Err(failure::describe_error(&e)),
            }
        }
        TaskSpec::Http { method, url, headers, body, timeout_secs, retry } => {
            let timeout = timeout_secs.unwrap_or(30);
            let request = HttpRequestInput {
                method: method.clone(),
                url: url.clone(),
                headers: headers.clone(),
                body: body.clone(),
                timeout_secs: timeout,
            };
            let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(timeout + 5))
                .maybe_retry_policy(retry.as_ref().map(retry_policy))
                .build();
            ctx.execute_activity(TfActivities::http_request, request, options)
                .await
                .map_err(|e| failure::describe_error(&e))
        }
        TaskSpec::Human { title, assignee, timeout_secs } => {
            let created = HumanTaskInput {
                run_workflow_id: input.run_workflow_id.clone(),
                task_id: task.task_id.clone(),
                title: title.clone(),
                assignee: assignee.clone(),
                form: task.params.clone(),
            };
            ctx.execute_local_activity(TfActivities::human_task_created, created, trace_options())
                .await
                .map_err(|e| failure::describe_error(&e))?;
            let mut decided = std::pin::pin!(ctx.wait_condition(|s| s.decision.is_some()));
            match timeout_secs {
                Some(secs) => {
                    let mut timer = std::pin::pin!(ctx.timer(Duration::from_secs(*secs)));
                    select! {
                        _ = decided => {},
                        _ = timer => {},
                    };
                }
                None => {
                    let _ = decided.await;
                }
            }
            match ctx.state(|s| s.decision.clone()) {
                Some(d) if d.approved => Ok(d.payload),
                Some(d) => Err(format!(
                    "rejected{}: {}",
                    d.by.map(|b| format!(" by {b}")).unwrap_or_default(),
                    d.reason.unwrap_or_default()
                )),
                None => Err(format!("nobody decided within {}s", timeout_secs.unwrap_or_default())),
            }
        }
    }
}
