//! `RunActivityWorkflow`: one run of a definition.
//!
//! 1. `start_run` records the run and loads the definition version it will use for its whole
//!    life (a later edit never changes a running run);
//!    A definition with `concurrency` then waits for a slot of its key ([`wait_for_slot`]):
//!    queued runs wait for a signal, skipped ones end here; a run's end frees its slot
//!    ([`release_slot`]);
//! 2. `resolve_context` resolves the context sources;
//! 3. `plan_run` runs the pure planner; the plan lands in history, so replay never re-renders a
//!    template with newer code;
//! 4. the task DAG runs: one future per template waits until every template it depends on has
//!    finished (a *ready queue* on workflow state), plans the template if it reads its
//!    dependencies' outputs (`plan_template`), then runs its tasks in `TaskBatchWorkflow`
//!    children of at most [`BATCH_SIZE`] tasks each. The batches load their tasks from the run
//!    log, so a run of 10,000 tasks keeps a small history here. At most `max_parallel` tasks of
//!    the run are in flight; independent branches run in parallel (SDK `join_all`);
//! 5. `finish_run` records the outcome;
//! 6. only when the definition has `notify` entries: `notify_plan` says which notifications
//!    the outcome asks for (`run_failed`, `task_failed`, `run_recovered`) and each is
//!    delivered by a `tf.notify` of its own ([`crate::notify_workflow::deliver`]); a failed
//!    delivery never changes the run's outcome. Definitions without entries issue exactly the
//!    commands they always did, so older histories replay unchanged.
//!
//! Failures: with `failure_policy: continue` (default), templates depending on a failed one are
//! skipped (recorded as such) and the run fails once everything that could run has finished;
//! with `fail_fast`, no new batch starts after the first failure.
//!
//! Cancellation (through taskfactory's API or in Temporal): the SDK cancels what is in flight
//! (batches, children, activities, timers) and every wait ends, so no new work starts; the
//! run then records its cancellation (`cancel_run`, on a token of its own so it still runs:
//! unfinished tasks `NODE_CANCELLED`, waiting human tasks cancelled, `WORKFLOW_CANCELLED` with
//! who asked and why) and ends Canceled in Temporal.
//!
//! Runs recorded before batching (no `tf-batched-fanout` marker in history) replay through
//! [`run_dag_v1`], which started every task as a direct child.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::DateTime;

use taskfactory_schemas::Plan;
use taskfactory_schemas::definition::FailurePolicy;
use taskfactory_schemas::notify::{NotifyEntry, NotifyRunInput};
use taskfactory_schemas::plan::TemplatePlan;
use taskfactory_schemas::run::{
    Admission, AdmitInput, BatchInput, BatchOutcome, CancelRunInput, FinishRunInput, LoadedDefinition, PlanRunInput,
    PlanTemplateInput, ReleaseInput, ResolveContextInput, RunInput, RunOutcome, RunTrigger, StartRunInput, Status,
    TaskMeta, TasksSkippedInput, TriggerInfo,
};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::{join_all, select};
use temporalio_sdk::{
    ActivityOptions, ApplicationFailure, ChildWorkflowOptions, MemoValue, SignalWorkflowOptions, SyncWorkflowContext,
    WorkflowCancellationToken, WorkflowContext, WorkflowResult, WorkflowTermination,
};

use crate::batch_workflow::TaskBatchWorkflow;
use crate::children::run_child;
use crate::contracts::TfActivities;
use crate::failure;
use crate::notify_workflow;
use crate::search::{self, Kind, MEMO_DEFINITION_NAME, SCHEDULED_START_TIME, TF_VERSION};

