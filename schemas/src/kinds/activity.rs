//! `activity`: runs an activity by name on a task queue (any SDK's worker can serve it) with
//! the params as input. Retried 5 times by default.

use super::{Common, Problems, TaskSpec, required};
use crate::definition::{TaskKind, TaskTemplate};

/// The fields an activity task reads.
pub const FIELDS: &[&str] = &["activity_type", "task_queue", "timeout", "retry"];

/// `activity_type` is required.
pub(crate) fn validate(t: &TaskTemplate, problems: &mut Problems) {
    problems.require(TaskKind::Activity, "activity_type", &t.activity_type);
}

/// The spec.
pub(crate) fn spec(t: &TaskTemplate, common: &Common) -> Result<TaskSpec, (String, String)> {
    Ok(TaskSpec::Activity {
        activity_type: required("activity_type", &t.activity_type)?,
        task_queue: t.task_queue.clone(),
        timeout_secs: common.timeout_secs,
        retry: Some(Common::retry_or_default(t, 5)?),
    })
}
