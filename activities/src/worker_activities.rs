//! The implementations of the activity contracts in `taskfactory_orchestrator::contracts`.
//!
//! Each is a thin adapter: decode, call the [`Store`] or the context resolver, map errors.
//! Permanent problems (a missing definition, bad SQL, a template error) are non-retryable;
//! everything else (Postgres down, a timeout) is retried by Temporal with backoff.

use std::sync::Arc;

use serde_json::Value;
use taskfactory_orchestrator::contracts::markers as tf_activities;
use taskfactory_schemas::notify::{Notification, NotifyOutcome, NotifyRunInput};
use taskfactory_schemas::plan::{PlanRequest, plan, plan_deferred};
use taskfactory_schemas::run::Status;
use taskfactory_schemas::run::{
    Admission, AdmitInput, CancelRunInput, FinishRunInput, HttpRequestInput, HumanTaskInput, LoadBatchInput,
    LoadedDefinition, PlanRunInput, PlanTemplateInput, ReleaseInput, ResolveContextInput, RunTaskInput, StartRunInput,
    TaskFinishedInput, TaskLogEntry, TaskRanInput, TaskStartedInput, TaskWritesInput, TasksSkippedInput,
};
use taskfactory_schemas::{Plan, PlannedTask, TaskSpec};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use tracing::instrument;

use crate::context::{self, ContextClients, ContextLimits};
use crate::failure::{permanent, store_error};
use crate::store::{Store, TaskLog, TaskWrite};

/// Longest rendered concurrency key.
pub const MAX_CONCURRENCY_KEY: usize = 200;

/// Tunables of the activities.
#[derive(Clone, Debug)]
pub struct ActivityConfig {
    /// Context resolution limits.
    pub context_limits: ContextLimits,
    /// The most tasks one run may plan.
    pub max_tasks_per_run: usize,
    /// Group concurrent task writes into shared transactions ([`TaskLog`]); off writes each
    /// one in its own transaction (kept to measure what grouping buys).
    pub group_task_writes: bool,
    /// The UI's public base URL, for the links notifications carry.
    pub public_url: String,
}

/// Default of [`ActivityConfig::public_url`]: where `taskfactory dev` and `taskfactory api`
/// serve by default.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

impl Default for ActivityConfig {
    fn default() -> Self {
        Self {
            context_limits: ContextLimits::default(),
            max_tasks_per_run: 50_000,
            group_task_writes: true,
            public_url: DEFAULT_PUBLIC_URL.to_owned(),
        }
    }
}

/// The activity worker's shared state.
pub struct TfActivityImpls {
    store: Store,
    /// Groups the task writes of concurrent task workflows into shared transactions.
    task_log: TaskLog,
    /// Sends the requests of `http` tasks.
    http: reqwest::Client,
    /// What context sources read from.
    context: ContextClients,
    config: ActivityConfig,
}

impl TfActivityImpls {
    /// Builds the activities over a store and what context sources read from (on a Tokio
    /// runtime: it starts the task writer).
    pub fn new(store: Store, context: ContextClients, config: ActivityConfig) -> Self {
        let task_log = TaskLog::start(store.clone());
        Self { store, task_log, context, config, http: crate::egress::http_client() }
    }
}

impl TfActivityImpls {
    /// Writes task state changes of one run, grouped with concurrent ones unless configured not to.
    async fn write_task(&self, run: &str, writes: Vec<TaskWrite>) -> Result<(), ActivityError> {
        let result = if self.config.group_task_writes {
            self.task_log.write(run, writes).await
        } else {
            self.store.task_writes(run, &writes.iter().collect::<Vec<_>>()).await
        };
        result.map_err(store_error)
    }
}

/// The workflow that called an activity (a run, batch or task workflow): every log line of
/// an activity carries its id and Temporal run id, with `run` (the run's workflow id).
fn workflow_id(ctx: &ActivityContext) -> &str {
    ctx.info().workflow_id.as_deref().unwrap_or_default()
}

fn temporal_run_id(ctx: &ActivityContext) -> &str {
    ctx.info().workflow_run_id.as_deref().unwrap_or_default()
}