/// Durable state of a run: which templates have finished, and which of them failed.
#[workflow]
#[derive(Default)]
pub struct RunActivityWorkflow {
    finished_templates: BTreeSet<String>,
    failed_templates: BTreeSet<String>,
    /// Tasks of this run in flight (for `max_parallel`).
    running: usize,
    /// Set by the first failure under `fail_fast`: no new batch starts.
    stop_starting: bool,
    /// Errors planning deferred templates; they fail the run.
    plan_errors: Vec<String>,
    /// The concurrency key the run asked a slot of (definitions with `concurrency`).
    admission_key: Option<String>,
    /// Signals received that a slot may have freed (`tf_admission`).
    admission_wakes: u64,
    /// The definition's `notify` entries, once loaded (`None`: nothing to notify).
    notify: Option<NotifyScope>,
}

/// Who to notify at the run's end.
#[derive(Clone)]
struct NotifyScope {
    definition_id: String,
    definition_name: String,
    entries: Vec<NotifyEntry>,
}

/// How often a queued run asks for its slot again when no signal woke it (a run that ended
/// without workflow code, e.g. terminated, sends none).
pub const ADMISSION_RECHECK: Duration = Duration::from_secs(30);

/// Most tasks one `TaskBatchWorkflow` runs.
pub const BATCH_SIZE: usize = 250;
/// Patch marker of the batched fan-out (runs without it replay through [`run_dag_v1`]).
pub const PATCH_BATCHED: &str = "tf-batched-fanout";

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
            input.trigger.scheduled_for =
                slot.and_then(|t| DateTime::from_timestamp(t.seconds(), u32::try_from(t.nanos()).unwrap_or(0)));
        }
        let start = StartRunInput {
            run_workflow_id: run_workflow_id.clone(),
            temporal_run_id: ctx.run_id().to_owned(),
            run: input.clone(),
        };
        let loaded =
            match ctx.execute_activity(TfActivities::start_run, start, step_options(Duration::from_secs(60))).await {
                Ok(loaded) => loaded,
                Err(e) => {
                    let message = failure::describe_error(&e);
                    return fail(
                        ctx,
                        &run_workflow_id,
                        RunOutcome::default(),
                        format!("loading the definition failed: {message}"),
                    )
                    .await;
                }
            };
        if !loaded.definition.notify.is_empty() {
            let scope = NotifyScope {
                definition_id: input.definition_id.as_str().to_owned(),
                definition_name: loaded.definition.name.clone(),
                entries: loaded.definition.notify.clone(),
            };
            ctx.state_mut(|s| s.notify = Some(scope));
        }
        ctx.upsert_search_attributes([TF_VERSION.value_set(i64::from(loaded.version))]);
        ctx.upsert_memo([(MEMO_DEFINITION_NAME, Some(MemoValue::new(loaded.definition.name.clone())))])?;

        if let Some(concurrency) = loaded.definition.concurrency.clone() {
            let admit = AdmitInput {
                run_workflow_id: run_workflow_id.clone(),
                definition_id: input.definition_id.clone(),
                concurrency,
                trigger: input.trigger.clone(),
            };
            match wait_for_slot(ctx, admit).await {
                Gate::Admitted => {}
                Gate::Skipped => return Ok(RunOutcome::default()),
                Gate::Cancelled => return cancelled(ctx, &run_workflow_id).await,
                Gate::Failed(message) => {
                    return fail(ctx, &run_workflow_id, RunOutcome::default(), message).await;
                }
            }
        }

        let resolve = ResolveContextInput {
            run_workflow_id: run_workflow_id.clone(),
            loaded: loaded.clone(),
            trigger: input.trigger.clone(),
        };
        let context = match ctx
            .execute_activity(TfActivities::resolve_context, resolve, step_options(Duration::from_secs(300)))
            .await
        {
            Ok(context) => context,
            Err(e) => {
                let message = failure::describe_error(&e);
                return fail(
                    ctx,
                    &run_workflow_id,
                    RunOutcome::default(),
                    format!("resolving the context failed: {message}"),
                )
                .await;
            }
        };

        let batched = ctx.patched(PATCH_BATCHED);
        let plan_input = PlanRunInput {
            run_workflow_id: run_workflow_id.clone(),
            loaded: loaded.clone(),
            trigger: input.trigger.clone(),
            context,
            summary_only: batched,
        };
        let plan = match ctx
            .execute_activity(TfActivities::plan_run, plan_input, step_options(Duration::from_secs(120)))
            .await
        {
            Ok(plan) => plan,
            Err(e) => {
                let message = failure::describe_error(&e);
                return fail(ctx, &run_workflow_id, RunOutcome::default(), format!("planning failed: {message}")).await;
            }
        };

        let meta = TaskMeta {
            definition_id: input.definition_id.clone(),
            definition_name: loaded.definition.name.clone(),
            version: loaded.version,
            trigger: input.trigger.kind,
        };
        let outcome = if batched {
            let run =
                RunScope { run_workflow_id: &run_workflow_id, meta: &meta, loaded: &loaded, trigger: &input.trigger };
            run_dag(ctx, &run, &plan).await
        } else {
            run_dag_v1(ctx, &run_workflow_id, &meta, &plan).await
        };
        if ctx.cancellation_token().is_cancelled() {
            return cancelled(ctx, &run_workflow_id).await;
        }
        let plan_errors = ctx.state(|s| s.plan_errors.clone());
        if !plan_errors.is_empty() {
            return fail(ctx, &run_workflow_id, outcome, plan_errors.join("; ")).await;
        }
        if outcome.tasks_failed > 0 {
            let message = format!("{} of {} tasks failed", outcome.tasks_failed, outcome.tasks_spawned);
            return fail(ctx, &run_workflow_id, outcome, message).await;
        }
        let finish = FinishRunInput {
            run_workflow_id: run_workflow_id.clone(),
            status: Status::Completed,
            outcome: outcome.clone(),
            error: None,
        };
        ctx.execute_activity(TfActivities::finish_run, finish, step_options(Duration::from_secs(60))).await?;
        release_slot(ctx, &run_workflow_id).await;
        notify(ctx, &run_workflow_id, Status::Completed, None).await;
        Ok(outcome)
    }

    /// A slot of this run's concurrency key may have freed: the run (if queued) asks again.
    #[signal(name = "tf_admission")]
    pub fn admission(&mut self, _ctx: &mut SyncWorkflowContext<Self>, _ended: String) {
        self.admission_wakes += 1;
    }
}

