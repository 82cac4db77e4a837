//! Client commands about definitions: `apply`, `dry-run`, `diff` (document and behaviour),
//! `preview`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use taskfactory_api::answers::{BehaviourDiffAnswer, DiffAnswer, DryRunAnswer, PreviewAnswer};
use taskfactory_schemas::behaviour::VersionReplay;
use taskfactory_schemas::validate::{Format, parse_text};

use super::{print_json, wire};
use crate::client::{ApiClient, definition_files, is_yaml, json_arg};

/// `taskfactory apply -f PATH...`: saves every definition file; a bad file is reported and
/// the others are still applied.
pub async fn apply(client: &ApiClient, paths: &[PathBuf]) -> anyhow::Result<()> {
    let mut failures = 0;
    for path in paths {
        for file in definition_files(path)? {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let yaml = is_yaml(&file);
            let id = match parse_text(&text, if yaml { Format::Yaml } else { Format::Json }) {
                Ok(doc) => doc.get("id").and_then(Value::as_str).map(str::to_owned),
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    failures += 1;
                    continue;
                }
            };
            let Some(id) = id else {
                eprintln!("{}: id: required", file.display());
                failures += 1;
                continue;
            };
            match client.put_definition(&id, text, yaml).await {
                Ok(answer) => {
                    let what = if answer.changed { "saved" } else { "unchanged" };
                    println!("{id}: version {} ({what})", answer.version);
                }
                Err(e) => {
                    eprintln!("{}: {e:#}", file.display());
                    failures += 1;
                }
            }
        }
    }
    if failures > 0 {
        bail!("{failures} definition file(s) were not applied");
    }
    Ok(())
}

/// What a dry run is asked to assume (each JSON or `@file`).
#[derive(Debug, Default)]
pub struct DryRunSample {
    /// A sample event (`{type, key?, payload}`).
    pub event: Option<String>,
    /// The payload of a manual run.
    pub payload: Option<String>,
    /// Context values by source name, used instead of resolving them.
    pub context: Option<String>,
}

/// `taskfactory dry-run ID`.
pub async fn dry_run(client: &ApiClient, id: &str, sample: &DryRunSample, as_json: bool) -> anyhow::Result<()> {
    let body = json!({
        "event": sample.event.as_deref().map(json_arg).transpose()?,
        "payload": sample.payload.as_deref().map(json_arg).transpose()?.unwrap_or(Value::Null),
        "context": sample.context.as_deref().map(json_arg).transpose()?.unwrap_or_else(|| json!({})),
    });
    let path = format!("/api/v1/definitions/{id}/dry-run");
    if as_json {
        return print_json(&client.post::<Value>(&path, &body).await?);
    }
    let answer: DryRunAnswer = client.post(&path, &body).await?;
    if let Some(filter) = &answer.filter {
        let holds = if filter.holds { "holds" } else { "does not hold (no run)" };
        println!("filter {}: {holds}", filter.expression);
    }
    for d in &answer.plan.decisions {
        println!("{:<6} {}/{}  {}", wire(&d.outcome), d.template_id, d.item_key.as_deref().unwrap_or("-"), d.reason);
    }
    let s = &answer.summary;
    println!(
        "{} task(s) would spawn, {} skipped, {} template(s) planned at run time from their dependencies' outputs",
        s.spawn, s.skip, s.deferred
    );
    Ok(())
}

/// `taskfactory preview ID`: the next fires in UTC and local time, with DST warnings.
pub async fn preview(client: &ApiClient, id: &str, count: u32, after: Option<&str>) -> anyhow::Result<()> {
    let after = after.map(|a| format!("&after={}", a.replace('+', "%2B"))).unwrap_or_default();
    let answer: PreviewAnswer = client.get(&format!("/api/v1/definitions/{id}/preview?count={count}{after}")).await?;
    println!("{:<27} {:<27}  ({})", "UTC", "LOCAL", answer.timezone);
    for f in &answer.fires {
        println!("{:<27} {:<27}", wire(&f.utc), f.local);
    }
    for w in &answer.warnings {
        println!("warning: {}", w.message);
    }
    Ok(())
}

