//! The run reconciler: the run log says what Temporal says about a run, even when no workflow
//! code ran to tell it. An operator may cancel or terminate a run in the Temporal Web UI or
//! CLI, or its execution may time out; Temporal then closes the execution and nothing of ours
//! records it. Every API process looks at the runs the log says are open, every few seconds,
//! and records the ones Temporal has closed (`Store::close_run_in_temporal`: the run's status,
//! its unfinished tasks and waiting human tasks cancelled). One API process at a time does the
//! passes (a lease in Postgres, renewed every pass, taken over by another process once it
//! expires); reads of an open run check that run at once ([`reconcile_run`]). Writes are
//! conditional and keyed, so a pass and a read reconciling the same run record it once.

use std::time::{Duration, SystemTime};

use taskfactory_orchestrator::RunActivityWorkflow;
use taskfactory_schemas::DefinitionId;
use taskfactory_schemas::run::Status;
use temporalio_client::{NamespacedClient, WorkflowExecutionStatus, WorkflowSignalOptions};
use temporalio_common::UntypedWorkflow;
use tokio_util::sync::CancellationToken;

use crate::ApiState;

/// How often the reconciler looks.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(5);

/// Most open runs looked at per pass (the oldest first).
const PER_PASS: i64 = 500;

/// How long a run Temporal says failed may wait for its workflow's own record of it.
const GRACE: Duration = Duration::from_secs(30);

/// The lease of the passes.
const LEASE: &str = "run-reconciler";

/// Reconciles every `every`, while this process holds the lease, until `shutdown` is cancelled.
pub async fn run(state: ApiState, every: Duration, shutdown: CancellationToken) {
    while_leased(&state, LEASE, every, shutdown, || async {
        reconcile(&state).await;
    })
    .await;
}

/// Runs `pass` every `every` while this process holds the lease `lease` (taken for three
/// periods, renewed each pass, so another process takes over once this one stops), until
/// `shutdown` is cancelled. The run reconciler's passes and the run pruner's use it.
pub async fn while_leased<F, Fut>(
    state: &ApiState,
    lease: &str,
    every: Duration,
    shutdown: CancellationToken,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let holder = uuid::Uuid::new_v4().to_string();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match state.store.take_lease(lease, &holder, every * 3).await {
            Ok(true) => pass().await,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, lease, "cannot take the lease"),
        }
    }
}

/// One pass: answers how many runs it recorded as closed.
pub async fn reconcile(state: &ApiState) -> usize {
    let open = match state.store.open_runs(PER_PASS).await {
        Ok(open) => open,
        Err(e) => {
            tracing::warn!(error = %e, "run reconciler: cannot list open runs");
            return 0;
        }
    };
    let mut closed = 0;
    for workflow_id in open {
        if reconcile_run(state, &workflow_id).await {
            closed += 1;
        }
    }
    closed
}

/// Checks one run the log says is open against Temporal, and records it closed if Temporal
/// has closed it; answers whether it recorded that. Also called on every read of an open run.
pub async fn reconcile_run(state: &ApiState, workflow_id: &str) -> bool {
    let handle = state.temporal.get_workflow_handle::<UntypedWorkflow>(workflow_id.to_owned());
    let description = match handle.describe(Default::default()).await {
        Ok(description) => description,
        Err(e) => {
            tracing::debug!(workflow_id = %workflow_id, error = %e, "run reconciler: describe failed");
            return false;
        }
    };
    let closed_for = description.close_time().and_then(|t| SystemTime::now().duration_since(t).ok());
    let (status, reason) = match description.status() {
        WorkflowExecutionStatus::Canceled => (Status::Cancelled, "cancelled in Temporal".to_owned()),
        WorkflowExecutionStatus::Terminated => (Status::Terminated, termination(state, workflow_id).await),
        WorkflowExecutionStatus::TimedOut => (Status::TimedOut, "the execution timed out in Temporal".to_owned()),
        WorkflowExecutionStatus::Failed if closed_for.is_some_and(|d| d > GRACE) => {
            (Status::Failed, "failed in Temporal without recording its end".to_owned())
        }
        _ => return false,
    };
    match state.store.close_run_in_temporal(workflow_id, status, &reason).await {
        Ok(true) => {
            tracing::info!(workflow_id = %workflow_id, status = status.as_str(), "run closed in Temporal recorded");
            wake_queued(state, workflow_id).await;
            if matches!(status, Status::TimedOut | Status::Failed) {
                notify_failed(state, workflow_id, status, &reason).await;
            }
            true
        }
        Ok(false) => false,
        Err(e) => {
            tracing::warn!(workflow_id = %workflow_id, error = %e, "run reconciler: recording failed");
            false
        }
    }
}