/// How the wait for a concurrency slot ended.
enum Gate {
    Admitted,
    Skipped,
    Cancelled,
    Failed(String),
}

/// Asks for a slot of the run's concurrency key until it has one (`queue`, `cancel_running`)
/// or is turned away (`skip`). Queued, the run waits for a `tf_admission` signal (sent by the
/// run that ends, or by the API for a run closed in Temporal) or [`ADMISSION_RECHECK`], then
/// asks again; the store decides under a lock per key, so no slot is granted twice.
async fn wait_for_slot(ctx: &WorkflowContext<RunActivityWorkflow>, input: AdmitInput) -> Gate {
    let mut cancel_asked = false;
    loop {
        let seen = ctx.state(|s| s.admission_wakes);
        let admission = match ctx
            .execute_activity(TfActivities::admit_run, input.clone(), step_options(Duration::from_secs(60)))
            .await
        {
            Ok(admission) => admission,
            Err(_) if ctx.cancellation_token().is_cancelled() => return Gate::Cancelled,
            Err(e) => {
                return Gate::Failed(format!("asking for a concurrency slot failed: {}", failure::describe_error(&e)));
            }
        };
        match admission {
            Admission::Admitted { key } => {
                ctx.state_mut(|s| s.admission_key = Some(key));
                return Gate::Admitted;
            }
            Admission::Skipped { .. } => return Gate::Skipped,
            Admission::Invalid { message } => return Gate::Failed(message),
            Admission::Queued { key, cancel } => {
                ctx.state_mut(|s| s.admission_key = Some(key.clone()));
                if let Some(victim) = cancel.filter(|_| !cancel_asked) {
                    cancel_asked = true;
                    let reason = format!(
                        "concurrency key {key:?}: {} takes its slot (on_limit: cancel_running)",
                        input.run_workflow_id
                    );
                    // A run that has ended meanwhile cannot be cancelled: nothing to do then.
                    let _ = ctx.external_workflow(victim, None).cancel(Some(reason)).await;
                }
                let mut woken = std::pin::pin!(ctx.wait_condition(|s| s.admission_wakes > seen));
                let mut recheck = std::pin::pin!(ctx.timer(ADMISSION_RECHECK));
                select! {
                    _ = woken => {},
                    _ = recheck => {},
                };
                if ctx.cancellation_token().is_cancelled() {
                    return Gate::Cancelled;
                }
            }
        }
    }
}

