//! Cron definitions as Temporal Schedules (one per definition, id `tf:{definition_id}`).
//!
//! The schedule is built from the definition (`schedule_for`) with the raw protos, because the
//! SDK's builder cannot set the started workflows' search attributes and memo, nor the
//! catch-up window. The action's memo carries a hash of what the schedule was built from
//! (`tf_spec_hash`), so [`sync_definition`] and the reconciler can tell a stale schedule
//! without comparing the server's normalised spec; the schedule's own memo names the task
//! queue of the deployment that owns it.
//!
//! Pausing: a disabled definition's schedule is paused with [`DISABLED_NOTE`]; enabling it
//! again unpauses only that pause. A pause an operator made (any other note) is left alone.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use taskfactory_activities::Store;
use taskfactory_activities::metrics::metrics;
use taskfactory_orchestrator::RUN_WORKFLOW_TYPE;
use taskfactory_orchestrator::search::{self, Kind, MEMO_DEFINITION_NAME};
use taskfactory_schemas::definition::{OverlapPolicy, TriggerKind};
use taskfactory_schemas::duration::parse_duration;
use taskfactory_schemas::events::canonical_hash;
use taskfactory_schemas::ids::{schedule_id, schedule_workflow_id};
use taskfactory_schemas::run::{RunInput, RunTrigger, TriggerInfo};
use taskfactory_schemas::{ActivityDefinition, DefinitionId};
use temporalio_client::schedules::ListSchedulesOptions;
use temporalio_client::tonic::{Code, Request, Status};
use temporalio_client::{Client, NamespacedClient};
use temporalio_common::protos::temporal::api::common::v1::{Memo, Payload, Payloads, WorkflowType};
use temporalio_common::protos::temporal::api::enums::v1::{ScheduleOverlapPolicy, TaskQueueKind};
use temporalio_common::protos::temporal::api::schedule::v1::{
    Schedule, ScheduleAction, SchedulePolicies, ScheduleSpec, ScheduleState, schedule_action,
};
use temporalio_common::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_common::protos::temporal::api::workflow::v1::NewWorkflowExecutionInfo;
use temporalio_common::protos::temporal::api::workflowservice::v1::{
    CreateScheduleRequest, DeleteScheduleRequest, DescribeScheduleRequest, DescribeScheduleResponse,
    UpdateScheduleRequest,
};

/// Note on schedules paused because their definition is disabled.
pub const DISABLED_NOTE: &str = "paused by taskfactory: definition disabled";
/// Memo field of the schedule's action holding the hash of what the schedule was built from.
pub const MEMO_SPEC_HASH: &str = "tf_spec_hash";
/// Memo field of the schedule naming the task queue of the deployment that owns it: the
/// reconciler only ever deletes schedules its own deployment created.
pub const MEMO_TASK_QUEUE: &str = "tf_task_queue";

/// Errors talking to Temporal about schedules.
#[derive(Debug, thiserror::Error)]
#[error("schedule {schedule_id}: {message}")]
pub struct ScheduleSyncError {
    /// The schedule.
    pub schedule_id: String,
    /// What went wrong.
    pub message: String,
}

/// What a sync did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncAction {
    /// A schedule was created.
    Created,
    /// A stale schedule was updated (spec, action, policies or pause state).
    Updated,
    /// Nothing to do.
    Unchanged,
    /// The schedule was deleted (the definition is gone or no longer `cron`).
    Deleted,
    /// No schedule exists and none should.
    Absent,
}

impl SyncAction {
    /// The wire name (as serialized, and as the `action` label of the reconcile metric).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::Deleted => "deleted",
            Self::Absent => "absent",
        }
    }
}

fn json_payload(value: &Value) -> Payload {
    Payload {
        metadata: HashMap::from([("encoding".to_owned(), b"json/plain".to_vec())]),
        data: serde_json::to_vec(value).unwrap_or_default(),
        ..Default::default()
    }
}

fn proto_duration(d: Duration) -> prost_wkt_types::Duration {
    prost_wkt_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn proto_time(t: chrono::DateTime<chrono::Utc>) -> prost_wkt_types::Timestamp {
    prost_wkt_types::Timestamp { seconds: t.timestamp(), nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0) }
}

fn overlap(policy: Option<OverlapPolicy>) -> ScheduleOverlapPolicy {
    match policy.unwrap_or(OverlapPolicy::Skip) {
        OverlapPolicy::Skip => ScheduleOverlapPolicy::Skip,
        OverlapPolicy::BufferOne => ScheduleOverlapPolicy::BufferOne,
        OverlapPolicy::BufferAll => ScheduleOverlapPolicy::BufferAll,
        OverlapPolicy::CancelOther => ScheduleOverlapPolicy::CancelOther,
        OverlapPolicy::TerminateOther => ScheduleOverlapPolicy::TerminateOther,
        OverlapPolicy::AllowAll => ScheduleOverlapPolicy::AllowAll,
    }
}

