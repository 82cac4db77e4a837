//! How each task kind does its work outside the workflow, one module per kind that needs a
//! side effect of its own. The kinds' specs and validation live in `taskfactory_schemas::kinds`;
//! the workflow side (`taskfactory_orchestrator::task_workflow`) dispatches on the spec and
//! calls the activity that [`crate::worker_activities`] registers for the kind, which hands the
//! work to the module here.
//!
//! - [`http`]: the request of an `http` task and how its answer is classified.
//!
//! `noop` and `human` have no side effect of their own (a human task's row is a run-log write);
//! `workflow` and `activity` tasks are started by the workflow on the task queue they name.

pub mod http;
