//! Run-log retention: finished runs past their definition's policy (or the API's default)
//! are deleted with every row keyed by them, a batch of runs per transaction.
//!
//! Deleted with a run: its tasks, trace events, human tasks, artifacts, notifications, the
//! retries asked of it and its admission (`on delete cascade`). Kept: event receipts and
//! event groups (they keep dedupe keys deduplicated after the run is gone) and trigger
//! decisions (their own horizon, `--decision-retention`). An open run (`running`, `queued`,
//! or without `finished_at`) is never deleted: candidates are re-checked under their row
//! lock inside the deleting transaction, so a run reopened by a reset in Temporal is left.
//!
//! Row-by-row deletes are the interim design (ADR-026): partitioning `run_events` by time
//! would make pruning a partition drop.

use std::time::Duration;

use super::*;

/// What [`Store::prune_runs`] prunes.
#[derive(Clone, Copy, Debug)]
pub struct RunPrune {
    /// How long the finished runs of definitions without `retention` are kept (`None`:
    /// forever).
    pub default_keep: Option<Duration>,
    /// Most runs deleted per transaction.
    pub batch: i64,
}

/// The finished runs past their policy, oldest first within each rule. A definition's policy
/// is its current version's `retention`; a run whose definition is unknown gets the default.
const CANDIDATES: &str = "\
with policy as ( \
    select d.id, (v.document -> 'retention' ->> 'days')::int as days, \
           (v.document -> 'retention' ->> 'last_runs')::int as last_runs \
    from activity_definitions d \
    join activity_definition_versions v on v.definition_id = d.id and v.version = d.current_version \
) \
(select r.workflow_id from activity_runs r left join policy p on p.id = r.definition_id \
  where r.status not in ('running', 'queued') and r.finished_at is not null \
    and ((p.days is not null and r.finished_at < now() - make_interval(days => p.days)) \
      or (p.days is null and p.last_runs is null and $1::float8 is not null \
          and r.finished_at < now() - make_interval(secs => $1::float8))) \
  order by r.finished_at limit $2) \
union all \
(select workflow_id from ( \
    select r.workflow_id, p.last_runs, \
           row_number() over (partition by r.definition_id order by r.finished_at desc, r.workflow_id desc) as newest \
    from activity_runs r join policy p on p.id = r.definition_id and p.last_runs is not null \
    where r.status not in ('running', 'queued') and r.finished_at is not null \
  ) ranked where newest > last_runs limit $2) \
limit $2";

/// The rows keyed by a run that go with it, children before parents. `run_admissions` goes
/// by its `on delete cascade`.
const CHILDREN: &[&str] = &[
    "delete from task_artifacts where run_workflow_id = any($1)",
    "delete from human_tasks where run_workflow_id = any($1)",
    "delete from run_events where run_workflow_id = any($1)",
    "delete from task_runs where run_workflow_id = any($1)",
    "delete from notifications where run_workflow_id = any($1)",
    "delete from run_retries where run_workflow_id = any($1)",
];

impl Store {
    /// Deletes the finished runs past their retention, `prune.batch` runs per transaction,
    /// until none is left; answers how many runs it deleted.
    pub async fn prune_runs(&self, prune: &RunPrune) -> Result<u64> {
        let default_secs = prune.default_keep.map(|d| d.as_secs_f64());
        let batch = prune.batch.max(1);
        let mut total = 0;
        loop {
            let candidates: Vec<String> =
                sqlx::query_scalar(CANDIDATES).bind(default_secs).bind(batch).fetch_all(&self.pool).await?;
            if candidates.is_empty() {
                return Ok(total);
            }
            let deleted = self.delete_runs(&candidates).await?;
            total += deleted;
            // Every candidate locked elsewhere or reopened: the next pass tries again.
            if deleted == 0 || candidates.len() < usize::try_from(batch).unwrap_or(usize::MAX) {
                return Ok(total);
            }
        }
    }

    /// Deletes those of `runs` that are still finished and not locked by a writer, with their
    /// rows, in one transaction.
    async fn delete_runs(&self, runs: &[String]) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let locked: Vec<String> = sqlx::query_scalar(
            "select workflow_id from activity_runs where workflow_id = any($1) \
             and status not in ('running', 'queued') and finished_at is not null for update skip locked",
        )
        .bind(runs)
        .fetch_all(&mut *tx)
        .await?;
        if locked.is_empty() {
            return Ok(0);
        }
        for statement in CHILDREN {
            sqlx::query(statement).bind(&locked).execute(&mut *tx).await?;
        }
        let definitions: Vec<String> =
            sqlx::query_scalar("delete from activity_runs where workflow_id = any($1) returning definition_id")
                .bind(&locked)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        for definition in &definitions {
            metrics().runs_pruned.with_label_values(&[definition.as_str()]).inc();
        }
        Ok(definitions.len() as u64)
    }
}
