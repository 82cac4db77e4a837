//! `RunActivityWorkflow`: one run of a definition.
//!
//! 1. `start_run` records the run and loads the definition version it will use for its whole
//!    life (a later edit never changes a running run);
//! 2. `resolve_context` resolves the context sources;
//! 3. `plan_run` runs the pure planner; the plan lands in history, so replay never re-renders a
//!    template with newer code;
//! 4. the task DAG runs: one future per template waits until every template it depends on has
//!    finished, then starts one child `TaskWorkflow` per planned task and waits for them. All
//!    template futures run concurrently under the SDK's deterministic `join_all`, so
//!    independent branches run in parallel;
//! 5. `finish_run` records the outcome.
//!
//! If a task fails, templates that depend on its template are skipped (recorded as such) and
//! the run fails once everything that could run has finished.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::DateTime;

use taskfactory_schemas::plan::{PlannedTask, TemplatePlan};
use taskfactory_schemas::run::{
    FinishRunInput, LoadedDefinition, PlanRunInput, ResolveContextInput, RunInput, RunOutcome, RunTrigger, StartRunInput, Status,
    TaskInput, TasksSkippedInput,
};
use taskfactory_schemas::Plan;
use temporalio_common::search_attributes::SearchAttributes;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::join_all;
use temporalio_sdk::{ActivityOptions, ApplicationFailure, ChildWorkflowOptions, MemoValue, WorkflowContext, WorkflowResult};

use crate::contracts::TfActivities;
use crate::failure;
use crate::search::{MEMO_DEFINITION_NAME, SCHEDULED_START_TIME, TF_DEFINITION_ID, TF_KIND, TF_TRIGGER, TF_VERSION};
use crate::task_workflow::TaskWorkflow;

/// Durable state of a run: which templates have finished, and which of them failed.
#[workflow]
#[derive(Default)]
pub struct RunActivityWorkflow {
    finished_templates: BTreeSet<String>,
    failed_templates: BTreeSet<String>,
}

/// What a template's group of tasks came to.
#[derive(Default)]
struct GroupResult {
    spawned: u64,
    completed: u64,
    failed: u64,
    skipped: u64,
}

fn step_options(timeout: Duration) -> ActivityOptions {
    ActivityOptions::start_to_close_timeout(timeout)
}

#[workflow_methods]
impl RunActivityWorkflow {
    /// Runs the definition named in `input` once.
    #[run(name = "RunActivityWorkflow")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: RunInput) -> WorkflowResult<RunOutcome> {
        let run_workflow_id = ctx.workflow_id().to_owned();
        let mut input = input;
        if input.trigger.kind == RunTrigger::Schedule && input.trigger.scheduled_for.is_none() {
            // A schedule's action input is fixed; the slot comes from Temporal's attribute.
            let slot = ctx.search_attributes().get(&SCHEDULED_START_TIME);
            input.trigger.scheduled_for = slot.and_then(|t| DateTime::from_timestamp(t.seconds(), u32::try_from(t.nanos()).unwrap_or(0)));
        }
        let start = StartRunInput { run_workflow_id: run_workflow_id.clone(), temporal_run_id: ctx.run_id().to_owned(), run: input.clone() };
        let loaded = match ctx.execute_activity(TfActivities::start_run, start, step_options(Duration::from_secs(60))).await {
            Ok(loaded) => loaded,
            Err(e) => {
                let message = e.failure().map_or_else(|| e.to_string(), failure::describe);
                return fail(ctx, &run_workflow_id, RunOutcome::default(), format!("loading the definition failed: {message}")).await;
            }
        };
        ctx.upsert_search_attributes([TF_VERSION.value_set(i64::from(loaded.version))]);
        ctx.upsert_memo([(MEMO_DEFINITION_NAME, Some(MemoValue::new(loaded.definition.name.clone())))])?;

        let resolve = ResolveContextInput { run_workflow_id: run_workflow_id.clone(), loaded: loaded.clone(), trigger: input.trigger.clone() };
        let context = match ctx.execute_activity(TfActivities::resolve_context, resolve, step_options(Duration::from_secs(300))).await {
            Ok(context) => context,
            Err(e) => {
                let message = e.failure().map_or_else(|| e.to_string(), failure::describe);
                return fail(ctx, &run_workflow_id, RunOutcome::default(), format!("resolving the context failed: {message}")).await;
            }
        };

        let plan_input = PlanRunInput { run_workflow_id: run_workflow_id.clone(), loaded: loaded.clone(), trigger: input.trigger.clone(), context };
        let plan = match ctx.execute_activity(TfActivities::plan_run, plan_input, step_options(Duration::from_secs(120))).await {
            Ok(plan) => plan,
            Err(e) => {
                let message = e.failure().map_or_else(|| e.to_string(), failure::describe);
                return fail(ctx, &run_workflow_id, RunOutcome::default(), format!("planning failed: {message}")).await;
            }
        };

