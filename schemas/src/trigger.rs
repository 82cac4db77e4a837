//! What started a run, as the run (and its templates, as `trigger`) sees it.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::events::TriggerEvent;

/// What started a run (the `TfTrigger` search attribute).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    /// A Temporal Schedule fired (cron definitions).
    Schedule,
    /// An event matched.
    Event,
    /// Somebody asked (API, CLI).
    Manual,
}

impl RunTrigger {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Event => "event",
            Self::Manual => "manual",
        }
    }
}

/// The trigger as the run sees it; templates read it as `trigger`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TriggerInfo {
    /// What started the run.
    pub kind: RunTrigger,
    /// The idempotency or dedupe key, when there is one.
    #[serde(default)]
    pub key: Option<String>,
    /// The event, for event runs (the last one, for a debounced or batched run).
    #[serde(default)]
    pub event: Option<TriggerEvent>,
    /// A debounced or batched run: all its events, in arrival order (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<TriggerEvent>,
    /// The trigger's payload (the event's payload, or a manual run's payload).
    #[serde(default)]
    pub payload: Value,
    /// The slot a scheduled run is for.
    #[serde(default)]
    pub scheduled_for: Option<DateTime<Utc>>,
}

impl TriggerInfo {
    /// A manual trigger with an optional key and payload.
    pub fn manual(key: Option<String>, payload: Value) -> Self {
        Self { kind: RunTrigger::Manual, key, event: None, events: Vec::new(), payload, scheduled_for: None }
    }
}
