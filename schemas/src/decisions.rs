//! The trigger decision log: one recorded outcome for every schedule slot and every event a
//! definition saw, answering "why didn't my schedule or event start a run?".

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::run::RunTrigger;

/// What became of one schedule slot, event or manual trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionOutcome {
    /// A run started and planned at least one task (or is still planning).
    Fired,
    /// A run started but planned no task: every condition was false or every fan-out empty.
    FiredZeroTasks,
    /// A schedule slot did not start a run: `reason` is `overlap`, `catchup_window`, `paused`
    /// or `unexplained`; or an event came for a disabled definition (`reason`: `disabled`).
    Skipped,
    /// An event whose dedupe key had started a run before: `workflow_id` names that run.
    Deduplicated,
    /// An event the definition's `trigger.filter` turned away: `detail` holds the condition
    /// and the values it saw.
    Filtered,
    /// The trigger could not be evaluated or Temporal refused it: `message` says why.
    Error,
    /// An event was taken (its receipt committed) and its run is about to start: the API's
    /// starter turns this into `fired` once Temporal has the run, or `error`.
    Accepted,
    /// A run is waiting for a slot of its concurrency key: `message` says how many run and
    /// where it stands in the queue.
    Queued,
    /// An event went into a debounced run with the events around it: `workflow_id` names it.
    Debounced,
    /// An event went into a batch run: `workflow_id` names it.
    Batched,
}

impl DecisionOutcome {
    /// The wire name (also the `outcome` label of the metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fired => "fired",
            Self::FiredZeroTasks => "fired_zero_tasks",
            Self::Skipped => "skipped",
            Self::Deduplicated => "deduplicated",
            Self::Filtered => "filtered",
            Self::Error => "error",
            Self::Accepted => "accepted",
            Self::Queued => "queued",
            Self::Debounced => "debounced",
            Self::Batched => "batched",
        }
    }

    /// Whether a run started.
    pub fn fired(self) -> bool {
        matches!(self, Self::Fired | Self::FiredZeroTasks)
    }
}

/// Why a schedule slot started no run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The previous run was still running and the overlap policy skips (Temporal counted it).
    Overlap,
    /// The slot was missed by more than the catch-up window, e.g. while the server was down
    /// (Temporal counted it).
    CatchupWindow,
    /// The schedule was paused.
    Paused,
    /// No run, and Temporal reports neither a skip nor a pause: look at the server.
    Unexplained,
}

impl SkipReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Overlap => "overlap",
            Self::CatchupWindow => "catchup_window",
            Self::Paused => "paused",
            Self::Unexplained => "unexplained",
        }
    }
}

/// What a decision says: the part its writer fills in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DecisionEntry {
    /// The definition.
    pub definition_id: String,
    /// Schedule, event or manual.
    pub source: RunTrigger,
    /// What became of it.
    pub outcome: DecisionOutcome,
    /// Short machine-readable cause: the skip reason, the filter expression, ...
    pub reason: Option<String>,
    /// In words.
    pub message: String,
    /// The schedule slot, for schedule decisions.
    pub slot: Option<DateTime<Utc>>,
    /// The run started, or the earlier run a duplicate maps to.
    pub workflow_id: Option<String>,
    /// The event's dedupe key, or the manual trigger's idempotency key.
    pub dedupe_key: Option<String>,
    /// Structured detail: the filter's inputs, the event, Temporal's counters.
    pub detail: Value,
}

/// One recorded outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TriggerDecision {
    /// Increasing with the time of recording.
    pub id: i64,
    /// What it says.
    #[serde(flatten)]
    pub entry: DecisionEntry,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}
