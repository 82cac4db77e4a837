//! Client commands about runs: `trigger`, `runs` (list, one run, its events) and `events send`.

use serde_json::{Value, json};
use taskfactory_api::answers::{
    CancelAnswer, EventPage, EventResult, IngestAnswer, RetryAnswer, RunList, TriggerAnswer,
};

use super::args::RunsCommand;
use super::{print_json, wire};
use crate::client::{ApiClient, json_arg};

/// `taskfactory trigger ID [--key K] [--payload JSON]`.
pub async fn trigger(client: &ApiClient, id: &str, key: Option<String>, payload: Option<&str>) -> anyhow::Result<()> {
    let payload = payload.map(json_arg).transpose()?.unwrap_or(Value::Null);
    let answer: TriggerAnswer =
        client.post(&format!("/api/v1/definitions/{id}/runs"), &json!({"key": key, "payload": payload})).await?;
    let verb = if answer.started { "started" } else { "already started" };
    println!("{verb}: {}", answer.workflow_id);
    Ok(())
}

/// An event to send.
#[derive(Debug)]
pub struct NewEvent {
    /// Its type, e.g. `repo.pushed`.
    pub event_type: String,
    /// Idempotency key (default dedupe key).
    pub key: Option<String>,
    /// Sender, for the run log.
    pub source: Option<String>,
    /// Payload, JSON or `@file`.
    pub payload: Option<String>,
}

/// `taskfactory events send`: one line per matching definition.
pub async fn send_event(client: &ApiClient, event: &NewEvent) -> anyhow::Result<()> {
    let payload = event.payload.as_deref().map(json_arg).transpose()?.unwrap_or(Value::Null);
    let body = json!({"type": event.event_type, "key": event.key, "source": event.source, "payload": payload});
    let answer: IngestAnswer = client.post("/api/v1/events", &body).await?;
    for result in answer.results {
        match result {
            EventResult::Invalid { error, .. } => anyhow::bail!("the event was refused: {error}"),
            EventResult::Accepted { outcomes, .. } => {
                if outcomes.is_empty() {
                    println!("no enabled event definition matches type {:?}", event.event_type);
                }
                for o in outcomes {
                    let what = o.workflow_id.or(o.reason).unwrap_or_default();
                    println!("{}: {} {what}", o.definition_id, o.outcome);
                }
            }
        }
    }
    Ok(())
}

/// `taskfactory runs [--definition ID]`: the newest runs, one line each.
pub async fn list(client: &ApiClient, definition: Option<&str>) -> anyhow::Result<()> {
    let query = definition.map(|d| format!("?definition_id={d}")).unwrap_or_default();
    let list: RunList = client.get(&format!("/api/v1/runs{query}")).await?;
    println!("{:<60} {:<10} {:>6} {:>6} {:>6}", "WORKFLOW ID", "STATUS", "TASKS", "DONE", "FAILED");
    for r in &list.runs {
        println!(
            "{:<60} {:<10} {:>6} {:>6} {:>6}",
            r.workflow_id, r.status, r.tasks_planned, r.tasks_completed, r.tasks_failed
        );
    }
    Ok(())
}

/// `taskfactory runs WF`: the run as the API answers it.
pub async fn show(client: &ApiClient, workflow_id: &str) -> anyhow::Result<()> {
    print_json(&client.get::<Value>(&format!("/api/v1/runs/{workflow_id}")).await?)
}

/// `taskfactory runs WF --events`: every trace event, in seq order.
pub async fn events(client: &ApiClient, workflow_id: &str) -> anyhow::Result<()> {
    let mut after = 0;
    loop {
        let page: EventPage =
            client.get(&format!("/api/v1/runs/{workflow_id}/events?after={after}&limit=1000")).await?;
        for e in &page.events {
            println!(
                "{:>5} {} {:<18} {:<5} {} {}",
                e.seq,
                wire(&e.ts),
                e.event_type.as_str(),
                wire(&e.level),
                e.node_id.as_deref().unwrap_or("-"),
                e.message.as_deref().unwrap_or_default()
            );
        }
        match page.next {
            Some(next) => after = next,
            None => return Ok(()),
        }
    }
}

/// `taskfactory runs cancel WF` and `taskfactory runs retry WF`.
pub async fn control(client: &ApiClient, action: RunsCommand) -> anyhow::Result<()> {
    match action {
        RunsCommand::Cancel { workflow_id, reason } => {
            let answer: CancelAnswer =
                client.post(&format!("/api/v1/runs/{workflow_id}/cancel"), &json!({"reason": reason})).await?;
            println!("cancelling: {} (asked by {})", answer.workflow_id, answer.by);
        }
        RunsCommand::Retry { workflow_id, tasks, version, refresh_context, key } => {
            let tasks = match tasks.as_str() {
                "failed" | "all" => json!(tasks),
                ids => json!(ids.split(',').map(str::trim).filter(|id| !id.is_empty()).collect::<Vec<_>>()),
            };
            let body = json!({"tasks": tasks, "version": version, "refresh_context": refresh_context, "key": key});
            let answer: RetryAnswer = client.post(&format!("/api/v1/runs/{workflow_id}/retry"), &body).await?;
            let verb = if answer.started { "started" } else { "already started" };
            println!("{verb}: {} (retry of {}, version {})", answer.workflow_id, answer.retry_of, answer.version);
            let t = &answer.tasks;
            println!("  reused {} task(s), running {} again", t.reused, t.rerun.len());
            for (what, list) in
                [("changed", &t.changed), ("added", &t.added), ("removed", &t.removed), ("deferred", &t.deferred)]
            {
                if !list.is_empty() {
                    println!("  {what}: {}", list.join(", "));
                }
            }
        }
    }
    Ok(())
}
