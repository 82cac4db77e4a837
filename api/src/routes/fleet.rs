//! Fleet operations: pause, resume, trigger or backfill every definition a selector matches
//! (tags, a search text), answered definition by definition.
//!
//! The per-definition work is the single-definition routes' own: [`schedules`] for the cron
//! definitions' Temporal Schedules, [`runs::start_manual_run`] for manual runs. A selector
//! must name tags or a search text, so no call acts on every definition by accident; one
//! definition failing never stops the others (ADR-015).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use taskfactory_activities::store::{DefinitionFilter, DefinitionRecord, DefinitionSummary};
use taskfactory_schemas::definition::TriggerKind;

use super::extract::definition_filter;
use super::schedules::{self, BackfillRange};
use super::{json_body, runs};
use crate::ApiState;
use crate::error::ApiError;

/// Definitions acted on at once (each costs a Postgres read and a Temporal call).
pub const FLEET_CONCURRENCY: usize = 8;

/// Body of the fleet operations. Fields an operation does not use are refused.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetRequest {
    /// Only definitions carrying every one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only definitions whose id or name contains this text, ignoring case.
    #[serde(default)]
    pub search: Option<String>,
    /// pause, resume: the note recorded on each schedule.
    #[serde(default)]
    pub note: Option<String>,
    /// trigger: the payload of manual runs (`trigger.payload`).
    #[serde(default)]
    pub payload: Option<Value>,
    /// backfill: start of the range (RFC 3339, inclusive).
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    /// backfill: end of the range (RFC 3339, inclusive).
    #[serde(default)]
    pub end: Option<DateTime<Utc>>,
    /// Only report what matches and what would be skipped; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a fleet operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FleetAction {
    /// Pause the schedules of cron definitions.
    Pause,
    /// Unpause the schedules of (enabled) cron definitions.
    Resume,
    /// Fire cron definitions' schedules now; start manual runs of the others.
    Trigger,
    /// Backfill the schedules of cron definitions over a range.
    Backfill,
}

impl FleetAction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Trigger => "trigger",
            Self::Backfill => "backfill",
        }
    }
}

/// What happened to one definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FleetOutcome {
    /// Its schedule was paused.
    Paused,
    /// Its schedule was unpaused.
    Resumed,
    /// Its schedule fired, or a manual run started.
    Triggered,
    /// Its schedule was asked to backfill the slots listed.
    Backfilled,
    /// The operation does not apply to it (`detail` says why).
    Skipped,
    /// The operation failed for it (`detail` has the message); the others went on.
    Error,
    /// A dry run: the operation would act on it.
    Matched,
}

/// One definition's line of the answer.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct FleetResult {
    /// The definition.
    pub definition_id: String,
    /// `cron`, `event` or `manual`.
    pub trigger_kind: String,
    /// What happened.
    pub outcome: FleetOutcome,
    /// Why it was skipped, the error, or what was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// trigger of a manual or event definition: the run's workflow id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    /// backfill: the slots in the range (RFC 3339), one run each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slots: Option<Vec<String>>,
}

/// The answer of a fleet operation.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct FleetAnswer {
    /// `pause`, `resume`, `trigger` or `backfill`.
    pub action: FleetAction,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// How many definitions the selector matched.
    pub matched: usize,
    /// One per matched definition, by id.
    pub results: Vec<FleetResult>,
}

/// A checked fleet request.
#[derive(Debug, PartialEq)]
pub struct FleetOperation {
    /// What to do.
    pub action: FleetAction,
    /// Which definitions.
    pub filter: DefinitionFilter,
    /// pause, resume: the note.
    pub note: Option<String>,
    /// trigger: the manual runs' payload.
    pub payload: Value,
    /// backfill: the range.
    pub range: Option<BackfillRange>,
    /// Change nothing.
    pub dry_run: bool,
}

