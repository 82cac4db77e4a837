//! Run-log retention: finished runs past their definition's policy (or the API's default)
//! are deleted with every row keyed by them.
//!
//! Deleted with a run: its tasks, trace events, human tasks, artifacts, notifications, the
//! retries asked of it and its admission (`on delete cascade`). Kept: event receipts and
//! event groups (they keep dedupe keys deduplicated after the run is gone) and trigger
//! decisions (their own horizon, `--decision-retention`). An open run (`running`, `queued`,
//! or without `finished_at`) is never deleted: candidates are re-checked under their row
//! lock inside the deleting transaction, so a run reopened by a reset in Temporal is left.
//!
//! A pass first drops the `run_events` partitions of past days none of whose runs is kept
//! ([`super::partitions`], ADR-027): their events go with the partition, not row by row. The
//! runs left past their policy (a day that also holds runs still kept) are then deleted a
//! batch of runs per transaction, events included.

use std::sync::LazyLock;
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

/// What a [`Store::prune_runs`] pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PruneReport {
    /// Runs deleted, with their rows.
    pub runs: u64,
    /// Partitions of `run_events` dropped whole.
    pub partitions: u64,
    /// Time spent deleting rows: the runs with their tasks, human tasks, ..., and the events
    /// of runs whose day holds a run still kept.
    pub deleting: Duration,
    /// Time spent detaching and dropping partitions.
    pub dropping: Duration,
}

/// The retention policy of each definition: its current version's `retention`.
const POLICY: &str = "policy as ( \
    select d.id, (v.document -> 'retention' ->> 'days')::int as days, \
           (v.document -> 'retention' ->> 'last_runs')::int as last_runs \
    from activity_definitions d \
    join activity_definition_versions v on v.definition_id = d.id and v.version = d.current_version)";

/// A finished run, in `activity_runs`' own (unqualified) columns: what retention may prune and
/// an export takes. An open run is never pruned.
pub(super) const FINISHED: &str = "status not in ('running', 'queued') and finished_at is not null";

/// Run `r` (joined with its definition's `policy` as `p`) is past a horizon: its definition's
/// `days`, or for a definition without `retention` the default, `$1` seconds (null: forever).
const PAST_HORIZON: &str = "(p.days is not null and r.finished_at < now() - make_interval(days => p.days)) \
    or (p.days is null and p.last_runs is null and $1::float8 is not null \
        and r.finished_at < now() - make_interval(secs => $1::float8))";

/// The finished runs past their policy, oldest first within each rule. A definition's policy
/// is its current version's `retention`; a run whose definition is unknown gets the default.
/// `$1`: the default horizon in seconds (null: forever), `$2`: at most this many.
static CANDIDATES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "with {POLICY} select workflow_id from ( \
         (select r.workflow_id from activity_runs r left join policy p on p.id = r.definition_id \
           where {FINISHED} and ({PAST_HORIZON}) order by r.finished_at limit $2) \
         union all \
         (select workflow_id from ( \
             select r.workflow_id, p.last_runs, \
                    row_number() over (partition by r.definition_id order by r.finished_at desc, r.workflow_id desc) as newest \
             from activity_runs r join policy p on p.id = r.definition_id and p.last_runs is not null \
             where {FINISHED} \
           ) ranked where newest > last_runs limit $2) \
         ) candidates limit $2"
    )
});

/// Whether some run started in `[$2, $3)` is still kept: the rules of [`CANDIDATES`], per run
/// rather than ranked over a definition's runs. `$1` as there. [`FINISHED`]'s unqualified
/// columns are `r`'s outside the count and `n`'s inside it.
pub(super) static DAY_KEPT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "with {POLICY} select exists (select 1 from activity_runs r left join policy p on p.id = r.definition_id \
         where r.fired_at >= $2 and r.fired_at < $3 and not ({FINISHED} and ( \
             {PAST_HORIZON} \
             or (p.last_runs is not null and (select count(*) from activity_runs n \
                 where n.definition_id = r.definition_id and {FINISHED} \
                   and (n.finished_at, n.workflow_id) > (r.finished_at, r.workflow_id)) >= p.last_runs))))"
    )
});

/// Deletes the events of the runs `$1` (before their rows go: it reads their partition).
const EVENTS: &str = "delete from run_events e using activity_runs r \
     where r.workflow_id = any($1) and e.run_workflow_id = r.workflow_id and e.run_fired_at = r.fired_at";

/// The other rows keyed by a run that go with it, children before parents. `run_admissions`
/// goes by its `on delete cascade`.
const CHILDREN: &[&str] = &[
    "delete from task_artifacts where run_workflow_id = any($1)",
    "delete from human_tasks where run_workflow_id = any($1)",
    "delete from task_runs where run_workflow_id = any($1)",
    "delete from notifications where run_workflow_id = any($1)",
    "delete from run_retries where run_workflow_id = any($1)",
];

impl Store {
    /// Deletes the finished runs past their retention, `prune.batch` runs per transaction,
    /// until none is left: first the days of `run_events` none of whose runs is kept, by
    /// partition, then the rest row by row.
    pub async fn prune_runs(&self, prune: &RunPrune) -> Result<PruneReport> {
        let mut report = self.drop_pruned_partitions(prune).await?;
        let default_secs = prune.default_keep.map(|d| d.as_secs_f64());
        let batch = prune.batch.max(1);
        loop {
            let candidates: Vec<String> =
                sqlx::query_scalar(CANDIDATES.as_str()).bind(default_secs).bind(batch).fetch_all(&self.pool).await?;
            if candidates.is_empty() {
                return Ok(report);
            }
            let deleting = Instant::now();
            let deleted = self.delete_runs(&candidates, true).await?;
            report.deleting += deleting.elapsed();
            report.runs += deleted;
            // Every candidate locked elsewhere or reopened: the next pass tries again.
            if deleted == 0 || candidates.len() < usize::try_from(batch).unwrap_or(usize::MAX) {
                return Ok(report);
            }
        }
    }

    /// Deletes those of `runs` that are still finished and not locked by a writer, with their
    /// rows (their events only `with_events`: otherwise their partition is dropped next), in
    /// one transaction.
    pub(super) async fn delete_runs(&self, runs: &[String], with_events: bool) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let locked: Vec<String> = sqlx::query_scalar(&format!(
            "select workflow_id from activity_runs where workflow_id = any($1) and {FINISHED} for update skip locked"
        ))
        .bind(runs)
        .fetch_all(&mut *tx)
        .await?;
        if locked.is_empty() {
            return Ok(0);
        }
        if with_events {
            sqlx::query(EVENTS).bind(&locked).execute(&mut *tx).await?;
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
