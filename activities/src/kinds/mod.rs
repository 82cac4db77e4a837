//! How each task kind does its work outside the workflow, one module per kind that needs a
//! side effect of its own. The kinds' specs and validation live in `taskfactory_schemas::kinds`;
//! the workflow side (`taskfactory_orchestrator::task_workflow`) dispatches on the spec and
//! calls the activity that [`crate::worker_activities`] registers for the kind, which hands the
//! work to the module here.
//!
//! - [`http`]: the request of an `http` task and how its answer is classified;
//! - [`execute`]: an own kind's work in activity mode (`tf.run_task`).
//!
//! `noop` and `human` have no side effect of their own (a human task's row is a run-log write);
//! `workflow` and `activity` tasks are started by the workflow on the task queue they name.

pub mod http;

use serde_json::Value;
use taskfactory_schemas::TaskSpec;
use taskfactory_schemas::plan::PlannedTask;
use taskfactory_schemas::run::HttpRequestInput;
use temporalio_sdk::activities::ActivityError;

use crate::egress::Egress;
use crate::failure::permanent;
use crate::secrets::SecretStore;

/// What an own kind's work may use.
pub struct Tools<'a> {
    /// The shared HTTP client.
    pub http: &'a reqwest::Client,
    /// The SSRF guard.
    pub egress: &'a Egress,
    /// Secret values.
    pub secrets: &'a SecretStore,
}

/// Does the work of a task of an own kind in activity mode (`tf.run_task`); answers its
/// output. A `noop`'s output is its params.
pub async fn execute(tools: &Tools<'_>, task: &PlannedTask) -> Result<Value, ActivityError> {
    match &task.spec {
        TaskSpec::Noop => Ok(task.params.clone()),
        TaskSpec::Http { method, url, headers, body, timeout_secs, .. } => {
            let request = HttpRequestInput {
                method: method.clone(),
                url: url.clone(),
                headers: headers.clone(),
                body: body.clone(),
                timeout_secs: timeout_secs.unwrap_or(30),
            };
            http::send(tools.http, tools.egress, tools.secrets, &request).await
        }
        other => Err(permanent(format!("a {} task does not run as tf.run_task", other.kind_name()))),
    }
}