        let meta = ChildMeta { run_workflow_id: &run_workflow_id, input: &input, loaded: &loaded };
        let outcome = run_dag(ctx, &meta, &plan).await;
        if outcome.tasks_failed > 0 {
            let message = format!("{} of {} tasks failed", outcome.tasks_failed, outcome.tasks_spawned);
            return fail(ctx, &run_workflow_id, outcome, message).await;
        }
        let finish = FinishRunInput { run_workflow_id, status: Status::Completed, outcome: outcome.clone(), error: None };
        ctx.execute_activity(TfActivities::finish_run, finish, step_options(Duration::from_secs(60))).await?;
        Ok(outcome)
    }
}

/// Records the failure in the run log, then fails the workflow with the same message.
async fn fail(
    ctx: &WorkflowContext<RunActivityWorkflow>,
    run_workflow_id: &str,
    outcome: RunOutcome,
    message: String,
) -> WorkflowResult<RunOutcome> {
    let finish = FinishRunInput { run_workflow_id: run_workflow_id.to_owned(), status: Status::Failed, outcome, error: Some(message.clone()) };
    ctx.execute_activity(TfActivities::finish_run, finish, step_options(Duration::from_secs(60))).await?;
    Err(ApplicationFailure::non_retryable(message).into())
}

/// What every child needs to know about its run.
struct ChildMeta<'a> {
    run_workflow_id: &'a str,
    input: &'a RunInput,
    loaded: &'a LoadedDefinition,
}

async fn run_dag(ctx: &WorkflowContext<RunActivityWorkflow>, meta: &ChildMeta<'_>, plan: &Plan) -> RunOutcome {
    let groups = plan.templates.iter().map(|template| run_group(ctx, meta, plan, template));
    let mut outcome = RunOutcome::default();
    for group in join_all(groups).await {
        outcome.tasks_spawned += group.spawned;
        outcome.tasks_completed += group.completed;
        outcome.tasks_failed += group.failed;
        outcome.tasks_skipped += group.skipped;
    }
    outcome
}

/// Waits for the template's dependencies, then runs its tasks (or skips them).
async fn run_group(
    ctx: &WorkflowContext<RunActivityWorkflow>,
    meta: &ChildMeta<'_>,
    plan: &Plan,
    template: &TemplatePlan,
) -> GroupResult {
    let deps = &template.depends_on;
    let waited = ctx.wait_condition(|s| deps.iter().all(|d| s.finished_templates.contains(d))).await;
    let failed_dep = match waited {
        Ok(()) => ctx.state(|s| deps.iter().find(|d| s.failed_templates.contains(*d)).cloned()),
        // The run was cancelled while this template waited: start nothing new.
        Err(_) => Some("the run was cancelled".to_owned()),
    };
    let mut result = GroupResult::default();
    if let Some(dep) = failed_dep {
        result.skipped = template.tasks as u64;
        if template.tasks > 0 {
            let skipped = TasksSkippedInput {
                run_workflow_id: meta.run_workflow_id.to_owned(),
                template_id: template.id.clone(),
                reason: if waited.is_ok() { format!("dependency {dep:?} failed") } else { dep },
            };
            // Best effort: the run's outcome does not depend on this bookkeeping.
            let _ = ctx.execute_activity(TfActivities::tasks_skipped, skipped, step_options(Duration::from_secs(60))).await;
        }
    } else {
        let children = plan.tasks_of(&template.id).map(|task| run_child(ctx, meta, task));
        for ok in join_all(children).await {
            result.spawned += 1;
            if ok { result.completed += 1 } else { result.failed += 1 }
        }
    }
    ctx.state_mut(|s| {
        s.finished_templates.insert(template.id.clone());
        // A skipped template counts as failed for its own dependents.
        if result.failed > 0 || result.skipped > 0 {
            s.failed_templates.insert(template.id.clone());
        }
    });
    result
}

/// Starts one `TaskWorkflow` and waits for it; `true` when it completed.
async fn run_child(ctx: &WorkflowContext<RunActivityWorkflow>, meta: &ChildMeta<'_>, task: &PlannedTask) -> bool {
    let attributes = SearchAttributes::new([
        TF_DEFINITION_ID.value_set(meta.input.definition_id.to_string()),
        TF_TRIGGER.value_set(meta.input.trigger.kind.as_str().to_owned()),
        TF_VERSION.value_set(i64::from(meta.loaded.version)),
        TF_KIND.value_set("task".to_owned()),
    ]);
    let options = ChildWorkflowOptions::builder()
        .workflow_id(task.task_id.clone())
        .search_attributes(attributes)
        .static_summary(format!("{} / {}", task.template_id, task.item_key))
        .build();
    let input = TaskInput {
        run_workflow_id: meta.run_workflow_id.to_owned(),
        definition_name: meta.loaded.definition.name.clone(),
        task: task.clone(),
    };
    match ctx.start_child_workflow(TaskWorkflow::run, input, options).await {
        Ok(started) => started.result().await.is_ok(),
        Err(_) => false,
    }
}