/// The run has ended: the queued runs of its concurrency key that may now have a slot are
/// signalled to ask again (on detached tokens: a cancelled run frees its slot too). Best
/// effort: a queued run also asks again every [`ADMISSION_RECHECK`].
async fn release_slot(ctx: &WorkflowContext<RunActivityWorkflow>, run_workflow_id: &str) {
    if ctx.state(|s| s.admission_key.is_none()) {
        return;
    }
    let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
        .cancellation_token(WorkflowCancellationToken::new())
        .build();
    let input = ReleaseInput { run_workflow_id: run_workflow_id.to_owned() };
    let Ok(next) = ctx.execute_activity(TfActivities::next_admissions, input, options).await else {
        return;
    };
    for queued in next {
        let options = SignalWorkflowOptions::builder().cancellation_token(WorkflowCancellationToken::new()).build();
        let _ = ctx
            .external_workflow(queued, None)
            .signal(RunActivityWorkflow::admission, run_workflow_id.to_owned(), options)
            .await;
    }
}

/// Sends the notifications the run's outcome asks for, when its definition has `notify`
/// entries (best effort: deliveries record their own failures).
async fn notify(
    ctx: &WorkflowContext<RunActivityWorkflow>,
    run_workflow_id: &str,
    status: Status,
    error: Option<String>,
) {
    let Some(scope) = ctx.state(|s| s.notify.clone()) else { return };
    let input = NotifyRunInput {
        run_workflow_id: run_workflow_id.to_owned(),
        definition_id: scope.definition_id,
        definition_name: scope.definition_name,
        status,
        error,
        entries: scope.entries,
    };
    if let Ok(notifications) =
        ctx.execute_activity(TfActivities::notify_plan, input, step_options(Duration::from_secs(60))).await
    {
        notify_workflow::deliver(ctx, notifications).await;
    }
}

/// Records the failure in the run log, then fails the workflow with the same message; a run
/// failing because it was cancelled records its cancellation instead.
async fn fail(
    ctx: &WorkflowContext<RunActivityWorkflow>,
    run_workflow_id: &str,
    outcome: RunOutcome,
    message: String,
) -> WorkflowResult<RunOutcome> {
    if ctx.cancellation_token().is_cancelled() {
        return cancelled(ctx, run_workflow_id).await;
    }
    let finish = FinishRunInput {
        run_workflow_id: run_workflow_id.to_owned(),
        status: Status::Failed,
        outcome,
        error: Some(message.clone()),
    };
    ctx.execute_activity(TfActivities::finish_run, finish, step_options(Duration::from_secs(60))).await?;
    release_slot(ctx, run_workflow_id).await;
    notify(ctx, run_workflow_id, Status::Failed, Some(message.clone())).await;
    Err(ApplicationFailure::non_retryable(message).into())
}

/// Records the run's cancellation (on a detached token: the run's own is cancelled), then ends
/// the workflow Canceled.
async fn cancelled(ctx: &WorkflowContext<RunActivityWorkflow>, run_workflow_id: &str) -> WorkflowResult<RunOutcome> {
    let input =
        CancelRunInput { run_workflow_id: run_workflow_id.to_owned(), reason: ctx.cancellation_token().reason() };
    let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
        .cancellation_token(WorkflowCancellationToken::new())
        .build();
    ctx.execute_activity(TfActivities::cancel_run, input, options).await?;
    release_slot(ctx, run_workflow_id).await;
    Err(WorkflowTermination::cancelled())
}

