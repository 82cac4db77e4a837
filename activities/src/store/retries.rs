//! Retries of finished runs: a retry is a new run (`{run}:retry:{n}`) whose tasks that
//! completed in the retried run are *reused* — recorded completed with the old output and
//! `reused_from` when they are planned, never run — while everything else runs.

use taskfactory_schemas::run::{RetryPlan, RetryTasks, RetryWhich};

use super::*;

/// A retry asked for ([`Store::new_retry`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    /// The new run's workflow id.
    pub workflow_id: String,
    /// `false` when the key was used before: this is that retry.
    pub created: bool,
}

/// What a run retries, as [`Store::retry_source`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySource {
    /// The retried run.
    pub run_workflow_id: String,
    /// How the retry runs.
    pub plan: RetryPlan,
}

/// The retried run's facts a retry starts from.
#[derive(Clone, Debug)]
pub struct Retried {
    /// Its status (a retry needs a finished run).
    pub status: String,
    /// Its definition.
    pub definition_id: String,
    /// The version it ran.
    pub version_used: Option<i32>,
    /// What started it.
    pub trigger: TriggerInfo,
    /// Its tasks, in plan order.
    pub tasks: Vec<RetriedTask>,
}

/// A task of a retried run: what decides whether a retry reuses it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RetriedTask {
    /// Task id.
    pub id: String,
    /// Template.
    pub template_id: String,
    /// Item key.
    pub item_key: String,
    /// Its final status.
    pub status: String,
    /// The rendered spec.
    pub spec: Value,
    /// The rendered params.
    pub params: Value,
}

impl Store {
    /// The run a retry would start from.
    pub async fn retried(&self, run: &str) -> Result<Retried> {
        let row: Option<(String, String, Option<i32>, Value)> = sqlx::query_as(
            "select status, definition_id, version_used, trigger from activity_runs where workflow_id = $1",
        )
        .bind(run)
        .fetch_optional(&self.pool)
        .await?;
        let (status, definition_id, version_used, trigger) =
            row.ok_or_else(|| StoreError::NotFound(format!("run {run:?}")))?;
        let trigger: TriggerInfo = serde_json::from_value(nul::decode(trigger))
            .map_err(|e| StoreError::Corrupt(format!("trigger of run {run:?}: {e}")))?;
        let mut tasks: Vec<RetriedTask> = sqlx::query_as(
            "select id, template_id, item_key, status, spec, params from task_runs where run_workflow_id = $1 order by position",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        for task in &mut tasks {
            task.spec = nul::decode(std::mem::take(&mut task.spec));
            task.params = nul::decode(std::mem::take(&mut task.params));
        }
        Ok(Retried { status, definition_id, version_used, trigger, tasks })
    }

    /// Records a retry of `run` and names its workflow (`{run}:retry:{n}`, `n` counting from
    /// 1); the same `key` again answers the retry it made first.
    pub async fn new_retry(&self, run: &str, key: Option<&str>, by: &str, plan: &RetryPlan) -> Result<Retry> {
        let request = serde_json::to_value(plan).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        // Retries of one run are numbered one at a time.
        sqlx::query("select pg_advisory_xact_lock(hashtext('tf-retry:' || $1))").bind(run).execute(&mut *tx).await?;
        if let Some(key) = key {
            let existing: Option<String> =
                sqlx::query_scalar("select workflow_id from run_retries where run_workflow_id = $1 and key = $2")
                    .bind(run)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(workflow_id) = existing {
                return Ok(Retry { workflow_id, created: false });
            }
        }
        let n: i32 = sqlx::query_scalar("select coalesce(max(n), 0) + 1 from run_retries where run_workflow_id = $1")
            .bind(run)
            .fetch_one(&mut *tx)
            .await?;
        let workflow_id = format!("{run}:retry:{n}");
        sqlx::query(
            "insert into run_retries (run_workflow_id, n, key, workflow_id, requested_by, request) values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(run)
        .bind(n)
        .bind(key.map(nul::text))
        .bind(&workflow_id)
        .bind(nul::text(by))
        .bind(&request)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Retry { workflow_id, created: true })
    }

    /// Forgets a retry whose run could not be started (so its number is free again).
    pub async fn drop_retry(&self, workflow_id: &str) -> Result<()> {
        sqlx::query(
            "delete from run_retries r where r.workflow_id = $1 \
             and not exists (select 1 from activity_runs a where a.workflow_id = r.workflow_id)",
        )
        .bind(workflow_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What `run` retries, if it is a retry.
    pub async fn retry_source(&self, run: &str) -> Result<Option<RetrySource>> {
        retry_source_in(&self.pool, run).await
    }

    /// The retries made of `run`, oldest first.
    pub async fn retries_of(&self, run: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("select workflow_id from run_retries where run_workflow_id = $1 order by n")
            .bind(run)
            .fetch_all(&self.pool)
            .await?)
    }
}

/// In a retry, records the pending tasks of `run` that match a completed task of the retried
/// run (same template, key, spec and params) and are not asked to run again as completed,
/// carrying the old output over (`reused_from`); answers their `NODE_COMPLETED` events. Not a
/// retry, or a retry of all tasks: nothing.
pub(crate) async fn reuse_tasks(tx: &mut Transaction<'_, Postgres>, run: &str) -> Result<Vec<NewTraceEvent>> {
    let Some(RetrySource { run_workflow_id: retried, plan }) = retry_source_in(&mut **tx, run).await? else {
        return Ok(Vec::new());
    };
    let again: Vec<String> = match plan.tasks {
        RetryTasks::Named(RetryWhich::All) => return Ok(Vec::new()),
        RetryTasks::Named(RetryWhich::Failed) => Vec::new(),
        RetryTasks::Ids(ids) => ids,
    };
    let reused: Vec<(String, String, Option<Value>)> = sqlx::query_as(
        "update task_runs t set status = 'completed', output = old.output, reused_from = old.id, \
         attempt = 0, finished_at = now() \
         from task_runs old where t.run_workflow_id = $1 and t.status = 'pending' \
         and old.run_workflow_id = $2 and old.status = 'completed' and not (old.id = any($3)) \
         and old.template_id = t.template_id and old.item_key = t.item_key \
         and old.spec = t.spec and old.params = t.params \
         returning t.id, old.id, old.output",
    )
    .bind(run)
    .bind(&retried)
    .bind(&again)
    .fetch_all(&mut **tx)
    .await?;
    Ok(reused
        .into_iter()
        .map(|(task, old, output)| {
            let output = nul::decode(output.unwrap_or(Value::Null));
            event(
                format!("task:{task}:finished"),
                EventType::NodeCompleted,
                Some(&task),
                Level::Info,
                format!("task reused: {old} completed in the retried run"),
                json!({"output": output, "reused_from": old}),
            )
        })
        .collect())
}

/// What `run` retries, read with `db` (the pool, or the transaction planning the retry).
async fn retry_source_in<'e>(db: impl sqlx::PgExecutor<'e>, run: &str) -> Result<Option<RetrySource>> {
    let row: Option<(String, Value)> =
        sqlx::query_as("select run_workflow_id, request from run_retries where workflow_id = $1")
            .bind(run)
            .fetch_optional(db)
            .await?;
    row.map(|(run_workflow_id, request)| {
        let plan = serde_json::from_value(request)
            .map_err(|e| StoreError::Corrupt(format!("retry request of {run:?}: {e}")))?;
        Ok(RetrySource { run_workflow_id, plan })
    })
    .transpose()
}