#[activities]
impl TfActivityImpls {
    #[activity(definition = tf_activities::StartRun)]
    #[instrument(skip_all, fields(run = %input.run_workflow_id, workflow_id = workflow_id(&ctx), temporal_run_id = temporal_run_id(&ctx)))]
    pub async fn start_run(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: StartRunInput,
    ) -> Result<LoadedDefinition, ActivityError> {
        let run = &input.run;
        self.store
            .start_run(
                &input.run_workflow_id,
                &input.temporal_run_id,
                &run.definition_id,
                &run.trigger,
                run.retry_of.as_deref(),
            )
            .await
            .map_err(store_error)?;
        let loaded = self.store.load_for_run(&run.definition_id, run.version).await.map_err(store_error)?;
        self.store.set_version_used(&input.run_workflow_id, loaded.version).await.map_err(store_error)?;
        tracing::info!(definition_id = %run.definition_id, version = loaded.version, trigger = run.trigger.kind.as_str(), "run started");
        Ok(loaded)
    }

    #[activity(definition = tf_activities::ResolveContext)]
    #[instrument(skip_all, fields(run = %input.run_workflow_id, workflow_id = workflow_id(&ctx), temporal_run_id = temporal_run_id(&ctx)))]
    pub async fn resolve_context(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ResolveContextInput,
    ) -> Result<Value, ActivityError> {
        // A retry reuses the retried run's snapshot unless it asked to resolve anew.
        if let Some(source) = self.store.retry_source(&input.run_workflow_id).await.map_err(store_error)?
            && !source.plan.refresh_context
        {
            let value = self.store.context_snapshot(&source.run_workflow_id).await.map_err(store_error)?;
            self.store.record_context(&input.run_workflow_id, &value).await.map_err(store_error)?;
            return Ok(value);
        }
        let resolved = context::resolve(
            &self.context,
            &input.loaded,
            &input.trigger,
            &Default::default(),
            self.config.context_limits,
        )
        .await;
        let value = match resolved {
            Ok(value) => value,
            Err(e) if e.permanent => return Err(permanent(e.to_string())),
            Err(e) => return Err(anyhow::Error::new(e).into()),
        };
        self.store.record_context(&input.run_workflow_id, &value).await.map_err(store_error)?;
        Ok(value)
    }

    #[activity(definition = tf_activities::PlanRun)]
    #[instrument(skip_all, fields(run = %input.run_workflow_id, workflow_id = workflow_id(&ctx), temporal_run_id = temporal_run_id(&ctx)))]
    pub async fn plan_run(self: Arc<Self>, ctx: ActivityContext, input: PlanRunInput) -> Result<Plan, ActivityError> {
        let request = PlanRequest {
            definition: &input.loaded.definition,
            version: input.loaded.version,
            run_workflow_id: &input.run_workflow_id,
            context: &input.context,
            trigger: &input.trigger,
            max_tasks: self.config.max_tasks_per_run,
        };
        let mut made = plan(&request).map_err(|e| permanent(e.to_string()))?;
        self.store.record_plan(&input.run_workflow_id, &made).await.map_err(store_error)?;
        tracing::info!(tasks = made.tasks.len(), templates = made.templates.len(), "run planned");
        if input.summary_only {
            made.tasks.clear();
            made.decisions.clear();
        }
        Ok(made)
    }

    #[activity(definition = tf_activities::PlanTemplate)]
    #[instrument(skip_all, fields(run = %input.run_workflow_id, workflow_id = workflow_id(&ctx), temporal_run_id = temporal_run_id(&ctx)))]
    pub async fn plan_template(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: PlanTemplateInput,
    ) -> Result<u64, ActivityError> {
        let template = input
            .loaded
            .definition
            .template(&input.template_id)
            .ok_or_else(|| permanent(format!("no template {:?}", input.template_id)))?;
        let outputs =
            self.store.task_outputs(&input.run_workflow_id, &template.depends_on).await.map_err(store_error)?;
        let context = self.store.context_snapshot(&input.run_workflow_id).await.map_err(store_error)?;
        let planned: i64 = self.store.count_tasks(&input.run_workflow_id).await.map_err(store_error)?;
        let request = PlanRequest {
            definition: &input.loaded.definition,
            version: input.loaded.version,
            run_workflow_id: &input.run_workflow_id,
            context: &context,
            trigger: &input.trigger,
            max_tasks: self.config.max_tasks_per_run,
        };
        let chunk = plan_deferred(&request, &input.template_id, &outputs, usize::try_from(planned).unwrap_or(0))
            .map_err(|e| permanent(e.to_string()))?;
        self.store
            .record_template_plan(&input.run_workflow_id, &input.template_id, &chunk)
            .await
            .map_err(store_error)?;
        Ok(chunk.tasks.len() as u64)
    }