/// What the DAG of one run needs.
struct RunScope<'a> {
    run_workflow_id: &'a str,
    meta: &'a TaskMeta,
    loaded: &'a LoadedDefinition,
    trigger: &'a TriggerInfo,
}

async fn run_dag(ctx: &WorkflowContext<RunActivityWorkflow>, run: &RunScope<'_>, plan: &Plan) -> RunOutcome {
    let groups = plan.templates.iter().map(|template| run_group(ctx, run, template));
    sum(join_all(groups).await)
}

fn sum(groups: Vec<GroupResult>) -> RunOutcome {
    let mut outcome = RunOutcome::default();
    for group in groups {
        outcome.tasks_spawned += group.spawned;
        outcome.tasks_completed += group.completed;
        outcome.tasks_failed += group.failed;
        outcome.tasks_skipped += group.skipped;
    }
    outcome
}

/// Waits until every template in `deps` has finished; `Err(reason)` when the template must
/// not run (a dependency failed, the run is failing fast, or it was cancelled).
async fn wait_for_dependencies(ctx: &WorkflowContext<RunActivityWorkflow>, deps: &[String]) -> Result<(), String> {
    if ctx.wait_condition(|s| deps.iter().all(|d| s.finished_templates.contains(d))).await.is_err() {
        return Err("the run was cancelled".to_owned());
    }
    ctx.state(|s| match deps.iter().find(|d| s.failed_templates.contains(*d)) {
        Some(dep) => Err(format!("dependency {dep:?} failed")),
        None if s.stop_starting => Err("not started: the run is failing fast".to_owned()),
        None => Ok(()),
    })
}

/// Records a template's pending tasks as skipped (best effort: bookkeeping only).
async fn skip_template(
    ctx: &WorkflowContext<RunActivityWorkflow>,
    run_workflow_id: &str,
    template_id: &str,
    reason: String,
) {
    let skipped =
        TasksSkippedInput { run_workflow_id: run_workflow_id.to_owned(), template_id: template_id.to_owned(), reason };
    let _ = ctx.execute_activity(TfActivities::tasks_skipped, skipped, step_options(Duration::from_secs(60))).await;
}

/// Marks a template finished; a template with failed or skipped tasks counts as failed for
/// its dependents.
fn finish_template(ctx: &WorkflowContext<RunActivityWorkflow>, template_id: &str, result: &GroupResult) {
    ctx.state_mut(|s| {
        s.finished_templates.insert(template_id.to_owned());
        if result.failed > 0 || result.skipped > 0 {
            s.failed_templates.insert(template_id.to_owned());
        }
    });
}

/// One template: wait for its dependencies, plan it if deferred, run its tasks in batches.
async fn run_group(
    ctx: &WorkflowContext<RunActivityWorkflow>,
    run: &RunScope<'_>,
    template: &TemplatePlan,
) -> GroupResult {
    let mut result = GroupResult::default();
    if let Err(reason) = wait_for_dependencies(ctx, &template.depends_on).await {
        result.skipped = template.tasks as u64;
        skip_template(ctx, run.run_workflow_id, &template.id, reason).await;
        finish_template(ctx, &template.id, &result);
        return result;
    }
    let count = if template.deferred {
        let input = PlanTemplateInput {
            run_workflow_id: run.run_workflow_id.to_owned(),
            loaded: run.loaded.clone(),
            trigger: run.trigger.clone(),
            template_id: template.id.clone(),
        };
        match ctx.execute_activity(TfActivities::plan_template, input, step_options(Duration::from_secs(120))).await {
            Ok(count) => usize::try_from(count).unwrap_or(usize::MAX),
            Err(e) => {
                let message = failure::describe_error(&e);
                ctx.state_mut(|s| s.plan_errors.push(format!("planning {:?} failed: {message}", template.id)));
                result.skipped = 1;
                finish_template(ctx, &template.id, &result);
                return result;
            }
        }
    } else {
        template.tasks
    };
    let max_parallel = run.loaded.definition.max_parallel() as usize;
    let batch_size = BATCH_SIZE.min(max_parallel).max(1);
    let batches = (0..count.div_ceil(batch_size)).map(|index| {
        let offset = index * batch_size;
        run_batch(ctx, run, &template.id, index, offset, batch_size.min(count - offset), max_parallel)
    });
    for batch in join_all(batches).await {
        result.spawned += batch.spawned;
        result.completed += batch.completed;
        result.failed += batch.failed;
        result.skipped += batch.skipped;
    }
    if result.skipped > 0 {
        skip_template(ctx, run.run_workflow_id, &template.id, "not started: the run is failing fast".to_owned()).await;
    }
    finish_template(ctx, &template.id, &result);
    result
}

