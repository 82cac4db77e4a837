//! Starting runs: one place that builds the workflow options every starter shares (search
//! attributes, memo, the id reuse policy that makes workflow ids idempotency keys).

use taskfactory_orchestrator::RunActivityWorkflow;
use taskfactory_orchestrator::search::{self, Kind, MEMO_DEFINITION_NAME};
use taskfactory_schemas::run::LoadedDefinition;
use taskfactory_schemas::run::{RunInput, TriggerInfo};
use temporalio_client::errors::WorkflowStartError;
use temporalio_client::{WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowStartOptions};
use temporalio_common::MemoValues;

use crate::ApiState;
use crate::error::ApiError;

/// What a start did.
#[derive(Debug, Clone)]
pub struct Started {
    /// The run's workflow id.
    pub workflow_id: String,
    /// Temporal's run id (of the existing run for a duplicate, when Temporal says it).
    pub run_id: Option<String>,
    /// `false` when a workflow with this id already existed: nothing new was started.
    pub started: bool,
}

/// Starts `RunActivityWorkflow` for `loaded` under `workflow_id` (a retry of `retry_of`, when
/// given); a second start with the same id (running or closed) starts nothing and reports the
/// existing run.
pub async fn start_run(
    state: &ApiState,
    loaded: &LoadedDefinition,
    trigger: TriggerInfo,
    workflow_id: String,
    retry_of: Option<String>,
) -> Result<Started, ApiError> {
    let definition = &loaded.definition;
    let input = RunInput {
        definition_id: definition.id.clone(),
        version: Some(loaded.version),
        trigger: trigger.clone(),
        retry_of,
    };
    let mut memo = MemoValues::new();
    memo.insert(MEMO_DEFINITION_NAME, definition.name.clone());
    let options = WorkflowStartOptions::new(state.task_queue.clone(), workflow_id.clone())
        .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
        .id_conflict_policy(WorkflowIdConflictPolicy::Fail)
        .search_attributes(search::attributes(&definition.id, trigger.kind, Some(loaded.version), Kind::Run))
        .memo(memo)
        .static_summary(format!("{} ({})", definition.name, trigger.kind.as_str()))
        .build();
    match state.temporal.start_workflow(RunActivityWorkflow::run, input, options).await {
        Ok(handle) => {
            tracing::info!(definition = %definition.id, workflow_id = %workflow_id, trigger = trigger.kind.as_str(), "run started");
            Ok(Started { workflow_id, run_id: handle.run_id().map(str::to_owned), started: true })
        }
        Err(WorkflowStartError::AlreadyStarted { run_id, .. }) => Ok(Started { workflow_id, run_id, started: false }),
        Err(e) => Err(ApiError::Unavailable(format!("temporal: {e}"))),
    }
}
