//! Workflow code, and only workflow code (ADR-001).
//!
//! Everything here must be deterministic: no I/O, no clocks, no randomness, no threads. Side
//! effects happen in activities (the `activities` crate), which this crate only knows by their
//! contracts. Futures are combined with the SDK's deterministic `join_all`, never with
//! `futures::join_all`.
//!
//! - [`contracts`]: names and input/output types of every activity the workflows call.
//! - [`run_workflow`]: `RunActivityWorkflow`: load → resolve context → plan → run the task DAG.
//! - [`batch_workflow`]: `TaskBatchWorkflow`: a slice of a template's tasks.
//! - [`task_workflow`]: `TaskWorkflow`: one task, one workflow (`workflow` execution mode).
//! - `activity_tasks`: a task as an activity of its batch (`activity` execution mode).
//! - `convert`: retry policies and result payloads between the plan's types and the SDK's.
//! - `children`: starting a task's `TaskWorkflow` (batches and the pre-batching path).
//! - [`notify_workflow`]: delivering notifications (`tf.notify` per webhook) at a run's end, and
//!   `NotifyWorkflow` for those no run sends (`schedule_silent`).
//! - [`search`]: search attribute keys, the set every workflow of a run carries, [`search::Kind`].
//! - [`failure`]: turning Temporal failures into readable messages.

mod activity_tasks;
pub mod batch_workflow;
mod children;
pub mod contracts;
mod convert;
pub mod failure;
pub mod notify_workflow;
pub mod run_workflow;
pub mod search;
pub mod task_workflow;

pub use batch_workflow::TaskBatchWorkflow;
pub use notify_workflow::NotifyWorkflow;
pub use run_workflow::RunActivityWorkflow;
pub use task_workflow::TaskWorkflow;

/// Workflow type name of the run workflow, for starters that use it by name.
pub const RUN_WORKFLOW_TYPE: &str = "RunActivityWorkflow";
/// Workflow type name of the notification workflow.
pub const NOTIFY_WORKFLOW_TYPE: &str = "NotifyWorkflow";
/// Workflow type name of the task workflow.
pub const TASK_WORKFLOW_TYPE: &str = "TaskWorkflow";