    #[activity(definition = tf_activities::LoadBatch)]
    #[instrument(skip_all, fields(run = %input.run_workflow_id, workflow_id = workflow_id(&ctx), temporal_run_id = temporal_run_id(&ctx)))]
    pub async fn load_batch(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: LoadBatchInput,
    ) -> Result<Vec<PlannedTask>, ActivityError> {
        let offset = i64::try_from(input.offset).unwrap_or(i64::MAX);
        let limit = i64::try_from(input.limit).unwrap_or(i64::MAX);
        self.store.load_tasks(&input.run_workflow_id, &input.template_id, offset, limit).await.map_err(store_error)
    }

    #[activity(definition = tf_activities::HumanTaskCreated)]
    #[instrument(skip_all, fields(run = %input.run_workflow_id, workflow_id = workflow_id(&ctx), temporal_run_id = temporal_run_id(&ctx)))]
    pub async fn human_task_created(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: HumanTaskInput,
    ) -> Result<String, ActivityError> {
        self.store
            .human_task_created(
                &input.run_workflow_id,
                &input.task_id,
                &input.title,
                input.assignee.as_deref(),
                &input.form,
            )
            .await
            .map_err(store_error)
    }

    #[activity(definition = tf_activities::HttpRequest)]
    #[instrument(skip_all, fields(workflow_id = workflow_id(&ctx), temporal_run_id = temporal_run_id(&ctx), method = %input.method))]
    pub async fn http_request(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: HttpRequestInput,
    ) -> Result<Value, ActivityError> {
        let answer = crate::kinds::http::send(&self.http, &self.context.egress, &self.context.secrets, &input).await;
        if let Err(e) = &answer {
            // Secrets are redacted from these errors by `send`.
            tracing::warn!(error = ?e, "http request failed");
        }
        answer
    }

    #[activity(definition = tf_activities::RunTask)]
    #[instrument(skip_all, fields(run = %input.run_workflow_id, task = %input.task.task_id, workflow_id = workflow_id(&ctx), temporal_run_id = temporal_run_id(&ctx)))]
    pub async fn run_task(self: Arc<Self>, ctx: ActivityContext, input: RunTaskInput) -> Result<(), ActivityError> {
        let info = ctx.info();
        let task_id = input.task.task_id.clone();
        let started = TaskWrite::Started {
            task_id: task_id.clone(),
            temporal_run_id: info.workflow_run_id.clone().unwrap_or_default(),
            workflow_id: info.workflow_id.clone(),
            attempt: info.attempt,
        };
        let tools =
            crate::kinds::Tools { http: &self.http, egress: &self.context.egress, secrets: &self.context.secrets };
        let finished =
            |output| TaskWrite::Finished { task_id: task_id.clone(), status: Status::Completed, output, error: None };
        if input.task.spec == TaskSpec::Noop {
            // Starts and ends at once: one write records both.
            let output = crate::kinds::execute(&tools, &input.task).await?;
            return self.write_task(&input.run_workflow_id, vec![started, finished(output)]).await;
        }
        self.write_task(&input.run_workflow_id, vec![started]).await?;
        let output = crate::kinds::execute(&tools, &input.task).await.inspect_err(|e| {
            // Secrets are redacted from these errors by the kind.
            tracing::warn!(error = ?e, attempt = info.attempt, "task attempt failed");
        })?;
        self.write_task(&input.run_workflow_id, vec![finished(output)]).await
    }

