//! The partitions of `run_events` (ADR-027): one per UTC day of the runs' start, so all of a
//! run's events lie in one partition, and a day whose runs are all past retention is dropped
//! whole instead of deleted row by row.
//!
//! Partitions are made ahead: the migration makes today to a week ahead, and every process
//! that records runs makes sure of the same window once per day ([`Store::ensure_event_partitions`]),
//! so an insert never finds its day missing. Dropping detaches concurrently (only a
//! `SHARE UPDATE EXCLUSIVE` lock on `run_events`: reads and appends go on), then drops the
//! detached table.

use std::sync::atomic::Ordering;

use super::retention::{DAY_KEPT, PruneReport, RunPrune};
use super::*;

/// Days ahead of today (UTC, the database's clock) whose partitions are made in advance.
const DAYS_AHEAD: i32 = 7;

/// One partition of `run_events`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventPartition {
    /// The table's name, `run_events_pYYYYMMDD`.
    pub name: String,
    /// The first instant of its day.
    pub from: DateTime<Utc>,
    /// The first instant of the next day.
    pub to: DateTime<Utc>,
}

impl Store {
    /// Makes sure the partitions of today to a week ahead exist, at most once a day per
    /// store handle (cheap to call on every run start).
    pub async fn ensure_event_partitions(&self) -> Result<()> {
        let day = i64::from(chrono::Datelike::num_days_from_ce(&Utc::now().date_naive()));
        if self.partitions_ensured_on.load(Ordering::Relaxed) == day {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        // Making a partition locks run_events briefly; never queue behind a long reader.
        sqlx::query("set local lock_timeout = '5s'").execute(&mut *tx).await?;
        sqlx::query(
            "select taskfactory_event_partition((now() at time zone 'UTC')::date + n) from generate_series(0, $1) n",
        )
        .bind(DAYS_AHEAD)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.partitions_ensured_on.store(day, Ordering::Relaxed);
        Ok(())
    }

    /// Makes sure the partition for runs started at `at` exists (runs recorded with an earlier
    /// start, as the retention benchmark does).
    pub async fn ensure_event_partition_for(&self, at: DateTime<Utc>) -> Result<String> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("set local lock_timeout = '5s'").execute(&mut *tx).await?;
        let name: String = sqlx::query_scalar("select taskfactory_event_partition(($1 at time zone 'UTC')::date)")
            .bind(at)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(name)
    }

    /// The partitions of `run_events`, oldest first.
    pub async fn event_partitions(&self) -> Result<Vec<EventPartition>> {
        let names: Vec<String> = sqlx::query_scalar(
            "select c.relname::text from pg_inherits i join pg_class c on c.oid = i.inhrelid \
             where i.inhparent = 'run_events'::regclass order by 1",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(names.into_iter().filter_map(|name| partition_of(&name)).collect())
    }

    /// Drops the partitions of closed days none of whose runs is kept any longer: their
    /// runs are deleted (with their tasks, human tasks, artifacts, ... but not their events,
    /// which go with the partition), then the partition is detached and dropped. Answers how
    /// many runs went, and how many partitions, with the time each took.
    pub(super) async fn drop_pruned_partitions(&self, prune: &RunPrune) -> Result<PruneReport> {
        self.finish_detached_partitions().await?;
        let now: DateTime<Utc> = sqlx::query_scalar("select now()").fetch_one(&self.pool).await?;
        let default_secs = prune.default_keep.map(|d| d.as_secs_f64());
        let mut report = PruneReport::default();
        for partition in self.event_partitions().await? {
            // A day is closed an hour after it ends: no transaction that began on it still adds
            // a run to it.
            if partition.to + chrono::Duration::hours(1) > now {
                break;
            }
            let kept: bool = sqlx::query_scalar(DAY_KEPT.as_str())
                .bind(default_secs)
                .bind(partition.from)
                .bind(partition.to)
                .fetch_one(&self.pool)
                .await?;
            if kept {
                continue;
            }
            loop {
                let batch: Vec<String> = sqlx::query_scalar(
                    "select workflow_id from activity_runs where fired_at >= $1 and fired_at < $2 limit $3",
                )
                .bind(partition.from)
                .bind(partition.to)
                .bind(prune.batch.max(1))
                .fetch_all(&self.pool)
                .await?;
                if batch.is_empty() {
                    break;
                }
                let deleting = Instant::now();
                let deleted = self.delete_runs(&batch, false).await?;
                report.deleting += deleting.elapsed();
                report.runs += deleted;
                if deleted == 0 {
                    break;
                }
            }
            // A run reopened or locked by a writer meanwhile keeps the partition for now.
            let left: bool = sqlx::query_scalar(
                "select exists (select 1 from activity_runs where fired_at >= $1 and fired_at < $2)",
            )
            .bind(partition.from)
            .bind(partition.to)
            .fetch_one(&self.pool)
            .await?;
            if left {
                continue;
            }
            let dropping = Instant::now();
            self.detach_and_drop(&partition.name, false).await?;
            report.dropping += dropping.elapsed();
            metrics().event_partitions_dropped.with_label_values::<&str>(&[]).inc();
            report.partitions += 1;
        }
        Ok(report)
    }

    /// Ends the drops a crash interrupted between detaching and dropping.
    async fn finish_detached_partitions(&self) -> Result<()> {
        let pending: Vec<String> = sqlx::query_scalar(
            "select c.relname::text from pg_inherits i join pg_class c on c.oid = i.inhrelid \
             where i.inhparent = 'run_events'::regclass and i.inhdetachpending",
        )
        .fetch_all(&self.pool)
        .await?;
        for name in pending {
            self.detach_and_drop(&name, true).await?;
        }
        Ok(())
    }

    async fn detach_and_drop(&self, name: &str, finalize: bool) -> Result<()> {
        // Only names this module made (`run_events_pYYYYMMDD`) get here; quoted all the same.
        let table = format!("\"{}\"", name.replace('"', "\"\""));
        let how = if finalize { "finalize" } else { "concurrently" };
        // Not in a transaction block: DETACH ... CONCURRENTLY refuses one.
        sqlx::raw_sql(&format!("alter table run_events detach partition {table} {how}")).execute(&self.pool).await?;
        sqlx::raw_sql(&format!("drop table {table}")).execute(&self.pool).await?;
        tracing::info!(partition = name, "run_events partition dropped: none of its runs is kept");
        Ok(())
    }
}

/// The partition `name` stands for, if it is one of ours.
fn partition_of(name: &str) -> Option<EventPartition> {
    let day = chrono::NaiveDate::parse_from_str(name.strip_prefix("run_events_p")?, "%Y%m%d").ok()?;
    let from = day.and_hms_opt(0, 0, 0)?.and_utc();
    Some(EventPartition { name: name.to_owned(), from, to: from + chrono::Duration::days(1) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_day_partitions_are_read_as_days() {
        let p = partition_of("run_events_p20261203").unwrap();
        assert_eq!(p.from.to_rfc3339(), "2026-12-03T00:00:00+00:00");
        assert_eq!(p.to.to_rfc3339(), "2026-12-04T00:00:00+00:00");
        assert_eq!(partition_of("run_events_p2026120"), None);
        assert_eq!(partition_of("run_events_unpartitioned"), None);
        assert_eq!(partition_of("run_events_p20261332"), None);
    }
}