/// Runs tasks `[offset, offset + len)` of a template as one `TaskBatchWorkflow`, once
/// `max_parallel` leaves room for all of them.
async fn run_batch(
    ctx: &WorkflowContext<RunActivityWorkflow>,
    run: &RunScope<'_>,
    template_id: &str,
    index: usize,
    offset: usize,
    len: usize,
    max_parallel: usize,
) -> GroupResult {
    let fail_fast = run.loaded.definition.failure_policy == FailurePolicy::FailFast;
    let admitted = ctx.wait_condition(|s| s.stop_starting || s.running + len <= max_parallel).await;
    if admitted.is_err() || ctx.state(|s| s.stop_starting) {
        return GroupResult { skipped: len as u64, ..GroupResult::default() };
    }
    ctx.state_mut(|s| s.running += len);
    let attributes = search::attributes(&run.meta.definition_id, run.meta.trigger, Some(run.meta.version), Kind::Batch);
    let options = ChildWorkflowOptions::builder()
        .workflow_id(format!("{}/~batch/{template_id}/{index}", run.run_workflow_id))
        .search_attributes(attributes)
        .static_summary(format!("{template_id}: tasks {offset}..{}", offset + len))
        .build();
    let input = BatchInput {
        run_workflow_id: run.run_workflow_id.to_owned(),
        meta: run.meta.clone(),
        template_id: template_id.to_owned(),
        offset: offset as u64,
        limit: len as u64,
    };
    let outcome = match ctx.start_child_workflow(TaskBatchWorkflow::run, input, options).await {
        Ok(started) => started.result().await.unwrap_or(BatchOutcome { completed: 0, failed: len as u64 }),
        Err(_) => BatchOutcome { completed: 0, failed: len as u64 },
    };
    ctx.state_mut(|s| {
        s.running -= len;
        if outcome.failed > 0 && fail_fast {
            s.stop_starting = true;
        }
    });
    GroupResult { spawned: len as u64, completed: outcome.completed, failed: outcome.failed, skipped: 0 }
}

/// The DAG as runs recorded before batching executed it: every task a direct child, plans
/// carried in history. Kept so those histories replay.
async fn run_dag_v1(
    ctx: &WorkflowContext<RunActivityWorkflow>,
    run_workflow_id: &str,
    meta: &TaskMeta,
    plan: &Plan,
) -> RunOutcome {
    let groups = plan.templates.iter().map(|template| async move {
        let mut result = GroupResult::default();
        if let Err(reason) = wait_for_dependencies(ctx, &template.depends_on).await {
            result.skipped = template.tasks as u64;
            if template.tasks > 0 {
                skip_template(ctx, run_workflow_id, &template.id, reason).await;
            }
        } else {
            let children = plan.tasks_of(&template.id).map(|task| run_child(ctx, run_workflow_id, meta, task));
            for ok in join_all(children).await {
                result.spawned += 1;
                if ok { result.completed += 1 } else { result.failed += 1 }
            }
        }
        finish_template(ctx, &template.id, &result);
        result
    });
    sum(join_all(groups).await)
}