/// A run that timed out, or failed without its workflow recording it, sends no `run_failed`
/// of its own: the definition's entries that want one get it from a `NotifyWorkflow`. A
/// cancel or a terminate is an operator's act and notifies nobody. Best effort: a failure to
/// start it is logged (the run is recorded closed already, so no later pass retries it).
async fn notify_failed(state: &ApiState, workflow_id: &str, status: Status, reason: &str) {
    let run = match state.store.get_run_with(workflow_id, false).await {
        Ok(run) => run.summary,
        Err(e) => {
            return tracing::warn!(workflow_id = %workflow_id, error = %e, "run reconciler: cannot read the run to notify");
        }
    };
    let Ok(id) = DefinitionId::parse(&run.definition_id) else { return };
    let definition = match state.store.load_for_run(&id, run.version_used).await {
        Ok(loaded) => loaded.definition,
        Err(e) => {
            return tracing::warn!(workflow_id = %workflow_id, error = %e, "run reconciler: cannot load the definition to notify");
        }
    };
    let sent = crate::notify::notify_closed_run(
        &state.temporal,
        &state.task_queue,
        &definition,
        workflow_id,
        status.as_str(),
        reason,
        chrono::Utc::now(),
    )
    .await;
    if let Err(e) = sent {
        tracing::warn!(workflow_id = %workflow_id, error = %e, "run reconciler: cannot start the run_failed notification");
    }
}

/// "terminated in Temporal", with the operator's reason and identity when the execution's last
/// history event (read newest first, one event) carries them.
async fn termination(state: &ApiState, workflow_id: &str) -> String {
    use temporalio_common::protos::temporal::api::common::v1::WorkflowExecution;
    use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
    use temporalio_common::protos::temporal::api::workflowservice::v1::GetWorkflowExecutionHistoryReverseRequest;

    let request = GetWorkflowExecutionHistoryReverseRequest {
        namespace: state.temporal.namespace(),
        execution: Some(WorkflowExecution { workflow_id: workflow_id.to_owned(), run_id: String::new() }),
        maximum_page_size: 1,
        next_page_token: Vec::new(),
    };
    let last = state
        .temporal
        .connection()
        .workflow_service()
        .get_workflow_execution_history_reverse(temporalio_client::tonic::Request::new(request))
        .await
        .ok()
        .and_then(|r| r.into_inner().history)
        .and_then(|h| h.events.into_iter().next())
        .and_then(|e| e.attributes);
    match last {
        Some(Attributes::WorkflowExecutionTerminatedEventAttributes(a)) => {
            let by = if a.identity.is_empty() { String::new() } else { format!(" by {}", a.identity) };
            let why = if a.reason.is_empty() { String::new() } else { format!(": {}", a.reason) };
            format!("terminated in Temporal{by}{why}")
        }
        _ => "terminated in Temporal".to_owned(),
    }
}

/// A run closed without its workflow code freed its concurrency slot with its status: the
/// queued runs of its key are signalled to ask again (they also ask on their own every
/// `ADMISSION_RECHECK`).
async fn wake_queued(state: &ApiState, ended: &str) {
    let queued = match state.store.next_admissions(ended).await {
        Ok(queued) => queued,
        Err(e) => {
            tracing::warn!(workflow_id = %ended, error = %e, "run reconciler: cannot list queued runs");
            return;
        }
    };
    for run in queued {
        let signal = state
            .temporal
            .get_workflow_handle::<RunActivityWorkflow>(run.clone())
            .signal(RunActivityWorkflow::admission, ended.to_owned(), WorkflowSignalOptions::default())
            .await;
        if let Err(e) = signal {
            tracing::debug!(workflow_id = %run, error = %e, "run reconciler: cannot wake a queued run");
        }
    }
}
