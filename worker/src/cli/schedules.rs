//! Client commands about triggers: `schedules` (describe, pause, unpause, trigger, backfill,
//! reconcile), `fleet` (the same by selector) and `decisions` (the trigger decision log).

use std::collections::BTreeMap;

use anyhow::bail;
use serde_json::{Value, json};
use taskfactory_api::answers::{DecisionLog, FleetAnswer, ReconcileAnswer};

use super::args::{FleetCommand, SchedulesCommand};
use super::{print_json, wire};
use crate::client::ApiClient;

/// `taskfactory schedules ...`: the reconciler's repairs one per line, the rest as JSON.
pub async fn schedules(client: &ApiClient, command: SchedulesCommand) -> anyhow::Result<()> {
    let schedule = |id: &str, rest: &str| format!("/api/v1/definitions/{id}/schedule{rest}");
    let answer: Value = match &command {
        SchedulesCommand::Reconcile => {
            let answer: ReconcileAnswer = client.post("/api/v1/schedules/reconcile", &json!({})).await?;
            if answer.repairs.is_empty() {
                println!("schedules in sync: nothing to repair");
            }
            for r in &answer.repairs {
                println!("{}: {}", r.schedule_id, wire(&r.action));
            }
            return Ok(());
        }
        SchedulesCommand::Describe { id } => client.get(&schedule(id, "")).await?,
        SchedulesCommand::Pause { id, note } => client.post(&schedule(id, "/pause"), &json!({"note": note})).await?,
        SchedulesCommand::Unpause { id, note } => {
            client.post(&schedule(id, "/unpause"), &json!({"note": note})).await?
        }
        SchedulesCommand::Trigger { id } => client.post(&schedule(id, "/trigger"), &json!({})).await?,
        SchedulesCommand::Backfill { id, from, to } => {
            client.post(&schedule(id, "/backfill"), &json!({"start": from, "end": to})).await?
        }
    };
    print_json(&answer)
}

/// `taskfactory fleet ...`: one line per definition and a summary; fails when any failed.
pub async fn fleet(client: &ApiClient, command: &FleetCommand) -> anyhow::Result<()> {
    let (action, body) = command.request()?;
    let answer: FleetAnswer = client.post(&format!("/api/v1/fleet/{action}"), &body).await?;
    let width = answer.results.iter().map(|r| r.definition_id.len()).max().unwrap_or(0);
    let mut counts = BTreeMap::<String, usize>::new();
    for r in &answer.results {
        let outcome = wire(&r.outcome);
        *counts.entry(outcome.clone()).or_default() += 1;
        let mut detail = r.detail.clone().unwrap_or_default();
        if let Some(workflow_id) = &r.workflow_id {
            detail = format!("{detail} {workflow_id}");
        }
        println!("{:<width$}  {:<10}  {}", r.definition_id, outcome, detail.trim());
    }
    // In a dry run, `matched` means "would be acted on".
    let counted: Vec<String> = counts
        .iter()
        .map(|(outcome, n)| if outcome == "matched" { format!("{n} would {action}") } else { format!("{n} {outcome}") })
        .collect();
    let dry = if answer.dry_run { " (dry run, nothing changed)" } else { "" };
    let tally = if counted.is_empty() { String::new() } else { format!(": {}", counted.join(", ")) };
    println!("fleet {action}{dry}: {} definition(s) matched{tally}", answer.matched);
    match counts.get("error") {
        Some(errors) => bail!("fleet {action}: {errors} definition(s) failed"),
        None => Ok(()),
    }
}

/// `taskfactory decisions ID`: why a definition did (or didn't) start runs, newest first.
pub async fn decisions(
    client: &ApiClient,
    id: &str,
    outcome: Option<&str>,
    limit: u32,
    as_json: bool,
) -> anyhow::Result<()> {
    let query = outcome.map(|o| format!("&outcome={o}")).unwrap_or_default();
    let path = format!("/api/v1/definitions/{id}/decisions?limit={limit}{query}");
    if as_json {
        return print_json(&client.get::<Value>(&path).await?);
    }
    let answer: DecisionLog = client.get(&path).await?;
    if let Some(error) = &answer.observer_error {
        eprintln!("warning: the schedule could not be observed: {error}");
    }
    for d in &answer.decisions {
        let when = wire(&d.entry.slot.unwrap_or(d.recorded_at));
        println!("{:<26} {:<8} {:<16} {}", when, wire(&d.entry.source), wire(&d.entry.outcome), d.entry.message);
    }
    let counts: Vec<String> = answer.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("totals: {}", if counts.is_empty() { "no decisions yet".to_owned() } else { counts.join(", ") });
    Ok(())
}
