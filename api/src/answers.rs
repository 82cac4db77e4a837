//! The API's answer types, for its clients (the `taskfactory` CLI decodes every answer into
//! these, so a renamed field fails a test instead of printing blanks). They are defined next
//! to their handlers; this is the one door to them from outside the crate.

pub use crate::routes::control::{CancelAnswer, RetryAnswer};
pub use crate::routes::decisions::{DecisionLog, PreviewAnswer};
pub use crate::routes::definitions::{DiffAnswer, SaveAnswer};
pub use crate::routes::events::{EventResult, IngestAnswer, Outcome as EventOutcome};
pub use crate::routes::fleet::{FleetAnswer, FleetResult};
pub use crate::routes::plans::{BehaviourDiffAnswer, DryRunAnswer};
pub use crate::routes::runs::{EventPage, RunList, TriggerAnswer};
pub use crate::routes::schedules::ReconcileAnswer;
