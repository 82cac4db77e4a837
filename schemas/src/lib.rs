//! Wire types for taskfactory, and the pure logic that only needs them.
//!
//! Nothing in this crate does I/O: the worker, the API and the workflow code all share it.
//!
//! - [`ids`]: validated identifiers (definition slugs, template ids) and the workflow-id scheme.
//! - [`definition`]: the ActivityDefinition document (trigger, context sources, task templates).
//! - [`behaviour`]: the behavioural diff, replaying recorded triggers through two versions.
//! - [`decisions`]: the trigger decision log (what became of each slot and event).
//! - [`diff`]: a structured diff between two definition documents.
//! - [`validate`]: parsing a document from JSON or YAML and reporting every problem with its
//!   field path.
//! - [`kinds`]: one module per task kind: its template fields, checks and [`TaskSpec`].
//! - [`notify`]: a definition's webhook notifications, their checks and delivery wire types.
//! - [`template`]: the minijinja environment used for `when`, `key`, `params` and friends.
//! - [`plan`]: the planner, a pure function from definition + resolved context to a task plan
//!   that explains every spawn and skip.
//! - [`events`]: trigger events and the trace-event envelope of the run log.
//! - [`run`]: the inputs and outputs of the workflows and activities.
//! - [`trigger`]: what started a run (`RunTrigger`, `TriggerInfo`).
//! - [`preview`]: the next fire times of a cron trigger, computed locally.
//! - [`duration`]: the `30s` / `5m` / `1h30m` duration syntax used in documents.
//! - [`json_schema`]: JSON Schema generation for the documents above.

pub mod behaviour;
pub mod decisions;
pub mod definition;
pub mod diff;
pub mod duration;
pub mod events;
pub mod ids;
pub mod json_schema;
pub mod kinds;
pub mod notify;
pub mod plan;
pub mod preview;
pub mod run;
pub mod template;
pub mod trigger;
pub mod validate;

pub use definition::{
    ActivityDefinition, ContextKind, ContextSource, Execution, TaskKind, TaskTemplate, Trigger, TriggerKind,
};
pub use events::{EventType, Level, TraceEvent, TriggerEvent};
pub use ids::DefinitionId;
pub use kinds::TaskSpec;
pub use plan::{Plan, PlannedTask};
pub use validate::{FieldError, ValidationErrors};
