//! The schedule observer: turns what Temporal knows about a schedule into one decision per
//! cron slot.
//!
//! Runs record their own `fired` decisions (`start_run`), and event ingress records every
//! event's outcome. A slot that started no run leaves no trace in Postgres, so the observer
//! walks the slots the cron expressions called for since its last look and, for each one
//! without a run, asks Temporal why: its schedule info counts slots skipped by the overlap
//! policy (`overlap_skipped`) and missed beyond the catch-up window (`missed_catchup_window`),
//! and says whether the schedule is paused. New counts are attributed to unexplained slots in
//! order; counts left over (a skipped "trigger now") become decisions without a slot. A slot is
//! settled [`SETTLE_AFTER`] (plus the jitter) after its time, so a run still starting is not
//! mistaken for a skip. An advisory lock per definition serialises observers of several API
//! processes, and every slot is counted once in `taskfactory_schedule_slots_{expected,fired}_total`.
//! A slot settled without a run starts the definition's `schedule_silent` notifications
//! ([`crate::notify`]) unless the definition is disabled.

use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use taskfactory_activities::Store;
use taskfactory_activities::metrics::metrics;
use taskfactory_activities::store::{NewDecision, ScheduleObservation};
use taskfactory_schemas::ActivityDefinition;
use taskfactory_schemas::decisions::{DecisionOutcome, SkipReason};
use taskfactory_schemas::definition::TriggerKind;
use taskfactory_schemas::duration::parse_duration;
use taskfactory_schemas::ids::schedule_id;
use taskfactory_schemas::preview::preview;
use taskfactory_schemas::run::{RunTrigger, TriggerInfo};
use temporalio_client::Client;
use tokio_util::sync::CancellationToken;

use crate::ApiState;
use crate::notify::{SilentSlot, notify_silent};
use crate::schedules::{DISABLED_NOTE, describe_raw};

/// How long after its time (plus jitter) a slot without a run counts as skipped.
pub const SETTLE_AFTER: Duration = Duration::from_secs(15);
/// How often API processes observe every schedule (reading a decision log also observes).
pub const OBSERVE_EVERY: Duration = Duration::from_secs(30);
/// How long decisions are kept by default (`--decision-retention`).
pub const DEFAULT_RETENTION: &str = "30d";
/// Most slots one observation settles (a schedule unobserved for long catches up in steps).
const MAX_SLOTS: usize = 1000;

/// What Temporal said about a schedule at the last observation.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScheduleCounters {
    /// Whether the schedule is paused.
    pub paused: bool,
    /// Slots missed beyond the catch-up window, since the schedule was created.
    pub missed_catchup_window: i64,
    /// Slots skipped by the overlap policy, since the schedule was created.
    pub overlap_skipped: i64,
}

/// The result of one observation.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Decisions recorded now.
    pub recorded: usize,
    /// Temporal's view; `None` when the definition has no schedule.
    pub counters: Option<ScheduleCounters>,
}

fn to_utc(t: &prost_wkt_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
}

fn skip(
    definition: &ActivityDefinition,
    reason: SkipReason,
    slot: Option<DateTime<Utc>>,
    key: String,
    message: String,
    counters: &ScheduleCounters,
) -> NewDecision {
    let mut skipped =
        NewDecision::unkeyed(definition.id.as_str(), RunTrigger::Schedule, DecisionOutcome::Skipped, message);
    skipped.entry.reason = Some(reason.as_str().to_owned());
    skipped.entry.slot = slot;
    skipped.entry.detail = json!({"temporal": counters});
    skipped.key = Some(key);
    skipped
}

