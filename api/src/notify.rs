//! `schedule_silent` notifications: the schedule observer settles a cron slot that started no
//! run, and when the definition subscribes to `schedule_silent` it starts a `NotifyWorkflow`
//! that delivers them (the API runs no activities itself). Its id is one per (definition,
//! slot, kind), rejected when it exists already, so a second observer or a restart starts
//! nothing twice; each delivery's dedupe key then makes posting happen once.

use chrono::{DateTime, Utc};
use taskfactory_orchestrator::NotifyWorkflow;
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
        let notifications = silent_notifications(definition, slot, now);
        let options = WorkflowStartOptions::new(task_queue.to_owned(), id.clone())
            .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
            .id_conflict_policy(WorkflowIdConflictPolicy::Fail)
            .static_summary(format!("{}: no run at {}", definition.name, slot.slot.to_rfc3339()))
            .build();
        match client.start_workflow(NotifyWorkflow::run, notifications, options).await {
            Ok(_) => {
                tracing::info!(definition = %definition.id, workflow_id = %id, "schedule_silent notification started")
            }
            Err(WorkflowStartError::AlreadyStarted { .. }) => {}
            Err(e) => anyhow::bail!("starting {id}: {e}"),
        }
    }
    Ok(())
}