    #[activity(definition = tf_activities::TaskWrites)]
    #[instrument(skip_all, fields(run = %input.run_workflow_id, entries = input.entries.len(), workflow_id = workflow_id(&ctx), temporal_run_id = temporal_run_id(&ctx)))]
    pub async fn task_writes(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: TaskWritesInput,
    ) -> Result<(), ActivityError> {
        let writes = input
            .entries
            .into_iter()
            .map(|entry| match entry {
                TaskLogEntry::Started { task_id } => TaskWrite::Started {
                    task_id,
                    temporal_run_id: input.temporal_run_id.clone(),
                    workflow_id: Some(input.workflow_id.clone()),
                    attempt: 1,
                },
                TaskLogEntry::Finished { task_id, status, output, error } => {
                    if status == Status::Failed {
                        tracing::warn!(task_id = %task_id, error = error.as_deref().unwrap_or_default(), "task failed");
                    }
                    TaskWrite::Finished { task_id, status, output, error }
                }
            })
            .collect();
        self.write_task(&input.run_workflow_id, writes).await
    }

    #[activity(definition = tf_activities::TaskStarted)]
    #[instrument(skip_all, fields(run = %input.run_workflow_id, workflow_id = workflow_id(&ctx), temporal_run_id = temporal_run_id(&ctx)))]
    pub async fn task_started(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: TaskStartedInput,
    ) -> Result<(), ActivityError> {
        let write = TaskWrite::Started {
            task_id: input.task_id,
            temporal_run_id: input.temporal_run_id,
            workflow_id: None,
            attempt: 1,
        };
        self.write_task(&input.run_workflow_id, vec![write]).await
    }

    #[activity(definition = tf_activities::TaskRan)]
    #[instrument(skip_all, fields(run = %input.run_workflow_id, workflow_id = workflow_id(&ctx), temporal_run_id = temporal_run_id(&ctx)))]
    pub async fn task_ran(self: Arc<Self>, ctx: ActivityContext, input: TaskRanInput) -> Result<(), ActivityError> {
        let writes = vec![
            TaskWrite::Started {
                task_id: input.task_id.clone(),
                temporal_run_id: input.temporal_run_id,
                workflow_id: None,
                attempt: 1,
            },
            TaskWrite::Finished {
                task_id: input.task_id,
                status: Status::Completed,
                output: input.output,
                error: None,
            },
        ];
        self.write_task(&input.run_workflow_id, writes).await
    }

    #[activity(definition = tf_activities::TaskFinished)]
    #[instrument(skip_all, fields(run = %input.run_workflow_id, workflow_id = workflow_id(&ctx), temporal_run_id = temporal_run_id(&ctx)))]
    pub async fn task_finished(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: TaskFinishedInput,
    ) -> Result<(), ActivityError> {
        if input.status == Status::Failed {
            tracing::warn!(task_id = %input.task_id, error = input.error.as_deref().unwrap_or_default(), "task failed");
        }
        let write = TaskWrite::Finished {
            task_id: input.task_id,
            status: input.status,
            output: input.output,
            error: input.error,
        };
        self.write_task(&input.run_workflow_id, vec![write]).await
    }

    #[activity(definition = tf_activities::TasksSkipped)]
    #[instrument(skip_all, fields(run = %input.run_workflow_id, workflow_id = workflow_id(&ctx), temporal_run_id = temporal_run_id(&ctx)))]
    pub async fn tasks_skipped(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: TasksSkippedInput,
    ) -> Result<(), ActivityError> {
        tracing::info!(template_id = %input.template_id, reason = %input.reason, "tasks skipped");
        self.store.tasks_skipped(&input.run_workflow_id, &input.template_id, &input.reason).await.map_err(store_error)
    }