impl FleetOperation {
    /// Checks a request for `action`: a selector with tags or a search text (else 422 at
    /// `tags`), valid tags, no field the action does not use, and for a backfill a valid range.
    pub fn check(action: FleetAction, request: FleetRequest) -> Result<Self, ApiError> {
        let unused = [
            ("note", request.note.is_some() && !matches!(action, FleetAction::Pause | FleetAction::Resume)),
            ("payload", request.payload.is_some() && action != FleetAction::Trigger),
            ("start", request.start.is_some() && action != FleetAction::Backfill),
            ("end", request.end.is_some() && action != FleetAction::Backfill),
        ];
        if let Some((field, _)) = unused.iter().find(|(_, set)| *set) {
            return Err(ApiError::field(*field, format!("not used by fleet {}", action.as_str())));
        }
        let filter = definition_filter("tags", request.tags, request.search)?;
        if filter.is_empty() {
            return Err(ApiError::field(
                "tags",
                "name tags or a search text: a fleet operation never selects every definition",
            ));
        }
        let range = match action {
            FleetAction::Backfill => Some(schedules::backfill_range(request.start, request.end)?),
            _ => None,
        };
        Ok(Self {
            action,
            filter,
            note: request.note,
            payload: request.payload.unwrap_or(Value::Null),
            range,
            dry_run: request.dry_run,
        })
    }
}

/// Why `action` does not apply to a definition of `kind` (enabled or not); `None` when it does.
pub fn skip_reason(action: FleetAction, kind: TriggerKind, enabled: bool) -> Option<String> {
    if !enabled {
        // Its schedule is paused by taskfactory until it is enabled, and it takes no runs.
        return Some("definition disabled".to_owned());
    }
    let needs_schedule = action != FleetAction::Trigger;
    (needs_schedule && kind != TriggerKind::Cron).then(|| format!("no schedule: kind {}", kind.as_str()))
}

impl FleetResult {
    fn new(summary: &DefinitionSummary, outcome: FleetOutcome, detail: impl Into<String>) -> Self {
        Self {
            definition_id: summary.id.clone(),
            trigger_kind: summary.trigger_kind.clone(),
            outcome,
            detail: Some(detail.into()),
            workflow_id: None,
            slots: None,
        }
    }
}

/// Does the operation's work for one definition; errors become its `error` line.
async fn act(
    state: &ApiState,
    operation: &FleetOperation,
    record: DefinitionRecord,
    summary: &DefinitionSummary,
) -> Result<FleetResult, ApiError> {
    let definition = &record.definition;
    let is_cron = definition.trigger.kind == TriggerKind::Cron;
    Ok(match operation.action {
        FleetAction::Pause => {
            let answer = schedules::pause_schedule(state, definition, operation.note.clone()).await?;
            FleetResult::new(summary, FleetOutcome::Paused, format!("{}: {}", answer.schedule_id, answer.note))
        }
        FleetAction::Resume => {
            let answer = schedules::unpause_schedule(state, definition, operation.note.clone()).await?;
            FleetResult::new(summary, FleetOutcome::Resumed, format!("{}: {}", answer.schedule_id, answer.note))
        }
        FleetAction::Trigger if is_cron => {
            let answer = schedules::trigger_schedule(state, definition).await?;
            FleetResult::new(summary, FleetOutcome::Triggered, format!("{} fired", answer.schedule_id))
        }
        FleetAction::Trigger => {
            let started = runs::start_manual_run(state, record, None, operation.payload.clone()).await?;
            FleetResult {
                workflow_id: Some(started.workflow_id),
                ..FleetResult::new(summary, FleetOutcome::Triggered, "manual run started")
            }
        }
        FleetAction::Backfill => {
            let range = operation.range.ok_or_else(|| ApiError::field("start", "required (RFC 3339)"))?;
            let answer = schedules::backfill_schedule(state, definition, range).await?;
            let detail = format!("{}: {} slot(s)", answer.schedule_id, answer.slots.len());
            FleetResult { slots: Some(answer.slots), ..FleetResult::new(summary, FleetOutcome::Backfilled, detail) }
        }
    })
}

/// One definition: reload its current document (the list may be a moment old), skip it or act.
async fn one(state: &ApiState, operation: &FleetOperation, summary: DefinitionSummary) -> FleetResult {
    let record = match state.store.get_definition(&summary.id).await {
        Ok(record) => record,
        Err(e) => return FleetResult::new(&summary, FleetOutcome::Error, ApiError::from(e).public_message()),
    };
    let definition = &record.definition;
    if let Some(reason) = skip_reason(operation.action, definition.trigger.kind, definition.enabled) {
        return FleetResult::new(&summary, FleetOutcome::Skipped, reason);
    }
    if operation.dry_run {
        return FleetResult::new(&summary, FleetOutcome::Matched, format!("would {}", operation.action.as_str()));
    }
    let id = summary.id.clone();
    act(state, operation, record, &summary).await.unwrap_or_else(|e| {
        let message = e.public_message();
        tracing::warn!(definition = %id, action = operation.action.as_str(), error = %message, "fleet operation failed for a definition");
        FleetResult::new(&summary, FleetOutcome::Error, message)
    })
}

