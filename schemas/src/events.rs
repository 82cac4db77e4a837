//! Trigger events (what starts runs) and trace events (what runs leave in the run log).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An external event, as posted to `POST /api/v1/events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerEvent {
    /// Event type matched against definitions' `trigger.event_type`, e.g. `repo.pushed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Caller's idempotency key; the default dedupe key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Who sent it, for the run log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The event's data, available to templates as `trigger.payload`.
    #[serde(default)]
    pub payload: Value,
    /// When it happened, by the sender's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
}

/// Types of trace event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// The run's workflow started and recorded itself.
    WorkflowStarted,
    /// Context sources were resolved; payload has the names and sizes.
    ContextResolved,
    /// The plan was made; payload counts spawns and skips.
    PlanCreated,
    /// A deferred template was planned once its dependencies finished.
    PlanExtended,
    /// A task started.
    NodeStarted,
    /// A task reported progress.
    NodeProgress,
    /// A task logged a line.
    NodeLog,
    /// A task completed.
    NodeCompleted,
    /// A task failed.
    NodeFailed,
    /// A task waits for something outside (a person, a dependency).
    NodeWaiting,
    /// A template's tasks were not started because a dependency failed.
    NodeSkipped,
    /// The run completed (possibly with zero tasks).
    WorkflowCompleted,
    /// The run failed.
    WorkflowFailed,
    /// A task did not finish because its run was closed in Temporal.
    NodeCancelled,
    /// The run was cancelled (through taskfactory or in Temporal).
    WorkflowCancelled,
    /// The run was terminated in Temporal.
    WorkflowTerminated,
    /// The run's execution timed out in Temporal.
    WorkflowTimedOut,
    /// The run was reset in Temporal: it runs again from the reset point as a new Temporal run
    /// of the same run record.
    WorkflowReset,
    /// A task attached an artifact (a link, or content served by `GET /api/v1/artifacts/{id}`).
    NodeArtifact,
    /// The run waits for a slot of its concurrency key (payload: key, running, limit, position).
    WorkflowQueued,
    /// The run got a slot of its concurrency key and goes on (after waiting, if it was queued).
    WorkflowAdmitted,
    /// The run ended without work: its concurrency key was at the limit (`on_limit: skip`).
    WorkflowSkipped,
}

impl EventType {
    /// Every type, in declaration order: what the web UI subscribes to (`/api/v1/ui-config`).
    pub fn all() -> &'static [Self] {
        &[
            Self::WorkflowStarted,
            Self::ContextResolved,
            Self::PlanCreated,
            Self::PlanExtended,
            Self::NodeStarted,
            Self::NodeProgress,
            Self::NodeLog,
            Self::NodeCompleted,
            Self::NodeFailed,
            Self::NodeWaiting,
            Self::NodeSkipped,
            Self::WorkflowCompleted,
            Self::WorkflowFailed,
            Self::NodeCancelled,
            Self::WorkflowCancelled,
            Self::WorkflowTerminated,
            Self::WorkflowTimedOut,
            Self::WorkflowReset,
            Self::NodeArtifact,
            Self::WorkflowQueued,
            Self::WorkflowAdmitted,
            Self::WorkflowSkipped,
        ]
    }

    /// Whether the event records a run's end (completed, failed, cancelled, terminated, timed
    /// out). A run reset in Temporal has a later end too.
    pub fn ends_run(self) -> bool {
        matches!(
            self,
            Self::WorkflowCompleted
                | Self::WorkflowFailed
                | Self::WorkflowCancelled
                | Self::WorkflowTerminated
                | Self::WorkflowTimedOut
                | Self::WorkflowSkipped
        )
    }

    /// The wire name, e.g. `NODE_STARTED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkflowStarted => "WORKFLOW_STARTED",
            Self::ContextResolved => "CONTEXT_RESOLVED",
            Self::PlanCreated => "PLAN_CREATED",
            Self::PlanExtended => "PLAN_EXTENDED",
            Self::NodeStarted => "NODE_STARTED",
            Self::NodeProgress => "NODE_PROGRESS",
            Self::NodeLog => "NODE_LOG",
            Self::NodeCompleted => "NODE_COMPLETED",
            Self::NodeFailed => "NODE_FAILED",
            Self::NodeWaiting => "NODE_WAITING",
            Self::NodeSkipped => "NODE_SKIPPED",
            Self::WorkflowCompleted => "WORKFLOW_COMPLETED",
            Self::WorkflowFailed => "WORKFLOW_FAILED",
            Self::NodeCancelled => "NODE_CANCELLED",
            Self::WorkflowCancelled => "WORKFLOW_CANCELLED",
            Self::WorkflowTerminated => "WORKFLOW_TERMINATED",
            Self::WorkflowTimedOut => "WORKFLOW_TIMED_OUT",
            Self::WorkflowReset => "WORKFLOW_RESET",
            Self::NodeArtifact => "NODE_ARTIFACT",
            Self::WorkflowQueued => "WORKFLOW_QUEUED",
            Self::WorkflowAdmitted => "WORKFLOW_ADMITTED",
            Self::WorkflowSkipped => "WORKFLOW_SKIPPED",
        }
    }
}

