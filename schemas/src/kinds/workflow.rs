//! `workflow`: starts a workflow type on a task queue (workers in any Temporal SDK) with the
//! task's params as input, and waits for its result. Retried only when the template says so.

use super::{Common, Problems, TaskSpec, required};
use crate::definition::{TaskKind, TaskTemplate};

/// The fields a workflow task reads.
pub const FIELDS: &[&str] = &["workflow_type", "task_queue", "timeout", "retry"];

/// `workflow_type` is required.
pub(crate) fn validate(t: &TaskTemplate, problems: &mut Problems) {
    problems.require(TaskKind::Workflow, "workflow_type", &t.workflow_type);
}

/// The spec.
pub(crate) fn spec(t: &TaskTemplate, common: &Common) -> Result<TaskSpec, (String, String)> {
    Ok(TaskSpec::Workflow {
        workflow_type: required("workflow_type", &t.workflow_type)?,
        task_queue: t.task_queue.clone(),
        timeout_secs: common.timeout_secs,
        retry: Common::retry(t, 1)?,
    })
}
