//! The run pruner: deletes finished runs past their retention (a definition's `retention`,
//! else the API's `--run-retention`) with their rows (`Store::prune_runs`), and event
//! receipts past `--receipt-retention` (`Store::prune_receipts`). One API process at a time
//! prunes (a lease in Postgres, as the run reconciler's), every minute.

use std::time::Duration;

use taskfactory_activities::store::RunPrune;
use tokio_util::sync::CancellationToken;

use crate::ApiState;

/// How often the pruner looks.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Runs deleted per transaction: short transactions, so writers and readers never wait long.
pub const BATCH: i64 = 100;

/// The lease of the passes.
const LEASE: &str = "run-pruner";

/// How long the pruner keeps what it prunes (`None`: forever).
#[derive(Clone, Copy, Debug, Default)]
pub struct Keep {
    /// Finished runs of definitions without `retention`.
    pub runs: Option<Duration>,
    /// Event receipts whose run was started.
    pub receipts: Option<Duration>,
}

/// Prunes every `every` while this process holds the lease, until `shutdown` is cancelled.
pub async fn run(state: ApiState, every: Duration, keep: Keep, shutdown: CancellationToken) {
    let prune = RunPrune { default_keep: keep.runs, batch: BATCH };
    crate::run_reconciler::while_leased(&state, LEASE, every, shutdown, || async {
        match state.store.prune_runs(&prune).await {
            Ok(report) if report.runs == 0 => {}
            Ok(report) => tracing::info!(
                runs = report.runs,
                partitions = report.partitions,
                deleting_s = report.deleting.as_secs_f64(),
                dropping_s = report.dropping.as_secs_f64(),
                "finished runs past their retention deleted"
            ),
            Err(e) => tracing::warn!(error = %e, "run pruner: pruning failed"),
        }
        let Some(receipts) = keep.receipts else { return };
        match state.store.prune_receipts(receipts).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "event receipts past their retention deleted"),
            Err(e) => tracing::warn!(error = %e, "run pruner: pruning receipts failed"),
        }
    })
    .await;
}
