//! `POST /api/v1/events`: event ingress.
//!
//! Each event starts one run per enabled `kind: event` definition whose `event_type` matches
//! and whose `filter` holds. The run's workflow id is `tf:{definition}:event:{dedupe_key}`.
//! Acceptance never waits on Temporal: the request commits an `event_receipts` row (`pending`)
//! and an `accepted` decision in Postgres, one statement per (event, definition) against the
//! definitions cached per event type ([`crate::listening`]), and answers
//! `accepted` with the workflow id; the starter ([`crate::event_starter`]) then starts the
//! runs. A key seen before answers `duplicate` (the receipt keeps it deduplicated after
//! Temporal forgot the workflow), and Temporal's id reuse policy keeps a start repeated after
//! a crash from starting anything twice.
//!
//! The answer lists, per event and definition, `accepted`, `duplicate`, `filtered` or `error`
//! with the workflow id. A malformed event in a batch is reported by index without losing the
//! others. Temporal being down changes nothing here: the runs start once it is back.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use taskfactory_schemas::TriggerEvent;
use taskfactory_schemas::ids::{check_workflow_id_len, event_workflow_id};
use taskfactory_schemas::run::{LoadedDefinition, RunTrigger};
use taskfactory_schemas::template::Templates;
use taskfactory_schemas::validate::{FieldError, control_character_errors};

use taskfactory_activities::auth_store::Principal;
use taskfactory_activities::metrics::metrics;
use taskfactory_activities::store::{Accept, Acceptance, GroupAcceptance, GroupMode, Grouped, Listening, NewDecision};
use taskfactory_schemas::decisions::DecisionOutcome;
use taskfactory_schemas::duration::parse_duration;

use super::FREE_FORM_FIELDS;
use crate::ApiState;
use crate::acceptor::Pending;
use crate::error::ApiError;

/// Most events in one request.
pub const MAX_BATCH: usize = 1000;
/// Longest dedupe key accepted (the event's `key` or a rendered `dedupe_key`).
pub const MAX_KEY_LEN: usize = 200;

/// What happened for one (event, definition) pair.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "EventOutcome")]
pub struct Outcome {
    /// The matching definition.
    pub definition_id: String,
    /// `accepted` (its run starts shortly), `debounced` or `batched` (it went into the run named,
    /// with other events), `duplicate`, `filtered` or `error`.
    pub outcome: String,
    /// The run's workflow id (accepted now, or the existing run of a duplicate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    /// Why (filtered, error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The body of `POST /api/v1/events`. The handler reads the items one by one, so that a
/// malformed event is reported by its index without losing the others.
#[derive(Debug, JsonSchema)]
#[serde(untagged)]
pub enum EventsBody {
    /// One event.
    One(TriggerEvent),
    /// A batch of 1 to 1,000 events.
    Batch(Vec<TriggerEvent>),
}

/// What became of one event of the request.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EventResult {
    /// The event is malformed (the others of a batch are still taken).
    Invalid {
        /// Its position in the batch (0 for a single event).
        index: usize,
        /// What is wrong, with the path of the field (`[3].type`).
        error: FieldError,
    },
    /// The event was taken: one outcome per matching definition.
    Accepted {
        /// Its position in the batch (0 for a single event).
        index: usize,
        /// The event's type.
        #[serde(rename = "type")]
        event_type: String,
        /// One per enabled `kind: event` definition of this type.
        outcomes: Vec<Outcome>,
    },
}

/// The answer of `POST /api/v1/events`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct IngestAnswer {
    /// One per event, in request order.
    pub results: Vec<EventResult>,
}