/// The hash of everything a schedule is built from.
pub fn spec_hash(definition: &ActivityDefinition, task_queue: &str) -> String {
    canonical_hash(&json!({"trigger": definition.trigger, "name": definition.name, "task_queue": task_queue, "v": 1}))
}

/// The Temporal Schedule of a (validated) cron definition.
pub fn schedule_for(definition: &ActivityDefinition, task_queue: &str, paused: bool, note: &str) -> Schedule {
    let trigger = &definition.trigger;
    let duration = |v: &Option<String>| v.as_deref().and_then(|s| parse_duration(s).ok()).map(proto_duration);
    let input = RunInput {
        definition_id: definition.id.clone(),
        version: None,
        trigger: TriggerInfo {
            kind: RunTrigger::Schedule,
            key: None,
            event: None,
            events: Vec::new(),
            payload: Value::Null,
            scheduled_for: None,
        },
        retry_of: None,
    };
    // The version is the run's to say: it loads the current one when it starts.
    let attributes = search::attributes(&definition.id, RunTrigger::Schedule, None, Kind::Run);
    let action = NewWorkflowExecutionInfo {
        workflow_id: schedule_workflow_id(&definition.id),
        workflow_type: Some(WorkflowType { name: RUN_WORKFLOW_TYPE.to_owned() }),
        task_queue: Some(TaskQueue {
            name: task_queue.to_owned(),
            kind: TaskQueueKind::Normal as i32,
            ..Default::default()
        }),
        input: Some(Payloads { payloads: vec![json_payload(&serde_json::to_value(&input).unwrap_or_default())] }),
        memo: Some(Memo {
            fields: HashMap::from([
                (MEMO_DEFINITION_NAME.to_owned(), json_payload(&json!(definition.name))),
                (MEMO_SPEC_HASH.to_owned(), json_payload(&json!(spec_hash(definition, task_queue)))),
            ]),
        }),
        search_attributes: Some(attributes.into_proto()),
        ..Default::default()
    };
    Schedule {
        spec: Some(ScheduleSpec {
            cron_string: trigger.cron.clone(),
            timezone_name: trigger.timezone.clone().unwrap_or_else(|| "UTC".to_owned()),
            jitter: duration(&trigger.jitter),
            start_time: trigger.start_at.map(proto_time),
            end_time: trigger.end_at.map(proto_time),
            ..Default::default()
        }),
        action: Some(ScheduleAction { action: Some(schedule_action::Action::StartWorkflow(action)) }),
        policies: Some(SchedulePolicies {
            overlap_policy: overlap(trigger.overlap) as i32,
            catchup_window: duration(&trigger.catchup_window),
            ..Default::default()
        }),
        state: Some(ScheduleState { paused, notes: note.to_owned(), ..Default::default() }),
    }
}

fn sync_error(id: &str) -> impl Fn(Status) -> ScheduleSyncError + '_ {
    move |status| ScheduleSyncError {
        schedule_id: id.to_owned(),
        message: format!("{}: {}", status.code(), status.message()),
    }
}

/// Describes a schedule; `None` when it does not exist.
pub async fn describe_raw(client: &Client, id: &str) -> Result<Option<DescribeScheduleResponse>, ScheduleSyncError> {
    let request = DescribeScheduleRequest { namespace: client.namespace(), schedule_id: id.to_owned() };
    match client.connection().workflow_service().describe_schedule(Request::new(request)).await {
        Ok(response) => Ok(Some(response.into_inner())),
        Err(status) if status.code() == Code::NotFound => Ok(None),
        Err(status) => Err(sync_error(id)(status)),
    }
}

fn memo_string(memo: Option<&Memo>, key: &str) -> Option<String> {
    let payload = memo?.fields.get(key)?;
    serde_json::from_slice::<String>(&payload.data).ok()
}