/// Severity of a trace event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something unusual that did not fail the run.
    Warn,
    /// A failure.
    Error,
}

impl Level {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// One entry of a run's log, as readers see it. `seq` is gapless and totally ordered per run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TraceEvent {
    /// The run's workflow id.
    pub run_id: String,
    /// Position in the run's log, from 1, without gaps.
    pub seq: i64,
    /// When the event was written.
    pub ts: DateTime<Utc>,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The task (its workflow id) the event is about, if any.
    pub node_id: Option<String>,
    /// Severity.
    pub level: Level,
    /// A human-readable line.
    pub message: Option<String>,
    /// Structured detail.
    pub payload: Value,
}

/// A trace event to append. `key` makes the write idempotent: a retried write with the same
/// key is a no-op, so retries and replays never duplicate an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NewTraceEvent {
    /// Idempotency key, unique within the run.
    pub key: String,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The task the event is about, if any.
    pub node_id: Option<String>,
    /// Severity.
    pub level: Level,
    /// A human-readable line.
    pub message: Option<String>,
    /// Structured detail.
    pub payload: Value,
}

impl TriggerEvent {
    /// The default dedupe key: the event's `key`, else a hash of its canonical payload.
    pub fn default_dedupe_key(&self) -> String {
        match &self.key {
            Some(key) => key.clone(),
            None => format!("sha256:{}", canonical_hash(&self.payload)),
        }
    }
}

/// Hex SHA-256 (first 32 digits) of the value's canonical JSON: object keys sorted at every
/// level, so `{"a":1,"b":2}` and `{"b":2,"a":1}` hash alike.
pub fn canonical_hash(value: &Value) -> String {
    use sha2::{Digest, Sha256};
    fn canonical(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), canonical(&map[k]))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
            other => other.clone(),
        }
    }
    let bytes = serde_json::to_vec(&canonical(value)).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))[..32].to_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    /// The wire names a type's JSON Schema lists (`oneOf` of `const`s, or `enum`): every
    /// variant serde knows, so a list that matches them misses none.
    pub(crate) fn schema_names<T: JsonSchema>() -> Vec<String> {
        let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap();
        match (schema.get("oneOf"), schema.get("enum")) {
            (Some(variants), _) => {
                variants.as_array().unwrap().iter().map(|v| v["const"].as_str().unwrap().to_owned()).collect()
            }
            (None, Some(names)) => names.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
            (None, None) => panic!("not an enum schema: {schema}"),
        }
    }

    #[test]
    fn every_event_type_is_listed_once_under_its_wire_name() {
        let listed: Vec<String> = EventType::all().iter().map(|t| t.as_str().to_owned()).collect();
        assert_eq!(listed, schema_names::<EventType>());
        for t in EventType::all() {
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
    }

    #[test]
    fn canonical_hash_ignores_key_order() {
        assert_eq!(
            canonical_hash(&json!({"a": 1, "b": {"c": 2, "d": 3}})),
            canonical_hash(&json!({"b": {"d": 3, "c": 2}, "a": 1}))
        );
        assert_ne!(canonical_hash(&json!({"a": 1})), canonical_hash(&json!({"a": 2})));
    }
}