fn parse_event(value: Value, prefix: &str) -> Result<TriggerEvent, FieldError> {
    let at = |path: &str| {
        if path.is_empty() || path == "." {
            prefix.to_owned()
        } else if prefix.is_empty() {
            path.to_owned()
        } else {
            format!("{prefix}.{path}")
        }
    };
    // The payload is the sender's JSON and goes to the run as it is (U+0000 included, ADR-020);
    // type, key and source are names and keys.
    if let Some(refused) = control_character_errors(&value, FREE_FORM_FIELDS).into_iter().next() {
        return Err(FieldError { path: at(&refused.path), message: refused.message });
    }
    let event: TriggerEvent = serde_path_to_error::deserialize(value)
        .map_err(|e| FieldError { path: at(&e.path().to_string()), message: e.into_inner().to_string() })?;
    if let Some(when) = &event.occurred_at {
        taskfactory_schemas::validate::check_instant(when)
            .map_err(|message| FieldError { path: at("occurred_at"), message })?;
    }
    if event.event_type.trim().is_empty() {
        return Err(FieldError { path: at("type"), message: "must not be empty".into() });
    }
    if let Some(key) = &event.key
        && (key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control))
    {
        return Err(FieldError {
            path: at("key"),
            message: format!("must be 1 to {MAX_KEY_LEN} characters without control characters"),
        });
    }
    Ok(event)
}

/// Send events
///
/// One event or a batch. Each event starts one run per enabled `kind: event` definition whose
/// `event_type` matches and whose `filter` holds, at most once per dedupe key. The answer
/// comes once the events are committed in Postgres (`accepted`); the runs start right after,
/// also while Temporal is unreachable (they start when it is back). Retrying is always safe.
#[utoipa::path(post, path = "/api/v1/events", operation_id = "send_events", tag = "events",
    request_body(content = ref("#/components/schemas/EventsBody"), description = "One event, or an array of up to 1,000"),
    responses(
        (status = 200, description = "Per event: `accepted` with an outcome per definition, or `invalid`", body = ref("#/components/schemas/IngestAnswer")),
        (status = 400, description = "The body is not JSON"),
        (status = 422, description = "Every event is invalid, or the batch is empty or too large"),
        (status = 429, description = "The key's event rate limit is reached (the batch is refused whole)",
            headers(("retry-after" = u64, description = "Seconds to wait"))),
    ))]
pub async fn ingest(
    State(state): State<ApiState>,
    principal: Option<Extension<Principal>>,
    body: Bytes,
) -> Result<(StatusCode, Json<IngestAnswer>), ApiError> {
    // The starter of this process yields to a busy ingress.
    let _in_flight = state.starter.ingress_request();
    let value: Value = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?;
    let (items, batch) = match value {
        Value::Array(items) => (items, true),
        other => (vec![other], false),
    };
    // Each event costs one token of its key's bucket; a batch is refused whole, never cut.
    let key = principal.map(|Extension(p)| p.key_id).unwrap_or_default();
    if let Err(wait) = state.event_limiter.take(&key, items.len() as f64) {
        return Err(ApiError::TooManyRequests {
            message: format!("event rate limit of this key reached: retry in {} s", wait.as_secs() + 1),
            retry_after: wait.as_secs() + 1,
        });
    }
    if items.is_empty() {
        return Err(ApiError::field("", "the batch is empty"));
    }
    if items.len() > MAX_BATCH {
        return Err(ApiError::field("", format!("at most {MAX_BATCH} events per request, got {}", items.len())));
    }
    let templates = Templates::new();
    let mut results = Vec::with_capacity(items.len());
    let (mut invalid, mut accepted) = (Vec::new(), false);
    for (index, item) in items.into_iter().enumerate() {
        let prefix = if batch { format!("[{index}]") } else { String::new() };
        match parse_event(item, &prefix) {
            Err(error) => {
                metrics().events_received.with_label_values(&["invalid"]).inc();
                invalid.push(error.clone());
                results.push(EventResult::Invalid { index, error });
            }
            Ok(event) => {
                metrics().events_received.with_label_values(&["accepted"]).inc();
                let outcomes = ingest_one(&state, &templates, &event).await?;
                accepted |= outcomes.iter().any(|o| o.outcome != "duplicate" && o.workflow_id.is_some());
                results.push(EventResult::Accepted { index, event_type: event.event_type, outcomes });
            }
        }
    }
    if invalid.len() == results.len() {
        return Err(ApiError::Invalid(invalid));
    }
    if accepted {
        state.starter.wake();
    }
    Ok((StatusCode::OK, Json(IngestAnswer { results })))
}