    #[activity(definition = tf_activities::FinishRun)]
    #[instrument(skip_all, fields(run = %input.run_workflow_id, workflow_id = workflow_id(&ctx), temporal_run_id = temporal_run_id(&ctx)))]
    pub async fn finish_run(self: Arc<Self>, ctx: ActivityContext, input: FinishRunInput) -> Result<(), ActivityError> {
        self.store
            .finish_run(&input.run_workflow_id, input.status, &input.outcome, input.error.as_deref())
            .await
            .map_err(store_error)?;
        let (status, spawned) = (input.status.as_str(), input.outcome.tasks_spawned);
        match input.error.as_deref() {
            Some(error) => tracing::warn!(status, tasks_spawned = spawned, error, "run finished"),
            None => tracing::info!(status, tasks_spawned = spawned, "run finished"),
        }
        Ok(())
    }

    #[activity(definition = tf_activities::CancelRun)]
    #[instrument(skip_all, fields(run = %input.run_workflow_id, workflow_id = workflow_id(&ctx), temporal_run_id = temporal_run_id(&ctx)))]
    pub async fn cancel_run(self: Arc<Self>, ctx: ActivityContext, input: CancelRunInput) -> Result<(), ActivityError> {
        let reason = input.reason.filter(|r| !r.is_empty()).unwrap_or_else(|| "cancelled in Temporal".to_owned());
        let closed = self
            .store
            .close_run_in_temporal(&input.run_workflow_id, Status::Cancelled, &reason)
            .await
            .map_err(store_error)?;
        tracing::info!(reason = %reason, recorded = closed, "run cancelled");
        Ok(())
    }

    #[activity(definition = tf_activities::AdmitRun)]
    #[instrument(skip_all, fields(run = %input.run_workflow_id, workflow_id = workflow_id(&ctx)))]
    pub async fn admit_run(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: AdmitInput,
    ) -> Result<Admission, ActivityError> {
        let c = &input.concurrency;
        let key = match &c.key {
            None => String::new(),
            Some(template) => {
                let scope = serde_json::json!({"event": input.trigger.event, "trigger": input.trigger});
                match taskfactory_schemas::template::Templates::new().render_text(template, &scope) {
                    Ok(key) if key.len() <= MAX_CONCURRENCY_KEY => key,
                    Ok(key) => {
                        return Ok(Admission::Invalid {
                            message: format!(
                                "concurrency.key rendered to {} characters (at most {MAX_CONCURRENCY_KEY})",
                                key.len()
                            ),
                        });
                    }
                    Err(e) => return Ok(Admission::Invalid { message: format!("concurrency.key: {e}") }),
                }
            }
        };
        let admission = self
            .store
            .admit_run(&input.run_workflow_id, input.definition_id.as_str(), &key, c.limit, c.on_limit)
            .await
            .map_err(store_error)?;
        tracing::info!(key = %key, admission = ?admission, "concurrency admission");
        Ok(admission)
    }

    #[activity(definition = tf_activities::NextAdmissions)]
    #[instrument(skip_all, fields(run = %input.run_workflow_id, workflow_id = workflow_id(&ctx)))]
    pub async fn next_admissions(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ReleaseInput,
    ) -> Result<Vec<String>, ActivityError> {
        self.store.next_admissions(&input.run_workflow_id).await.map_err(store_error)
    }

    #[activity(definition = tf_activities::NotifyPlan)]
    #[instrument(skip_all, fields(run = %input.run_workflow_id, workflow_id = workflow_id(&ctx), temporal_run_id = temporal_run_id(&ctx)))]
    pub async fn notify_plan(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: NotifyRunInput,
    ) -> Result<Vec<Notification>, ActivityError> {
        crate::notify::plan(&self.store, &input).await
    }

    #[activity(definition = tf_activities::Notify)]
    #[instrument(skip_all, fields(key = %input.dedupe_key, kind = input.event.kind.as_str(), workflow_id = workflow_id(&ctx), temporal_run_id = temporal_run_id(&ctx)))]
    pub async fn notify(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: Notification,
    ) -> Result<NotifyOutcome, ActivityError> {
        let tools = crate::notify::Delivery {
            store: &self.store,
            http: &self.http,
            egress: &self.context.egress,
            secrets: &self.context.secrets,
            public_url: &self.config.public_url,
        };
        crate::notify::deliver(&tools, &input, ctx.info().attempt).await
    }
}