/// Observes one definition's schedule (see the module docs); idempotent. Slots settled
/// without a run start the definition's `schedule_silent` notifications (on `task_queue`)
/// before the observation commits, so a failed start leaves them to the next observation.
pub async fn observe_schedule(
    client: &Client,
    store: &Store,
    task_queue: &str,
    definition: &ActivityDefinition,
    now: DateTime<Utc>,
) -> anyhow::Result<Observed> {
    if definition.trigger.kind != TriggerKind::Cron {
        return Ok(Observed::default());
    }
    let id = definition.id.as_str();
    let (tx, seen) = store.begin_observation(id).await?;
    let Some(described) = describe_raw(client, &schedule_id(&definition.id)).await? else {
        return Ok(Observed::default());
    };
    let info = described.info.unwrap_or_default();
    let disabled = described
        .schedule
        .as_ref()
        .and_then(|s| s.state.as_ref())
        .is_some_and(|s| s.paused && s.notes == DISABLED_NOTE);
    let counters = ScheduleCounters {
        paused: described.schedule.as_ref().and_then(|s| s.state.as_ref()).is_some_and(|s| s.paused),
        missed_catchup_window: info.missed_catchup_window,
        overlap_skipped: info.overlap_skipped,
    };
    // First look: the schedule's counters start at zero when it is created.
    let seen = seen.unwrap_or_else(|| ScheduleObservation {
        slots_through: info.create_time.as_ref().and_then(to_utc).unwrap_or(now),
        missed_catchup: 0,
        overlap_skipped: 0,
        paused: counters.paused,
    });
    let jitter = definition.trigger.jitter.as_deref().and_then(|j| parse_duration(j).ok()).unwrap_or_default();
    let window = chrono::Duration::from_std(jitter).unwrap_or_default();
    let settle = chrono::Duration::from_std(SETTLE_AFTER + jitter).unwrap_or_default();
    let started: HashMap<DateTime<Utc>, String> = info
        .recent_actions
        .iter()
        .filter_map(|a| {
            Some((to_utc(a.schedule_time.as_ref()?)?, a.start_workflow_result.as_ref()?.workflow_id.clone()))
        })
        .collect();
    let slots = preview(&definition.trigger, seen.slots_through, MAX_SLOTS).map_err(anyhow::Error::msg)?.fires;
    let mut overlap_left = (counters.overlap_skipped - seen.overlap_skipped).max(0);
    let mut catchup_left = (counters.missed_catchup_window - seen.missed_catchup).max(0);
    let (mut decisions, mut through, mut pending) = (Vec::new(), seen.slots_through, false);
    let (mut expected, mut fired) = (0u64, 0u64);
    let mut silent = Vec::new();
    for slot in slots.iter().map(|f| f.utc).take_while(|t| *t <= now) {
        if store.slot_fired(id, slot, window).await? {
            (expected, fired, through) = (expected + 1, fired + 1, slot);
            continue;
        }
        if let Some((_, workflow_id)) = started.iter().find(|(t, _)| **t >= slot && **t <= slot + window) {
            // Started, but the run has not recorded itself yet: record it for the run.
            let trigger = TriggerInfo {
                kind: RunTrigger::Schedule,
                key: None,
                event: None,
                events: Vec::new(),
                payload: serde_json::Value::Null,
                scheduled_for: Some(slot),
            };
            decisions.push(NewDecision::fired(id, &trigger, workflow_id));
            (expected, fired, through) = (expected + 1, fired + 1, slot);
            continue;
        }
        if slot + settle > now {
            pending = true;
            break;
        }
        let at = slot.to_rfc3339();
        let (reason, message) = if counters.paused || seen.paused {
            let why = if disabled {
                "the definition is disabled (its schedule is paused)"
            } else {
                "the schedule was paused"
            };
            (SkipReason::Paused, format!("slot {at}: {why}"))
        } else if overlap_left > 0 {
            overlap_left -= 1;
            (SkipReason::Overlap, format!("slot {at}: the previous run was still running and the overlap policy skips"))
        } else if catchup_left > 0 {
            catchup_left -= 1;
            (
                SkipReason::CatchupWindow,
                format!("slot {at}: missed by more than the catch-up window (was the server down?)"),
            )
        } else {
            (
                SkipReason::Unexplained,
                format!(
                    "slot {at}: no run {} s after the slot, and Temporal reports no skip and no pause",
                    settle.num_seconds()
                ),
            )
        };
        if !disabled {
            // A disabled definition's slots are silent by design.
            silent.push(SilentSlot { slot, message: message.clone() });
        }
        decisions.push(skip(definition, reason, Some(slot), format!("slot:{at}"), message, &counters));
        (expected, through) = (expected + 1, slot);
    }
    let next = if pending {
        // Keep the counts not yet attributed for the slots still settling.
        ScheduleObservation {
            slots_through: through,
            missed_catchup: counters.missed_catchup_window - catchup_left,
            overlap_skipped: counters.overlap_skipped - overlap_left,
            paused: counters.paused,
        }
    } else {
        // Skips Temporal counted outside any cron slot ("trigger now" while a run runs).
        for n in 0..overlap_left {
            let message =
                "a trigger outside the cron slots (trigger now) was skipped: the previous run was still running"
                    .to_owned();
            decisions.push(skip(
                definition,
                SkipReason::Overlap,
                None,
                format!("skip:overlap:{}", counters.overlap_skipped - n),
                message,
                &counters,
            ));
        }
        for n in 0..catchup_left {
            let message = "an action was missed by more than the catch-up window".to_owned();
            decisions.push(skip(
                definition,
                SkipReason::CatchupWindow,
                None,
                format!("skip:catchup:{}", counters.missed_catchup_window - n),
                message,
                &counters,
            ));
        }
        ScheduleObservation {
            slots_through: now.max(through),
            missed_catchup: counters.missed_catchup_window,
            overlap_skipped: counters.overlap_skipped,
            paused: counters.paused,
        }
    };
    notify_silent(client, task_queue, definition, &silent, now).await?;
    let recorded = Store::finish_observation(tx, id, &decisions, &next).await?;
    if expected > 0 {
        metrics().schedule_slots_expected.with_label_values(&[id]).inc_by(expected);
    }
    if fired > 0 {
        metrics().schedule_slots_fired.with_label_values(&[id]).inc_by(fired);
    }
    Ok(Observed { recorded, counters: Some(counters) })
}

/// Observes every cron definition's schedule every `every`, and deletes decisions older than
/// `retention` (if set), until `shutdown` is cancelled.
pub async fn run(state: ApiState, every: Duration, retention: Option<Duration>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        // One pass is not interrupted halfway: it is short, and each slot is settled once.
        observe_all(&state, retention).await;
    }
}

/// One pass of the observer: prune, then observe every cron definition's schedule.
async fn observe_all(state: &ApiState, retention: Option<Duration>) {
    if let Some(keep) = retention.and_then(|r| chrono::Duration::from_std(r).ok()) {
        match state.store.prune_decisions(Utc::now() - keep, 10_000).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "old trigger decisions deleted"),
            Err(e) => tracing::warn!(error = %e, "deleting old trigger decisions failed"),
        }
    }
    let definitions = match state.store.current_definitions().await {
        Ok(definitions) => definitions,
        Err(e) => {
            tracing::warn!(error = %e, "schedule observer: cannot list definitions");
            return;
        }
    };
    for definition in definitions.iter().filter(|d| d.trigger.kind == TriggerKind::Cron) {
        if let Err(e) = observe_schedule(&state.temporal, &state.store, &state.task_queue, definition, Utc::now()).await
        {
            tracing::warn!(definition = %definition.id, error = %format!("{e:#}"), "schedule observer failed");
        }
    }
}