/// Times an event is decided again because the definitions changed while it was decided.
const MAX_REREADS: usize = 5;

async fn ingest_one(state: &ApiState, templates: &Templates, event: &TriggerEvent) -> Result<Vec<Outcome>, ApiError> {
    let mut listening = state.listening.get(&state.store, &event.event_type).await?;
    let scope = json!({"event": event});
    // Definitions decided so far: a stale write rereads the definitions and goes on with the
    // ones not decided yet, so no (event, definition) is decided twice.
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(listening.enabled.len());
    let mut told_disabled: Vec<String> = Vec::new();
    for _ in 0..=MAX_REREADS {
        if ingest_with(state, templates, event, &scope, &listening, &mut outcomes, &mut told_disabled).await? {
            return Ok(outcomes);
        }
        listening = state.listening.reload(&state.store, &event.event_type).await?;
    }
    Err(ApiError::Unavailable(format!(
        "the definitions of event type {:?} kept changing while the event was taken: send it again",
        event.event_type
    )))
}

/// Decides the event for every definition of `listening` not decided yet; `false` when a
/// write found `listening` stale.
async fn ingest_with(
    state: &ApiState,
    templates: &Templates,
    event: &TriggerEvent,
    scope: &Value,
    listening: &Listening,
    outcomes: &mut Vec<Outcome>,
    told_disabled: &mut Vec<String>,
) -> Result<bool, ApiError> {
    // An event no definition takes writes nothing that could find the cache stale: ask.
    if listening.enabled.is_empty()
        && listening.disabled.is_empty()
        && state.store.definition_generation().await? != listening.generation
    {
        return Ok(false);
    }
    // Disabled definitions start nothing and get no outcome here, but their decision logs say
    // the event came.
    for id in &listening.disabled {
        if told_disabled.contains(id) {
            continue;
        }
        let mut skipped = NewDecision::unkeyed(
            id,
            RunTrigger::Event,
            DecisionOutcome::Skipped,
            "the definition is disabled: the event started no run".into(),
        );
        skipped.entry.reason = Some("disabled".into());
        skipped.entry.detail = json!({"event": recorded_event(event)});
        if !state.store.record_event_decision(&skipped, listening.generation).await? {
            return Ok(false);
        }
        told_disabled.push(id.clone());
    }
    for loaded in &listening.enabled {
        if outcomes.iter().any(|o| o.definition_id == loaded.definition.id.as_str()) {
            continue;
        }
        let Some(outcome) = ingest_for(state, templates, event, scope, loaded, listening.generation).await? else {
            return Ok(false);
        };
        metrics().event_outcomes.with_label_values(&[outcome.definition_id.as_str(), outcome.outcome.as_str()]).inc();
        outcomes.push(outcome);
    }
    Ok(true)
}