/// Parses, checks and runs a fleet operation over every matching definition.
async fn run(state: &ApiState, action: FleetAction, body: &[u8]) -> Result<Json<FleetAnswer>, ApiError> {
    let operation = FleetOperation::check(action, json_body(body)?)?;
    let matched = state.store.list_definitions(&operation.filter).await?;
    let results: Vec<FleetResult> = futures_util::stream::iter(matched)
        .map(|summary| one(state, &operation, summary))
        .buffered(FLEET_CONCURRENCY)
        .collect()
        .await;
    tracing::info!(action = action.as_str(), dry_run = operation.dry_run, matched = results.len(), "fleet operation");
    Ok(Json(FleetAnswer { action, dry_run: operation.dry_run, matched: results.len(), results }))
}

/// Pause the schedules of matching definitions
///
/// Cron definitions' schedules are paused with `note`; other kinds and disabled definitions
/// are skipped.
#[utoipa::path(post, path = "/api/v1/fleet/pause", operation_id = "fleet_pause", tag = "fleet",
    request_body(content = ref("#/components/schemas/FleetRequest"), description = "A selector (`tags`, `search`), `note`, `dry_run`"),
    responses(
        (status = 200, description = "One result per matched definition", body = ref("#/components/schemas/FleetAnswer")),
        (status = 422, description = "No selector (`tags`), a bad tag (`tags[i]`), or a field pause does not use"),
    ))]
pub async fn pause(State(state): State<ApiState>, body: Bytes) -> Result<Json<FleetAnswer>, ApiError> {
    run(&state, FleetAction::Pause, &body).await
}

/// Resume the schedules of matching definitions
///
/// Enabled cron definitions' schedules are unpaused with `note`; other kinds and disabled
/// definitions are skipped.
#[utoipa::path(post, path = "/api/v1/fleet/resume", operation_id = "fleet_resume", tag = "fleet",
    request_body(content = ref("#/components/schemas/FleetRequest"), description = "A selector (`tags`, `search`), `note`, `dry_run`"),
    responses(
        (status = 200, description = "One result per matched definition", body = ref("#/components/schemas/FleetAnswer")),
        (status = 422, description = "No selector (`tags`), a bad tag (`tags[i]`), or a field resume does not use"),
    ))]
pub async fn resume(State(state): State<ApiState>, body: Bytes) -> Result<Json<FleetAnswer>, ApiError> {
    run(&state, FleetAction::Resume, &body).await
}

/// Trigger matching definitions now
///
/// Cron definitions' schedules fire now; manual and event definitions get a manual run (with
/// `payload`), as `POST /api/v1/definitions/{id}/runs` starts them. Disabled ones are skipped.
#[utoipa::path(post, path = "/api/v1/fleet/trigger", operation_id = "fleet_trigger", tag = "fleet",
    request_body(content = ref("#/components/schemas/FleetRequest"), description = "A selector (`tags`, `search`), `payload`, `dry_run`"),
    responses(
        (status = 200, description = "One result per matched definition", body = ref("#/components/schemas/FleetAnswer")),
        (status = 422, description = "No selector (`tags`), a bad tag (`tags[i]`), or a field trigger does not use"),
    ))]
pub async fn trigger(State(state): State<ApiState>, body: Bytes) -> Result<Json<FleetAnswer>, ApiError> {
    run(&state, FleetAction::Trigger, &body).await
}

/// Backfill the schedules of matching definitions
///
/// Cron definitions' schedules start one run per slot in `[start, end]` (at most 1,000 per
/// definition); other kinds and disabled definitions are skipped.
#[utoipa::path(post, path = "/api/v1/fleet/backfill", operation_id = "fleet_backfill", tag = "fleet",
    request_body(content = ref("#/components/schemas/FleetRequest"), description = "A selector (`tags`, `search`), `start`, `end`, `dry_run`"),
    responses(
        (status = 200, description = "One result per matched definition", body = ref("#/components/schemas/FleetAnswer")),
        (status = 422, description = "No selector (`tags`), a bad tag (`tags[i]`), `start`/`end` missing or out of order, or a field backfill does not use"),
    ))]
