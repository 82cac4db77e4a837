//! Commands about runs: the client commands `trigger`, `runs` (list, one run, its events,
//! cancel, retry) and `events send`, and `runs export` / `runs import`, which archive finished
//! runs straight from and into the database (the format is the store's `archive` module's).

use std::io::{BufRead, BufReader, BufWriter};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use taskfactory_activities::Store;
use taskfactory_activities::store::{ExportFilter, ExportProgress, ImportProgress};
use taskfactory_api::answers::{
    CancelAnswer, EventPage, EventResult, IngestAnswer, RetryAnswer, RunList, TriggerAnswer,
};

use super::args::RunsCommand;
use super::{print_json, wire};
use crate::client::{ApiClient, json_arg};
use crate::config::DatabaseArgs;

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

/// `taskfactory runs cancel WF`, `runs retry WF`, and `runs export` / `runs import` (which
/// talk to the database, not to `client`).
pub async fn control(client: &ApiClient, action: RunsCommand) -> anyhow::Result<()> {
    match action {
        RunsCommand::Export { definition, before, out, database } => {
            return export(&database, definition, before.as_deref(), &out).await;
        }
        RunsCommand::Import { input, database } => return import(&database, &input).await,
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

/// `taskfactory runs export [--definition X] [--before T] -o FILE`: progress on stderr. A
/// file is written under a temporary name and renamed once complete.
pub async fn export(
    database: &DatabaseArgs,
    definition: Option<String>,
    before: Option<&str>,
    out: &Path,
) -> anyhow::Result<()> {
    let finished_before = before.map(|raw| parse_before(raw, Utc::now())).transpose()?;
    let store = Store::connect(&database.database_url, 2).await.context("connecting to DATABASE_URL")?;
    let filter = ExportFilter { definition_id: definition, finished_before };
    let mut ticker = Ticker::new();
    let mut progress = |p: &ExportProgress| ticker.tick(|| exported(p));
    let done = if out == Path::new("-") {
        let mut writer = BufWriter::with_capacity(1 << 20, std::io::stdout());
        store.export_runs(&filter, &mut writer, &mut progress).await?
    } else {
        let partial = out.with_file_name(format!(
            ".{}.partial",
            out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        ));
        let file = std::fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        let done = match store.export_runs(&filter, &mut writer, &mut progress).await {
            Ok(done) => done,
            Err(e) => {
                drop(writer);
                let _ = std::fs::remove_file(&partial);
                return Err(e.into());
            }
        };
        writer.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&partial, out)
            .with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
        done
    };
    eprintln!("{}", exported(&done));
    Ok(())
}

/// `taskfactory runs import -i FILE`: migrates the database, then imports; progress on stderr.
pub async fn import(database: &DatabaseArgs, input: &Path) -> anyhow::Result<()> {
    let store = Store::connect(&database.database_url, 2).await.context("connecting to DATABASE_URL")?;
    store.migrate().await.context("migrating the database")?;
    let mut reader: Box<dyn BufRead + Send> = if input == Path::new("-") {
        Box::new(BufReader::with_capacity(1 << 20, std::io::stdin()))
    } else {
        let file = std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    let mut ticker = Ticker::new();
    let mut progress = |p: &ImportProgress| ticker.tick(|| imported(p));
    let done = store.import_runs(&mut reader, &mut progress).await?;
    eprintln!("{}", imported(&done));
    Ok(())
}

fn exported(p: &ExportProgress) -> String {
    format!("exported {}/{} runs, {} events", thousands(p.runs), thousands(p.total), thousands(p.events))
}

fn imported(p: &ImportProgress) -> String {
    format!(
        "imported {} runs ({} already present, skipped), {} events",
        thousands(p.imported),
        thousands(p.skipped),
        thousands(p.events)
    )
}

/// Prints a progress line on stderr at most once a second.
struct Ticker {
    last: Instant,
}

impl Ticker {
    fn new() -> Self {
        Self { last: Instant::now() }
    }

    fn tick(&mut self, line: impl FnOnce() -> String) {
        if self.last.elapsed() >= Duration::from_secs(1) {
            eprintln!("{}", line());
            self.last = Instant::now();
        }
    }
}

/// `--before`: an RFC 3339 timestamp, or an age (`30d`, `12h`, `1h30m`) before `now`.
fn parse_before(raw: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(raw.trim()) {
        return Ok(at.with_timezone(&Utc));
    }
    taskfactory_schemas::duration::parse_duration(raw)
        .ok()
        .and_then(|age| chrono::Duration::from_std(age).ok())
        .and_then(|age| now.checked_sub_signed(age))
        .with_context(|| {
            format!(
                "--before {raw:?}: neither an RFC 3339 timestamp (2026-12-01T00:00:00Z) nor an age such as 30d or 12h"
            )
        })
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_is_a_timestamp_or_an_age() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z").unwrap().with_timezone(&Utc);
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(parse_before("2026-11-01T08:30:00+01:00", now).unwrap(), at("2026-11-01T07:30:00Z"));
        assert_eq!(parse_before("30d", now).unwrap(), at("2026-11-03T12:00:00Z"));
        assert_eq!(parse_before("12h", now).unwrap(), at("2026-12-03T00:00:00Z"));
        let error = parse_before("yesterday", now).unwrap_err().to_string();
        assert!(error.starts_with("--before \"yesterday\": neither"), "{error}");
        assert!(!error.contains('\n'), "one line: {error}");
    }

    #[test]
    fn counts_have_thousands_separators() {
        let p = ExportProgress { runs: 12, total: 100, events: 340_000 };
        assert_eq!(exported(&p), "exported 12/100 runs, 340,000 events");
        let p = ImportProgress { imported: 1_234_567, skipped: 3, events: 0 };
        assert_eq!(imported(&p), "imported 1,234,567 runs (3 already present, skipped), 0 events");
    }
}