/// The event's outcome for one definition, committed; `None` when the definitions changed
/// since `generation` (nothing was written).
async fn ingest_for(
    state: &ApiState,
    templates: &Templates,
    event: &TriggerEvent,
    scope: &Value,
    loaded: &LoadedDefinition,
    generation: i64,
) -> Result<Option<Outcome>, ApiError> {
    let definition = &loaded.definition;
    let decide = |outcome, message: String| {
        let mut decision = NewDecision::unkeyed(definition.id.as_str(), RunTrigger::Event, outcome, message);
        decision.entry.detail = json!({"event": recorded_event(event)});
        decision
    };
    let (outcome, decision) = match decide_event(state, templates, event, scope, loaded, generation).await? {
        EventDecision::Stale => return Ok(None),
        EventDecision::Filtered { filter, saw } => {
            let shown: Vec<String> = saw.iter().map(|(path, value)| format!("{path} = {value}")).collect();
            let message = format!(
                "filter false: {filter}{}",
                if shown.is_empty() { String::new() } else { format!(" (saw {})", shown.join(", ")) }
            );
            let mut decision = decide(DecisionOutcome::Filtered, message.clone());
            decision.entry.reason = Some(filter.clone());
            decision.entry.detail["filter"] = json!(filter);
            decision.entry.detail["saw"] = json!(saw);
            (Outcome::new(definition, "filtered", None, Some(message)), decision)
        }
        EventDecision::Error(message) => {
            (Outcome::new(definition, "error", None, Some(message.clone())), decide(DecisionOutcome::Error, message))
        }
        // Both recorded their decision with the receipt, in one statement.
        EventDecision::Duplicate { workflow_id } => {
            return Ok(Some(Outcome::new(definition, "duplicate", Some(workflow_id), None)));
        }
        EventDecision::Accepted { workflow_id } => {
            return Ok(Some(Outcome::new(definition, "accepted", Some(workflow_id), None)));
        }
        EventDecision::Grouped { mode, workflow_id } => {
            let outcome = match mode {
                GroupMode::Debounce { .. } => "debounced",
                GroupMode::Batch { .. } => "batched",
            };
            return Ok(Some(Outcome::new(definition, outcome, Some(workflow_id), None)));
        }
    };
    Ok(state.store.record_event_decision(&decision, generation).await?.then_some(outcome))
}

impl Outcome {
    fn new(
        definition: &taskfactory_schemas::ActivityDefinition,
        outcome: &'static str,
        workflow_id: Option<String>,
        reason: Option<String>,
    ) -> Self {
        Self { definition_id: definition.id.to_string(), outcome: outcome.to_owned(), workflow_id, reason }
    }
}

/// What one event does for one definition, before it is recorded.
enum EventDecision {
    Filtered {
        filter: String,
        saw: std::collections::BTreeMap<String, Value>,
    },
    Error(String),
    Duplicate {
        workflow_id: String,
    },
    Accepted {
        workflow_id: String,
    },
    Grouped {
        mode: GroupMode,
        workflow_id: String,
    },
    /// The definitions changed since they were read: nothing was written.
    Stale,
}

/// Biggest event (as JSON) the decision log keeps whole; bigger ones keep type and key only.
const MAX_RECORDED_EVENT: usize = 64 * 1024;

fn recorded_event(event: &TriggerEvent) -> Value {
    let whole = serde_json::to_value(event).unwrap_or(Value::Null);
    if whole.to_string().len() <= MAX_RECORDED_EVENT {
        whole
    } else {
        json!({"type": event.event_type, "key": event.key, "truncated": true})
    }
}

