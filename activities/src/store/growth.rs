//! How the run log grows, and the receipts' horizon.
//!
//! - [`Store::prune_receipts`]: event receipts (and the started event groups they name) past
//!   `--receipt-retention`, a batch per statement. A receipt whose run has not been started
//!   (`pending`, or `grouped` into a group that is still `open` or `closed`) is never deleted.
//! - [`Store::growth`]: rows and bytes per table from the catalog (estimates, never `count(*)`)
//!   and the oldest run kept, for the API's growth gauges.

use std::time::Duration;

use super::*;
use crate::sql_access::STORE_TABLES;

/// Most rows one receipt-pruning statement deletes (one statement, one short transaction).
pub const RECEIPT_BATCH: i64 = 1_000;

/// Started (or failed) event groups past the horizon. Their runs are in Temporal, so the
/// group only remembers which run its events went into; it goes before its receipts, so a
/// receipt never outlives the group's unique workflow id in a way that would make the same
/// first key fail to open a new group.
const PRUNE_GROUPS: &str = "\
delete from event_groups where id = any(array( \
    select id from event_groups \
    where state in ('started', 'error') and coalesce(started_at, last_at) < now() - make_interval(secs => $1) \
    limit $2 for update skip locked))";

/// Receipts past the horizon whose run was started (or could not be): not `pending`, and a
/// `grouped` one only once its group is gone (a group still `open` or `closed` has not
/// started its run, and its receipts keep its events deduplicated).
const PRUNE_RECEIPTS: &str = "\
delete from event_receipts where ctid = any(array( \
    select r.ctid from event_receipts r \
    where r.received_at < now() - make_interval(secs => $1) and r.state <> 'pending' \
      and (r.state <> 'grouped' or not exists (select 1 from event_groups g where g.workflow_id = r.workflow_id)) \
    limit $2 for update skip locked)) \
  and state <> 'pending' \
returning definition_id";

/// Estimated rows and bytes of each of taskfactory's tables, summed over a partitioned
/// table's partitions (`pg_partition_tree` lists none for a plain table: then the table's
/// own). `reltuples` is what the last vacuum or analyze counted (-1: never analyzed, taken
/// as 0).
const TABLE_SIZES: &str = "\
select t.name, \
  coalesce((select sum(greatest(c.reltuples, 0)) from pg_partition_tree(r.oid) p \
            join pg_class c on c.oid = p.relid where p.isleaf), \
           (select greatest(c.reltuples, 0) from pg_class c where c.oid = r.oid), 0)::float8, \
  coalesce((select sum(pg_total_relation_size(p.relid)) from pg_partition_tree(r.oid) p), \
           pg_total_relation_size(r.oid), 0)::float8 \
from unnest($1::text[]) as t(name) cross join lateral (select to_regclass(t.name) as oid) r \
where r.oid is not null";

/// One table's size.
#[derive(Clone, Debug, PartialEq)]
pub struct TableGrowth {
    /// The table's name.
    pub table: String,
    /// Estimated rows (`reltuples`, 0 until the table is first analyzed).
    pub rows: f64,
    /// Bytes on disk with indexes and TOAST (`pg_total_relation_size`).
    pub bytes: f64,
}

/// What [`Store::growth`] read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Growth {
    /// Every table of [`STORE_TABLES`] that exists.
    pub tables: Vec<TableGrowth>,
    /// The oldest kept run's `fired_at` (`None`: no run).
    pub oldest_run: Option<DateTime<Utc>>,
}

impl Store {
    /// Deletes the receipts received more than `keep` ago whose run was started, and the
    /// started event groups past it, [`RECEIPT_BATCH`] rows per statement until none is
    /// left; answers how many receipts it deleted.
    pub async fn prune_receipts(&self, keep: Duration) -> Result<u64> {
        let secs = keep.as_secs_f64();
        loop {
            let done = sqlx::query(PRUNE_GROUPS).bind(secs).bind(RECEIPT_BATCH).execute(&self.pool).await?;
            if done.rows_affected() < u64::try_from(RECEIPT_BATCH).unwrap_or(u64::MAX) {
                break;
            }
        }
        let mut total = 0;
        loop {
            let definitions: Vec<String> =
                sqlx::query_scalar(PRUNE_RECEIPTS).bind(secs).bind(RECEIPT_BATCH).fetch_all(&self.pool).await?;
            let mut counts: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
            for definition in &definitions {
                *counts.entry(definition.as_str()).or_default() += 1;
            }
            for (definition, n) in counts {
                metrics().receipts_pruned.with_label_values(&[definition]).inc_by(n);
            }
            total += definitions.len() as u64;
            // A short batch: none left but rows locked elsewhere, left for a later pass.
            if definitions.len() < usize::try_from(RECEIPT_BATCH).unwrap_or(usize::MAX) {
                return Ok(total);
            }
        }
    }

    /// Rows and bytes per table and the oldest run kept: catalog reads and one index lookup
    /// (`activity_runs_by_time`), cheap at any size.
    pub async fn growth(&self) -> Result<Growth> {
        let rows: Vec<(String, f64, f64)> =
            sqlx::query_as(TABLE_SIZES).bind(STORE_TABLES).fetch_all(&self.pool).await?;
        let tables = rows.into_iter().map(|(table, rows, bytes)| TableGrowth { table, rows, bytes }).collect();
        let oldest_run: Option<DateTime<Utc>> =
            sqlx::query_scalar("select min(fired_at) from activity_runs").fetch_one(&self.pool).await?;
        Ok(Growth { tables, oldest_run })
    }
}
