//! Starting a task's own `TaskWorkflow`: shared by the batch workflow and the pre-batching
//! path of the run workflow.

use taskfactory_schemas::plan::PlannedTask;
use taskfactory_schemas::run::{TASK_PROTOCOL, TaskInput, TaskMeta};
use temporalio_sdk::{ChildWorkflowOptions, WorkflowContext};

use crate::search::{self, Kind};
use crate::task_workflow::TaskWorkflow;

/// Starts one `TaskWorkflow` (id: the task id) and waits for it; `true` when it completed.
pub(crate) async fn run_child<W>(
    ctx: &WorkflowContext<W>,
    run_workflow_id: &str,
    meta: &TaskMeta,
    task: &PlannedTask,
) -> bool {
    let options = ChildWorkflowOptions::builder()
        .workflow_id(task.task_id.clone())
        .search_attributes(search::attributes(&meta.definition_id, meta.trigger, Some(meta.version), Kind::Task))
        .static_summary(format!("{}: {} / {}", meta.definition_name, task.template_id, task.item_key))
        .build();
    let input = TaskInput {
        run_workflow_id: run_workflow_id.to_owned(),
        definition_name: meta.definition_name.clone(),
        task: task.clone(),
        protocol: TASK_PROTOCOL,
    };
    match ctx.start_child_workflow(TaskWorkflow::run, input, options).await {
        Ok(started) => started.result().await.is_ok(),
        Err(_) => false,
    }
}