async fn decide_event(
    state: &ApiState,
    templates: &Templates,
    event: &TriggerEvent,
    scope: &Value,
    loaded: &LoadedDefinition,
    generation: i64,
) -> Result<EventDecision, ApiError> {
    let definition = &loaded.definition;
    if let Some(filter) = &definition.trigger.filter {
        match templates.eval_condition(filter, scope) {
            Ok(true) => {}
            Ok(false) => {
                return Ok(EventDecision::Filtered {
                    filter: filter.trim().to_owned(),
                    saw: templates.condition_inputs(filter, scope),
                });
            }
            Err(e) => return Ok(EventDecision::Error(format!("trigger.filter: {e}"))),
        }
    }
    let key = match &definition.trigger.dedupe_key {
        Some(template) => match templates.render_text(template, scope) {
            Ok(key) if key.chars().any(char::is_control) => {
                return Ok(EventDecision::Error(
                    "trigger.dedupe_key: rendered to a key with a control character".into(),
                ));
            }
            Ok(key) if !key.is_empty() && key.len() <= MAX_KEY_LEN => key,
            Ok(key) => {
                return Ok(EventDecision::Error(format!(
                    "trigger.dedupe_key: rendered to {} characters (1 to {MAX_KEY_LEN} allowed)",
                    key.len()
                )));
            }
            Err(e) => return Ok(EventDecision::Error(format!("trigger.dedupe_key: {e}"))),
        },
        None => event.default_dedupe_key(),
    };
    let workflow_id = event_workflow_id(&definition.id, &key);
    if let Err(m) = check_workflow_id_len(&workflow_id) {
        return Ok(EventDecision::Error(format!("the dedupe key {m}")));
    }
    let event_json = serde_json::to_value(event).map_err(anyhow::Error::from)?;
    let detail = json!({"event": recorded_event(event)});
    let acceptance = Acceptance {
        definition_id: definition.id.as_str(),
        version: loaded.version,
        dedupe_key: &key,
        workflow_id: &workflow_id,
        event: &event_json,
        detail: &detail,
        generation,
    };
    let trigger = &definition.trigger;
    let grouping = match (&trigger.debounce, &trigger.batch) {
        (Some(d), _) => {
            let period = parse_duration(&d.period).map_err(|m| ApiError::field("trigger.debounce.period", m))?;
            let max_wait = d
                .max_wait
                .as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|m| ApiError::field("trigger.debounce.max_wait", m))?;
            Some((GroupMode::Debounce { period, max_wait }, "trigger.debounce.key", d.key.as_deref()))
        }
        (None, Some(b)) => {
            let max_wait = parse_duration(&b.max_wait).map_err(|m| ApiError::field("trigger.batch.max_wait", m))?;
            Some((GroupMode::Batch { max_size: b.max_size, max_wait }, "trigger.batch.key", b.key.as_deref()))
        }
        (None, None) => None,
    };
    if let Some((mode, field, group_key)) = grouping {
        let group_key = match group_key {
            None => String::new(),
            Some(template) => match templates.render_text(template, scope) {
                Ok(k) if k.len() <= MAX_KEY_LEN && !k.chars().any(char::is_control) => k,
                Ok(k) => {
                    return Ok(EventDecision::Error(format!(
                        "{field}: rendered to {} characters or a control character (1 to {MAX_KEY_LEN} allowed)",
                        k.len()
                    )));
                }
                Err(e) => return Ok(EventDecision::Error(format!("{field}: {e}"))),
            },
        };
        let acceptance = GroupAcceptance { event: acceptance, mode, group_key: &group_key };
        return Ok(match state.store.accept_grouped_event(&acceptance).await? {
            Grouped::Joined { workflow_id, .. } => EventDecision::Grouped { mode, workflow_id },
            Grouped::Duplicate { workflow_id } => EventDecision::Duplicate { workflow_id },
            Grouped::Stale => EventDecision::Stale,
        });
    }
    let pending = Pending {
        definition_id: definition.id.as_str().to_owned(),
        version: loaded.version,
        dedupe_key: key,
        workflow_id: workflow_id.clone(),
        event: event_json,
        detail,
        generation,
    };
    Ok(match state.acceptor.accept(&state.store, pending).await? {
        Accept::New => EventDecision::Accepted { workflow_id },
        Accept::Duplicate => EventDecision::Duplicate { workflow_id },
        Accept::Stale => EventDecision::Stale,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::parse_event;

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        let key = prop_oneof![
            Just("type".to_owned()),
            Just("key".to_owned()),
            Just("payload".to_owned()),
            Just("occurred_at".to_owned()),
            "[a-z]{1,6}"
        ];
        leaf.prop_recursive(3, 24, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..5).prop_map(|p| Value::Object(p.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Any event body is accepted or rejected with a path inside its batch slot.
        #[test]
        fn event_bodies_never_panic_and_errors_name_their_slot(body in any_json(), index in 0usize..5) {
            let prefix = format!("[{index}]");
            if let Err(e) = parse_event(body, &prefix) {
                prop_assert!(e.path.starts_with(&prefix), "{e:?}");
                prop_assert!(!e.message.is_empty());
            }
        }
    }
}