pub async fn backfill(State(state): State<ApiState>, body: Bytes) -> Result<Json<FleetAnswer>, ApiError> {
    run(&state, FleetAction::Backfill, &body).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(action: FleetAction, body: Value) -> Result<FleetOperation, Vec<String>> {
        let request: FleetRequest = json_body(body.to_string().as_bytes()).map_err(paths)?;
        FleetOperation::check(action, request).map_err(paths)
    }

    fn paths(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Invalid(errors) => errors.into_iter().map(|e| e.path).collect(),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn a_selector_needs_tags_or_a_search() {
        assert_eq!(check(FleetAction::Pause, json!({})).unwrap_err(), ["tags"]);
        assert_eq!(check(FleetAction::Pause, json!({"tags": [], "search": "  "})).unwrap_err(), ["tags"]);
        assert!(json_body::<FleetRequest>(b"").is_ok_and(|r| FleetOperation::check(FleetAction::Resume, r).is_err()));
        let by_search = check(FleetAction::Pause, json!({"search": " Nightly "})).unwrap();
        assert_eq!(by_search.filter, DefinitionFilter { tags: vec![], search: Some("Nightly".into()) });
        let by_tags = check(FleetAction::Resume, json!({"tags": ["billing", "eu"], "note": "done"})).unwrap();
        assert_eq!(by_tags.filter.tags, ["billing", "eu"]);
        assert_eq!(by_tags.note.as_deref(), Some("done"));
    }

    #[test]
    fn bad_tags_and_unknown_or_unused_fields_are_named() {
        assert_eq!(
            check(FleetAction::Pause, json!({"tags": ["ok", "Not OK", "ok"]})).unwrap_err(),
            ["tags[1]", "tags[2]"]
        );
        assert_eq!(check(FleetAction::Pause, json!({"tags": ["a"], "tagz": ["b"]})).unwrap_err(), ["tagz"]);
        assert_eq!(check(FleetAction::Pause, json!({"tags": ["a"], "payload": {}})).unwrap_err(), ["payload"]);
        assert_eq!(check(FleetAction::Trigger, json!({"tags": ["a"], "note": "x"})).unwrap_err(), ["note"]);
        assert_eq!(
            check(FleetAction::Resume, json!({"tags": ["a"], "start": "2026-01-01T00:00:00Z"})).unwrap_err(),
            ["start"]
        );
        assert_eq!(check(FleetAction::Pause, json!({"search": "x".repeat(201)})).unwrap_err(), ["search"]);
        let trigger =
            check(FleetAction::Trigger, json!({"tags": ["a"], "payload": {"n": 1}, "dry_run": true})).unwrap();
        assert_eq!(trigger.payload, json!({"n": 1}));
        assert!(trigger.dry_run);
    }

    #[test]
    fn a_backfill_range_is_checked_up_front() {
        assert_eq!(check(FleetAction::Backfill, json!({"tags": ["a"]})).unwrap_err(), ["start"]);
        assert_eq!(
            check(FleetAction::Backfill, json!({"tags": ["a"], "start": "2026-01-02T00:00:00Z"})).unwrap_err(),
            ["end"]
        );
        let reversed = json!({"tags": ["a"], "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"});
        assert_eq!(check(FleetAction::Backfill, reversed).unwrap_err(), ["end"]);
        assert_eq!(check(FleetAction::Backfill, json!({"tags": ["a"], "start": "yesterday"})).unwrap_err(), ["start"]);
        let ok = check(
            FleetAction::Backfill,
            json!({"tags": ["a"], "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}),
        )
        .unwrap();
        assert_eq!(
            ok.range.map(|(s, e)| (s.to_rfc3339(), e.to_rfc3339())),
            Some(("2026-01-01T00:00:00+00:00".into(), "2026-01-02T00:00:00+00:00".into()))
        );
    }

    #[test]
    fn what_applies_to_which_kind() {
        use FleetAction::*;
        for action in [Pause, Resume, Trigger, Backfill] {
            assert_eq!(skip_reason(action, TriggerKind::Cron, true), None, "{action:?}");
            assert_eq!(skip_reason(action, TriggerKind::Cron, false).as_deref(), Some("definition disabled"));
            assert_eq!(skip_reason(action, TriggerKind::Manual, false).as_deref(), Some("definition disabled"));
        }
        for action in [Pause, Resume, Backfill] {
            assert_eq!(skip_reason(action, TriggerKind::Event, true).as_deref(), Some("no schedule: kind event"));
            assert_eq!(skip_reason(action, TriggerKind::Manual, true).as_deref(), Some("no schedule: kind manual"));
        }
        assert_eq!(skip_reason(Trigger, TriggerKind::Event, true), None);
        assert_eq!(skip_reason(Trigger, TriggerKind::Manual, true), None);
    }
}