/// The versions a diff compares (`to`: the current one when unset).
#[derive(Clone, Copy, Debug)]
pub struct Versions {
    /// The old version.
    pub from: u32,
    /// The new version.
    pub to: Option<u32>,
}

impl Versions {
    fn query(self) -> String {
        format!("from={}{}", self.from, self.to.map(|t| format!("&to={t}")).unwrap_or_default())
    }
}

/// `taskfactory diff ID --from N [--to M]`: the document's changes, path by path.
pub async fn diff(client: &ApiClient, id: &str, versions: Versions, as_json: bool) -> anyhow::Result<()> {
    let path = format!("/api/v1/definitions/{id}/diff?{}", versions.query());
    if as_json {
        return print_json(&client.get::<Value>(&path).await?);
    }
    let answer: DiffAnswer = client.get(&path).await?;
    let shown = |v: &Option<Value>| v.as_ref().map_or_else(|| "null".to_owned(), Value::to_string);
    for c in &answer.changes {
        println!("{:<8} {}  {} -> {}", wire(&c.op), c.path, shown(&c.from), shown(&c.to));
    }
    Ok(())
}

/// Sample events of a behavioural diff (`--events`, `--group`).
pub struct Samples {
    /// A JSON array of events, or @file.
    pub events: Option<String>,
    /// Replay them as one grouped run.
    pub group: bool,
}

/// `taskfactory diff ID --from N --behaviour [--events JSON|@file [--group]]`: the last
/// recorded triggers, and the sample events, replayed through both versions' planners.
pub async fn behaviour_diff(
    client: &ApiClient,
    id: &str,
    versions: Versions,
    last: u32,
    samples: &Samples,
    as_json: bool,
) -> anyhow::Result<()> {
    let answer: Value = match &samples.events {
        None => {
            let path = format!("/api/v1/definitions/{id}/diff/behaviour?{}&last={last}", versions.query());
            client.get(&path).await?
        }
        Some(events) => {
            let events = json_arg(events)?;
            anyhow::ensure!(events.is_array(), "--events: a JSON array of events is needed");
            let body = json!({"from": versions.from, "to": versions.to, "last": last, "events": events, "group": samples.group});
            client.post(&format!("/api/v1/definitions/{id}/diff/behaviour"), &body).await?
        }
    };
    if as_json {
        return print_json(&answer);
    }
    let answer: BehaviourDiffAnswer = serde_json::from_value(answer)?;
    let outcome = |v: &VersionReplay| match (v.fires, v.error.as_deref()) {
        (_, Some(e)) => format!("v{} fails: {e}", v.version),
        (false, _) => format!("v{} does not fire ({})", v.version, v.not_fired_because.as_deref().unwrap_or_default()),
        _ => format!("v{} plans {}", v.version, v.tasks),
    };
    for t in &answer.triggers {
        let what = if t.recorded == "run" { wire(&t.trigger_kind) } else { t.recorded.replace('_', " ") };
        println!("{} ({what}): {}; {}", t.workflow_id, outcome(&t.from), outcome(&t.to));
        for a in &t.added {
            println!("  + {}", a.task_id);
        }
        for r in &t.removed {
            println!("  - {}", r.task_id);
        }
        for c in &t.changed {
            let paths: Vec<&str> = c.changes.iter().map(|x| x.path.as_str()).collect();
            println!("  ~ {} ({})", c.task_id, paths.join(", "));
        }
        for w in &t.warnings {
            println!("  ! {w}");
        }
    }
    let s = &answer.summary;
    println!(
        "{} trigger(s) replayed, {} behave differently: {} task(s) added, {} removed, {} changed, {} fire/no-fire change(s)",
        s.replayed, s.differing, s.tasks_added, s.tasks_removed, s.tasks_changed, s.fire_changes
    );
    Ok(())
}