/// Makes Temporal match the definition: creates, updates, pauses, unpauses or deletes its
/// schedule. Idempotent.
pub async fn sync_definition(
    client: &Client,
    task_queue: &str,
    definition: &ActivityDefinition,
) -> Result<SyncAction, ScheduleSyncError> {
    let id = schedule_id(&definition.id);
    if definition.trigger.kind != TriggerKind::Cron {
        return delete(client, &definition.id)
            .await
            .map(|deleted| if deleted { SyncAction::Deleted } else { SyncAction::Absent });
    }
    let hash = spec_hash(definition, task_queue);
    // Temporal cannot update a schedule's own memo, so it only records the owner; the spec
    // hash travels in the action's workflow memo, which updates with the schedule.
    let memo = Memo { fields: HashMap::from([(MEMO_TASK_QUEUE.to_owned(), json_payload(&json!(task_queue)))]) };
    let mut service = client.connection().workflow_service();
    let Some(current) = describe_raw(client, &id).await? else {
        let (paused, note) = if definition.enabled { (false, "") } else { (true, DISABLED_NOTE) };
        let request = CreateScheduleRequest {
            namespace: client.namespace(),
            schedule_id: id.clone(),
            schedule: Some(schedule_for(definition, task_queue, paused, note)),
            identity: client.identity().to_owned(),
            request_id: uuid::Uuid::new_v4().to_string(),
            memo: Some(memo),
            ..Default::default()
        };
        return match service.create_schedule(Request::new(request)).await {
            Ok(_) => Ok(SyncAction::Created),
            // Created concurrently by another sync: the next reconcile checks its spec.
            Err(status) if status.code() == Code::AlreadyExists => Ok(SyncAction::Unchanged),
            Err(status) => Err(sync_error(&id)(status)),
        };
    };
    let state = current.schedule.as_ref().and_then(|s| s.state.clone()).unwrap_or_default();
    let (paused, note) = if !definition.enabled {
        (true, DISABLED_NOTE.to_owned())
    } else if state.paused && state.notes == DISABLED_NOTE {
        (false, String::new())
    } else {
        (state.paused, state.notes.clone())
    };
    let action_memo = current.schedule.as_ref().and_then(|s| s.action.as_ref()).and_then(|a| match &a.action {
        Some(schedule_action::Action::StartWorkflow(start)) => start.memo.clone(),
        _ => None,
    });
    let stale = memo_string(action_memo.as_ref(), MEMO_SPEC_HASH).as_deref() != Some(hash.as_str());
    if !stale && paused == state.paused {
        return Ok(SyncAction::Unchanged);
    }
    let request = UpdateScheduleRequest {
        namespace: client.namespace(),
        schedule_id: id.clone(),
        schedule: Some(schedule_for(definition, task_queue, paused, &note)),
        conflict_token: current.conflict_token,
        identity: client.identity().to_owned(),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    service.update_schedule(Request::new(request)).await.map_err(sync_error(&id))?;
    Ok(SyncAction::Updated)
}

/// Deletes a definition's schedule; `false` when there was none.
pub async fn delete(client: &Client, definition_id: &DefinitionId) -> Result<bool, ScheduleSyncError> {
    delete_by_schedule_id(client, &schedule_id(definition_id)).await
}

async fn delete_by_schedule_id(client: &Client, id: &str) -> Result<bool, ScheduleSyncError> {
    let request = DeleteScheduleRequest {
        namespace: client.namespace(),
        schedule_id: id.to_owned(),
        identity: client.identity().to_owned(),
    };
    match client.connection().workflow_service().delete_schedule(Request::new(request)).await {
        Ok(_) => Ok(true),
        Err(status) if status.code() == Code::NotFound => Ok(false),
        Err(status) => Err(sync_error(id)(status)),
    }
}

/// One repair the reconciler made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Repair {
    /// The schedule.
    pub schedule_id: String,
    /// `created` (missing), `updated` (stale), `deleted` (orphaned).
    pub action: SyncAction,
}

/// Compares every definition with the schedules in Temporal and repairs drift: missing
/// schedules are created, stale ones updated, orphaned `tf:` schedules of this deployment
/// (same task queue) deleted.
pub async fn reconcile(client: &Client, store: &Store, task_queue: &str) -> anyhow::Result<Vec<Repair>> {
    let mut repairs = Vec::new();
    let mut wanted = BTreeSet::new();
    for definition in store.current_definitions().await? {
        let id = schedule_id(&definition.id);
        if definition.trigger.kind == TriggerKind::Cron {
            wanted.insert(id.clone());
        }
        let action = sync_definition(client, task_queue, &definition).await?;
        if !matches!(action, SyncAction::Unchanged | SyncAction::Absent) {
            repairs.push(Repair { schedule_id: id, action });
        }
    }
    let mut existing = client.list_schedules(ListSchedulesOptions::default());
    let mut orphans = Vec::new();
    while let Some(entry) = existing.next().await {
        let entry = entry?;
        let id = entry.schedule_id().to_owned();
        let owner = entry.raw().memo.as_ref().and_then(|m| memo_string(Some(m), MEMO_TASK_QUEUE));
        if id.starts_with("tf:") && owner.as_deref() == Some(task_queue) && !wanted.contains(&id) {
            orphans.push(id);
        }
    }
    for id in orphans {
        if delete_by_schedule_id(client, &id).await? {
            repairs.push(Repair { schedule_id: id, action: SyncAction::Deleted });
        }
    }
    for repair in &repairs {
        tracing::info!(schedule = %repair.schedule_id, action = ?repair.action, "schedule reconciled");
        metrics().schedule_reconcile_actions.with_label_values(&[repair.action.as_str()]).inc();
    }
    Ok(repairs)
}

/// A `SystemTime` as RFC 3339 in UTC (`2027-03-28T07:00:00Z`), the format of every time in
/// the API.
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}
