//! Notifications with no run workflow to send them, delivered by a `NotifyWorkflow` the API
//! starts (the API runs no activities itself):
//! - `schedule_silent`: the schedule observer settles a cron slot that started no run;
//! - `run_failed` of a run Temporal ended without its workflow code recording the end (its
//!   execution timed out, or it failed without recording it): the run reconciler records it.
//!
//! The workflow's id is one per (definition and slot, or run; kind), rejected when it exists
//! already, so a second API process or a restart starts nothing twice; each delivery's dedupe
//! key (the one the run workflow itself would use) then makes posting happen once.

use chrono::{DateTime, Utc};
use taskfactory_orchestrator::{NotifyWorkflow, search};
use taskfactory_schemas::ActivityDefinition;
use taskfactory_schemas::notify::{Notification, NotificationEvent, NotifyKind};
use temporalio_client::errors::WorkflowStartError;
use temporalio_client::{Client, WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowStartOptions};

/// Most silent slots one observation notifies about (the newest): a schedule unobserved for
/// days must not page once per missed minute.
pub const MAX_SILENT_SLOTS: usize = 10;

/// A slot that passed without a run, and why.
#[derive(Clone, Debug)]
pub struct SilentSlot {
    /// The slot.
    pub slot: DateTime<Utc>,
    /// Why it had no run (the decision's message).
    pub message: String,
}

/// The workflow id of a slot's `schedule_silent` notifications.
pub fn workflow_id(definition_id: &str, slot: DateTime<Utc>) -> String {
    format!("tf:{definition_id}:notify:{}:{}", NotifyKind::ScheduleSilent.as_str(), slot.to_rfc3339())
}

/// The notifications of one silent slot: one per entry subscribed to `schedule_silent`.
pub fn silent_notifications(
    definition: &ActivityDefinition,
    slot: &SilentSlot,
    now: DateTime<Utc>,
) -> Vec<Notification> {
    let event = NotificationEvent {
        kind: NotifyKind::ScheduleSilent,
        definition_id: definition.id.as_str().to_owned(),
        definition_name: definition.name.clone(),
        run_workflow_id: None,
        status: None,
        error: Some(slot.message.clone()),
        failed_tasks: Vec::new(),
        failed_task_count: 0,
        slot: Some(slot.slot),
        occurred_at: now,
    };
    definition
        .notify
        .iter()
        .enumerate()
        .filter(|(_, entry)| entry.wants(NotifyKind::ScheduleSilent))
        .map(|(index, entry)| {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            Notification {
                dedupe_key: Notification::slot_key(definition.id.as_str(), slot.slot, index),
                entry: index,
                webhook: entry.webhook.clone(),
                event: event.clone(),
            }
        })
        .collect()
}

/// Starts the `NotifyWorkflow` of each silent slot (the newest [`MAX_SILENT_SLOTS`]); one that
/// exists already is left alone. An error means nothing may be taken as notified.
pub async fn notify_silent(
    client: &Client,
    task_queue: &str,
    definition: &ActivityDefinition,
    slots: &[SilentSlot],
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    if !definition.notify.iter().any(|e| e.wants(NotifyKind::ScheduleSilent)) {
        return Ok(());
    }
    let newest = &slots[slots.len().saturating_sub(MAX_SILENT_SLOTS)..];
    for slot in newest {
        let id = workflow_id(definition.id.as_str(), slot.slot);
        let summary = format!("{}: no run at {}", definition.name, slot.slot.to_rfc3339());
        start(client, task_queue, definition, &id, summary, silent_notifications(definition, slot, now)).await?;
    }
    Ok(())
}

/// Sends `run_failed` for run `run_workflow_id`, which Temporal ended with `status`
/// (`timed_out`, or `failed` without its workflow recording it) and `error`, to the
/// definition's entries that want it. Nothing when none does.
pub async fn notify_closed_run(
    client: &Client,
    task_queue: &str,
    definition: &ActivityDefinition,
    run_workflow_id: &str,
    status: &str,
    error: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let kind = NotifyKind::RunFailed;
    let event = NotificationEvent {
        kind,
        definition_id: definition.id.as_str().to_owned(),
        definition_name: definition.name.clone(),
        run_workflow_id: Some(run_workflow_id.to_owned()),
        status: Some(status.to_owned()),
        error: Some(error.to_owned()),
        failed_tasks: Vec::new(),
        failed_task_count: 0,
        slot: None,
        occurred_at: now,
    };
    let notifications: Vec<Notification> = definition
        .notify
        .iter()
        .enumerate()
        .filter(|(_, entry)| entry.wants(kind))
        .map(|(index, entry)| {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            Notification {
                dedupe_key: Notification::run_key(run_workflow_id, kind, index),
                entry: index,
                webhook: entry.webhook.clone(),
                event: event.clone(),
            }
        })
        .collect();
    if notifications.is_empty() {
        return Ok(());
    }
    let id = format!("{run_workflow_id}:notify:{}", kind.as_str());
    start(client, task_queue, definition, &id, format!("{}: run {status}", definition.name), notifications).await
}

/// Starts the `NotifyWorkflow` `id` delivering `notifications` of `definition` (searchable in
/// Temporal by `TfDefinitionId` and `TfKind = 'notify'`); one that exists already is left alone.
async fn start(
    client: &Client,
    task_queue: &str,
    definition: &ActivityDefinition,
    id: &str,
    summary: String,
    notifications: Vec<Notification>,
) -> anyhow::Result<()> {
    let options = WorkflowStartOptions::new(task_queue.to_owned(), id.to_owned())
        .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
        .id_conflict_policy(WorkflowIdConflictPolicy::Fail)
        .search_attributes(search::notify_attributes(&definition.id))
        .static_summary(summary)
        .build();
    match client.start_workflow(NotifyWorkflow::run, notifications, options).await {
        Ok(_) => tracing::info!(workflow_id = %id, "notification workflow started"),
        Err(WorkflowStartError::AlreadyStarted { .. }) => {}
        Err(e) => anyhow::bail!("starting {id}: {e}"),
    }
    Ok(())
}
