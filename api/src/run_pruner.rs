//! The run pruner: deletes finished runs past their retention (a definition's `retention`,
//! else the API's `--run-retention`) with their rows (`Store::prune_runs`). One API process
//! at a time prunes (a lease in Postgres, as the run reconciler's), every minute.

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

/// Prunes every `every` while this process holds the lease, until `shutdown` is cancelled.
/// `default_keep`: how long runs of definitions without `retention` are kept (`None`: forever).
pub async fn run(state: ApiState, every: Duration, default_keep: Option<Duration>, shutdown: CancellationToken) {
    let prune = RunPrune { default_keep, batch: BATCH };
    crate::run_reconciler::while_leased(&state, LEASE, every, shutdown, || async {
        match state.store.prune_runs(&prune).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "finished runs past their retention deleted"),
            Err(e) => tracing::warn!(error = %e, "run pruner: pruning failed"),
        }
    })
    .await;
}
