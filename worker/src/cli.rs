//! The command line.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use taskfactory_activities::context::ContextClients;
use taskfactory_activities::secrets::SecretStore;
use taskfactory_activities::sql_access::{DEFAULT_CONNECTION, SqlConnection};
use taskfactory_activities::{ActivityConfig, Store};
use taskfactory_api::ApiState;
use taskfactory_schemas::validate::{Format, parse_text};

use crate::client::{ApiClient, definition_files, is_yaml, json_arg};
use crate::config::{ApiArgs, ClientArgs, DatabaseArgs, MetricsArgs, TemporalArgs, TuningArgs};
use crate::dev::DevArgs;
use crate::telemetry::LogFormat;

/// taskfactory: declarative, versioned task factories on Temporal.
#[derive(Debug, Parser)]
#[command(name = "taskfactory", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "TASKFACTORY_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything locally: Temporal dev server, Postgres, worker, API, examples.
    Dev(DevArgs),
    /// Measure throughput and latency against a dev server and Postgres it starts (JSON on
    /// stdout, a table on stderr; see wiki/benchmarks.md).
    Bench(crate::bench::BenchArgs),
    /// Run the Temporal worker.
    Worker {
        #[command(flatten)]
        temporal: TemporalArgs,
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        tuning: TuningArgs,
        #[command(flatten)]
        metrics: MetricsArgs,
    },
    /// The benchmark's floor worker (Temporal alone: its reference workflows, SDK defaults);
    /// `taskfactory bench` starts it.
    #[command(hide = true)]
    BenchFloorWorker {
        #[command(flatten)]
        temporal: TemporalArgs,
    },
    /// Run a demo worker of "another team" (workflow `DemoGreeter`, activity `demo.shout`) on
    /// its own task queue, to try `workflow` and `activity` tasks.
    DemoWorker {
        #[command(flatten)]
        temporal: TemporalArgs,
    },
    /// Serve the HTTP API.
    Api {
        #[command(flatten)]
        temporal: TemporalArgs,
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Register taskfactory's search attributes in a Temporal namespace (idempotent).
    Setup {
        #[command(flatten)]
        temporal: TemporalArgs,
    },
    /// Apply the database migrations.
    Migrate {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Create or update definitions from a file or a directory of files.
    Apply {
        /// A definition file (YAML or JSON), or a directory of them.
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Start a manual run of a definition.
    Trigger {
        /// Definition id.
        id: String,
        /// Idempotency key: the same key never starts a second run.
        #[arg(long)]
        key: Option<String>,
        /// Payload for the run, JSON or @file.
        #[arg(long)]
        payload: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Send events to the API (event ingress).
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Schedules of cron definitions: describe, pause, unpause, trigger, backfill, reconcile.
    Schedules {
        #[command(subcommand)]
        command: SchedulesCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Act on every definition a selector matches: pause, resume, trigger, backfill (one line
    /// per definition; exits non-zero when any of them failed).
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// API keys: create (the key is shown once), list, revoke. Talks to the database directly,
    /// so the first admin key can be made before any key exists.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Save a workflow's history as JSON, e.g. for a replay test under
    /// `orchestrator/tests/histories/`.
    History {
        /// The workflow id.
        workflow_id: String,
        /// Output file.
        #[arg(short, long)]
        out: PathBuf,
        #[command(flatten)]
        temporal: TemporalArgs,
    },
    /// Show what a definition would do, without starting anything.
    DryRun {
        /// Definition id.
        id: String,
        /// A sample event, JSON or @file (`{type, key?, payload}`).
        #[arg(long)]
        event: Option<String>,
        /// Payload of a manual run, JSON or @file.
        #[arg(long)]
        payload: Option<String>,
        /// Context values by source name, JSON or @file, used instead of resolving them.
        #[arg(long)]
        context: Option<String>,
        /// Print the whole answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Why did (or didn't) a definition start runs: its trigger decision log, newest first.
    Decisions {
        /// Definition id.
        id: String,
        /// Only this outcome (fired, fired_zero_tasks, skipped, deduplicated, filtered, error).
        #[arg(long)]
        outcome: Option<String>,
        /// How many (at most 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print the whole answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The next fires of a cron definition in UTC and local time, with DST warnings.
    Preview {
        /// Definition id.
        id: String,
        /// How many fires.
        #[arg(short = 'n', long, default_value_t = 10)]
        count: u32,
        /// Fires after this instant (RFC 3339; default now).
        #[arg(long)]
        after: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Compare two versions of a definition: the document, or (with `--behaviour`) what each
    /// would have done with the last recorded triggers.
    Diff {
        /// Definition id.
        id: String,
        /// The old version.
        #[arg(long)]
        from: u32,
        /// The new version (default: the current one).
        #[arg(long)]
        to: Option<u32>,
        /// Replay recorded triggers through both versions' planners (nothing is started).
        #[arg(long)]
        behaviour: bool,
        /// With `--behaviour`: how many recorded triggers, newest first.
        #[arg(long, default_value_t = 10)]
        last: u32,
        /// Print the whole answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List runs, or show one run (with `--events`, its trace events).
    Runs {
        /// A run's workflow id.
        workflow_id: Option<String>,
        /// Only runs of this definition.
        #[arg(long)]
        definition: Option<String>,
        /// Print the run's trace events.
        #[arg(long)]
        events: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `taskfactory events ...`.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Send one event: every matching event definition gets a run (once per dedupe key).
    Send {
        /// Event type, e.g. `repo.pushed`.
        #[arg(long = "type")]
        event_type: String,
        /// Idempotency key (default dedupe key).
        #[arg(long)]
        key: Option<String>,
        /// Sender, for the run log.
        #[arg(long)]
        source: Option<String>,
        /// Payload, JSON or @file.
        #[arg(long)]
        payload: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `taskfactory keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints it once.
    Create {
        /// What it is for.
        #[arg(long)]
        name: String,
        /// `viewer`, `operator` or `admin`.
        #[arg(long)]
        role: taskfactory_activities::auth_store::Role,
        /// Lifetime, e.g. `30d` (default: no expiry).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id.
    Revoke {
        /// The key's id (the part after `tfk_`).
        id: String,
    },
}

/// `taskfactory schedules ...`.
#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Repair drift between definitions and Temporal Schedules; prints what changed.
    Reconcile,
    /// State, recent runs and the next fire times of a definition's schedule.
    Describe {
        /// Definition id.
        id: String,
    },
    /// Pause a definition's schedule.
    Pause {
        /// Definition id.
        id: String,
        /// Why.
        #[arg(long)]
        note: Option<String>,
    },
    /// Unpause a definition's schedule.
    Unpause {
        /// Definition id.
        id: String,
        /// Why.
        #[arg(long)]
        note: Option<String>,
    },
    /// Fire a definition's schedule now.
    Trigger {
        /// Definition id.
        id: String,
    },
    /// Start one run per slot in a time range.
    Backfill {
        /// Definition id.
        id: String,
        /// Start of the range (RFC 3339, inclusive).
        #[arg(long)]
        from: String,
        /// End of the range (RFC 3339, inclusive).
        #[arg(long)]
        to: String,
    },
}

/// Which definitions a fleet operation acts on, and whether it only reports.
#[derive(Debug, clap::Args)]
pub struct FleetSelector {
    /// Only definitions carrying this tag (repeat the flag: all must match).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only definitions whose id or name contains this text (ignoring case).
    #[arg(long)]
    pub search: Option<String>,
    /// Report what matches and what would be skipped; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `taskfactory fleet ...`.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Pause the schedules of matching cron definitions.
    Pause {
        #[command(flatten)]
        selector: FleetSelector,
        /// Why (recorded on each schedule).
        #[arg(long)]
        note: Option<String>,
    },
    /// Unpause the schedules of matching (enabled) cron definitions.
    Resume {
        #[command(flatten)]
        selector: FleetSelector,
        /// Why (recorded on each schedule).
        #[arg(long)]
        note: Option<String>,
    },
    /// Fire matching cron definitions' schedules now; start manual runs of the others.
    Trigger {
        #[command(flatten)]
        selector: FleetSelector,
        /// Payload of the manual runs, JSON or @file.
        #[arg(long)]
        payload: Option<String>,
    },
    /// Start one run per slot in a time range, for each matching cron definition.
    Backfill {
        #[command(flatten)]
        selector: FleetSelector,
        /// Start of the range (RFC 3339, inclusive).
        #[arg(long)]
        from: String,
        /// End of the range (RFC 3339, inclusive).
        #[arg(long)]
        to: String,
    },
}

impl FleetCommand {
    /// The route's last segment and the request body.
    pub fn request(&self) -> anyhow::Result<(&'static str, Value)> {
        let (action, selector, mut body) = match self {
            Self::Pause { selector, note } => ("pause", selector, json!({"note": note})),
            Self::Resume { selector, note } => ("resume", selector, json!({"note": note})),
            Self::Trigger { selector, payload } => {
                ("trigger", selector, json!({"payload": payload.as_deref().map(json_arg).transpose()?}))
            }
            Self::Backfill { selector, from, to } => ("backfill", selector, json!({"start": from, "end": to})),
        };
        body["tags"] = json!(selector.tags);
        body["dry_run"] = json!(selector.dry_run);
        if let Some(search) = &selector.search {
            body["search"] = json!(search);
        }
        // Unset options are left out: the API refuses fields an operation does not use.
        body.as_object_mut().into_iter().for_each(|o| o.retain(|_, v| !v.is_null()));
        Ok((action, body))
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev(args) => crate::dev::run(args).await,
        Command::Bench(args) => crate::bench::run(args).await,
        Command::Worker { temporal, database, tuning, metrics } => {
            // Bound first: a taken port fails the start instead of a silent worker.
            if let Some(addr) = metrics.metrics_addr {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding --metrics-addr {addr}"))?;
                tracing::info!(%addr, "metrics at /metrics");
                // Ends with the process; a scrape holds nothing the worker's drain waits for.
                tokio::spawn(taskfactory_api::routes::metrics::serve_metrics(listener, std::future::pending()));
            }
            let client = crate::temporal::connect(&temporal.temporal_address, &temporal.namespace).await?;
            let store = Store::connect(&database.database_url, 20).await.context("connecting to DATABASE_URL")?;
            let context = context_clients(&database).await?;
            let mut activity_config = ActivityConfig::default();
            activity_config.context_limits.max_bytes = database.max_context_bytes;
            activity_config.group_task_writes = !tuning.no_group_commit;
            let setup = crate::worker::WorkerSetup {
                client,
                task_queue: temporal.task_queue,
                store,
                context,
                activity_config,
                tuning: tuning.tuning(),
            };
            crate::worker::run(setup, shutdown_signal()).await
        }
        Command::BenchFloorWorker { temporal } => {
            let client = crate::temporal::connect(&temporal.temporal_address, &temporal.namespace).await?;
            crate::bench::floor::run_worker(client, temporal.task_queue, shutdown_signal()).await
        }
        Command::DemoWorker { temporal } => {
            let client = crate::temporal::connect(&temporal.temporal_address, &temporal.namespace).await?;
            tracing::info!(task_queue = %temporal.task_queue, "demo worker running");
            crate::demo::run(client, temporal.task_queue, shutdown_signal()).await
        }
        Command::Api { temporal, database, api } => {
            let client = crate::temporal::connect(&temporal.temporal_address, &temporal.namespace).await?;
            let store = Store::connect(&database.database_url, 20).await.context("connecting to DATABASE_URL")?;
            let listener = tokio::net::TcpListener::bind(api.api_addr)
                .await
                .with_context(|| format!("binding {}", api.api_addr))?;
            tracing::info!(addr = %api.api_addr, "API listening");
            let context = context_clients(&database).await?;
            let state = ApiState::new(store, client, temporal.task_queue, context)
                .with_temporal_ui(api.temporal_ui_url.clone());
            reconcile_at_startup(&state).await;
            let retention = Some(api.decision_retention).filter(|r| !r.is_zero());
            let _observer = taskfactory_api::decisions::spawn_observer(
                state.clone(),
                taskfactory_api::decisions::OBSERVE_EVERY,
                retention,
            );
            taskfactory_api::serve(listener, state, shutdown_signal()).await?;
            Ok(())
        }
        Command::Setup { temporal } => {
            let client = crate::temporal::connect(&temporal.temporal_address, &temporal.namespace).await?;
            let added = crate::temporal::register_search_attributes(&client, &temporal.namespace).await?;
            if added.is_empty() {
                println!("search attributes already registered in {}", temporal.namespace);
            } else {
                println!("registered {} in {}", added.join(", "), temporal.namespace);
            }
            Ok(())
        }
        Command::Migrate { database } => {
            let store = Store::connect(&database.database_url, 2).await.context("connecting to DATABASE_URL")?;
            store.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Apply { files, client } => apply(&ApiClient::from_args(&client), &files).await,
        Command::Trigger { id, key, payload, client } => {
            let payload = payload.as_deref().map(json_arg).transpose()?.unwrap_or(Value::Null);
            let answer = ApiClient::from_args(&client).trigger(&id, &json!({"key": key, "payload": payload})).await?;
            let verb = if answer["started"].as_bool() == Some(true) { "started" } else { "already started" };
            println!("{verb}: {}", answer["workflow_id"].as_str().unwrap_or_default());
            Ok(())
        }
        Command::Events { command: EventsCommand::Send { event_type, key, source, payload, client } } => {
            let payload = payload.as_deref().map(json_arg).transpose()?.unwrap_or(Value::Null);
            let event = json!({"type": event_type, "key": key, "source": source, "payload": payload});
            let answer = ApiClient::from_args(&client).send_events(&event).await?;
            let outcomes = answer["results"][0]["outcomes"].as_array().cloned().unwrap_or_default();
            if outcomes.is_empty() {
                println!("no enabled event definition matches type {event_type:?}");
            }
            for o in outcomes {
                let what = o["workflow_id"].as_str().or(o["reason"].as_str()).unwrap_or_default();
                println!(
                    "{}: {} {what}",
                    o["definition_id"].as_str().unwrap_or_default(),
                    o["outcome"].as_str().unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::DryRun { id, event, payload, context, json: as_json, client } => {
            let body = json!({
                "event": event.as_deref().map(json_arg).transpose()?,
                "payload": payload.as_deref().map(json_arg).transpose()?.unwrap_or(Value::Null),
                "context": context.as_deref().map(json_arg).transpose()?.unwrap_or_else(|| json!({})),
            });
            let answer =
                ApiClient::from_args(&client).post(&format!("/api/v1/definitions/{id}/dry-run"), &body).await?;
            if as_json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
                return Ok(());
            }
            if let Some(holds) = answer["filter"]["holds"].as_bool() {
                println!(
                    "filter {}: {}",
                    answer["filter"]["expression"].as_str().unwrap_or_default(),
                    if holds { "holds" } else { "does not hold (no run)" }
                );
            }
            for d in answer["plan"]["decisions"].as_array().into_iter().flatten() {
                println!(
                    "{:<6} {}/{}  {}",
                    d["outcome"].as_str().unwrap_or_default(),
                    d["template_id"].as_str().unwrap_or_default(),
                    d["item_key"].as_str().unwrap_or("-"),
                    d["reason"].as_str().unwrap_or_default()
                );
            }
            let summary = &answer["summary"];
            println!(
                "{} task(s) would spawn, {} skipped, {} template(s) planned at run time from their dependencies' outputs",
                summary["spawn"], summary["skip"], summary["deferred"]
            );
            Ok(())
        }
        Command::Schedules { command, client } => schedules(&ApiClient::from_args(&client), command).await,
        Command::Fleet { command, client } => fleet(&ApiClient::from_args(&client), &command).await,
        Command::Keys { command, database } => {
            let store = Store::connect(&database.database_url, 2).await.context("connecting to DATABASE_URL")?;
            match command {
                KeysCommand::Create { name, role, expires_in } => {
                    let request = taskfactory_api::routes::keys::CreateKey {
                        name: Some(name),
                        role: Some(role.to_string()),
                        expires_in,
                    };
                    let (name, role, expires) = taskfactory_api::routes::keys::check_key_request(&request)
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                    let (info, key) = store.create_key(&name, role, expires).await?;
                    println!("{key}");
                    eprintln!("created key {} ({}, {}); it is shown only now", info.id, info.name, info.role);
                }
                KeysCommand::List => {
                    for k in store.list_keys().await? {
                        let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                        println!("{:<14} {:<9} {:<8} {}", k.id, k.role, state, k.name);
                    }
                }
                KeysCommand::Revoke { id } => {
                    store.revoke_key(&id).await?;
                    println!("revoked {id}");
                }
            }
            Ok(())
        }
        Command::History { workflow_id, out, temporal } => {
            let client = crate::temporal::connect(&temporal.temporal_address, &temporal.namespace).await?;
            let json = crate::temporal::history_json(&client, &workflow_id).await?;
            std::fs::write(&out, json).with_context(|| format!("writing {}", out.display()))?;
            println!("saved the history of {workflow_id} to {}", out.display());
            Ok(())
        }
        Command::Decisions { id, outcome, limit, json: as_json, client } => {
            let query = outcome.map(|o| format!("&outcome={o}")).unwrap_or_default();
            let answer = ApiClient::from_args(&client)
                .get(&format!("/api/v1/definitions/{id}/decisions?limit={limit}{query}"))
                .await?;
            print_decisions(&answer, as_json)
        }
        Command::Preview { id, count, after, client } => {
            let after = after.map(|a| format!("&after={}", a.replace('+', "%2B"))).unwrap_or_default();
            let answer = ApiClient::from_args(&client)
                .get(&format!("/api/v1/definitions/{id}/preview?count={count}{after}"))
                .await?;
            println!("{:<27} {:<27}  ({})", "UTC", "LOCAL", answer["timezone"].as_str().unwrap_or_default());
            for f in answer["fires"].as_array().into_iter().flatten() {
                println!(
                    "{:<27} {:<27}",
                    f["utc"].as_str().unwrap_or_default(),
                    f["local"].as_str().unwrap_or_default()
                );
            }
            for w in answer["warnings"].as_array().into_iter().flatten() {
                println!("warning: {}", w["message"].as_str().unwrap_or_default());
            }
            Ok(())
        }
        Command::Diff { id, from, to, behaviour, last, json: as_json, client } => {
            let to = to.map(|t| format!("&to={t}")).unwrap_or_default();
            let client = ApiClient::from_args(&client);
            if !behaviour {
                let answer = client.get(&format!("/api/v1/definitions/{id}/diff?from={from}{to}")).await?;
                if as_json {
                    println!("{}", serde_json::to_string_pretty(&answer)?);
                    return Ok(());
                }
                for c in answer["changes"].as_array().into_iter().flatten() {
                    println!(
                        "{:<8} {}  {} -> {}",
                        c["op"].as_str().unwrap_or_default(),
                        c["path"].as_str().unwrap_or_default(),
                        c["from"],
                        c["to"]
                    );
                }
                return Ok(());
            }
            let answer =
                client.get(&format!("/api/v1/definitions/{id}/diff/behaviour?from={from}{to}&last={last}")).await?;
            print_behaviour_diff(&answer, as_json)
        }
        Command::Runs { workflow_id, definition, events, client } => {
            runs(&ApiClient::from_args(&client), workflow_id, definition, events).await
        }
    }
}

/// Repairs schedule drift before serving; a failure is logged, not fatal (the API still serves
/// reads, and `taskfactory schedules reconcile` retries).
pub async fn reconcile_at_startup(state: &ApiState) {
    match taskfactory_api::schedules::reconcile(&state.temporal, &state.store, &state.task_queue).await {
        Ok(repairs) if repairs.is_empty() => tracing::info!("schedules in sync"),
        Ok(repairs) => tracing::info!(repairs = repairs.len(), "schedules reconciled"),
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "reconciling schedules failed"),
    }
}

async fn schedules(client: &ApiClient, command: SchedulesCommand) -> anyhow::Result<()> {
    let answer = match &command {
        SchedulesCommand::Reconcile => client.post("/api/v1/schedules/reconcile", &json!({})).await?,
        SchedulesCommand::Describe { id } => client.get(&format!("/api/v1/definitions/{id}/schedule")).await?,
        SchedulesCommand::Pause { id, note } => {
            client.post(&format!("/api/v1/definitions/{id}/schedule/pause"), &json!({"note": note})).await?
        }
        SchedulesCommand::Unpause { id, note } => {
            client.post(&format!("/api/v1/definitions/{id}/schedule/unpause"), &json!({"note": note})).await?
        }
        SchedulesCommand::Trigger { id } => {
            client.post(&format!("/api/v1/definitions/{id}/schedule/trigger"), &json!({})).await?
        }
        SchedulesCommand::Backfill { id, from, to } => {
            client
                .post(&format!("/api/v1/definitions/{id}/schedule/backfill"), &json!({"start": from, "end": to}))
                .await?
        }
    };
    if let SchedulesCommand::Reconcile = command {
        let repairs = answer["repairs"].as_array().cloned().unwrap_or_default();
        if repairs.is_empty() {
            println!("schedules in sync: nothing to repair");
        }
        for r in repairs {
            println!("{}: {}", r["schedule_id"].as_str().unwrap_or_default(), r["action"].as_str().unwrap_or_default());
        }
    } else {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    }
    Ok(())
}

async fn fleet(client: &ApiClient, command: &FleetCommand) -> anyhow::Result<()> {
    let (action, body) = command.request()?;
    let answer = client.post(&format!("/api/v1/fleet/{action}"), &body).await?;
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    let width = results.iter().filter_map(|r| r["definition_id"].as_str()).map(str::len).max().unwrap_or(0);
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for r in &results {
        let outcome = r["outcome"].as_str().unwrap_or_default();
        *counts.entry(outcome.to_owned()).or_default() += 1;
        let mut detail = r["detail"].as_str().unwrap_or_default().to_owned();
        if let Some(workflow_id) = r["workflow_id"].as_str() {
            detail = format!("{detail} {workflow_id}");
        }
        println!("{:<width$}  {:<10}  {}", r["definition_id"].as_str().unwrap_or_default(), outcome, detail.trim());
    }
    // In a dry run, `matched` means "would be acted on".
    let counted: Vec<String> = counts
        .iter()
        .map(|(outcome, n)| if outcome == "matched" { format!("{n} would {action}") } else { format!("{n} {outcome}") })
        .collect();
    let dry = if answer["dry_run"].as_bool() == Some(true) { " (dry run, nothing changed)" } else { "" };
    let tally = if counted.is_empty() { String::new() } else { format!(": {}", counted.join(", ")) };
    println!("fleet {action}{dry}: {} definition(s) matched{tally}", answer["matched"]);
    match counts.get("error") {
        Some(errors) => bail!("fleet {action}: {errors} definition(s) failed"),
        None => Ok(()),
    }
}

/// What context sources read from: the named SQL connections (the context database is the
/// one named `default`; never the run log's own pool), each role checked now, and the HTTP
/// rule and secrets. Pools connect lazily: a database that is down fails the runs that need
/// it, not the start-up (its role is then checked before its first query); a privileged
/// role fails the start-up.
pub async fn context_clients(database: &DatabaseArgs) -> anyhow::Result<ContextClients> {
    let lazy = |url: &str| sqlx::postgres::PgPoolOptions::new().max_connections(10).connect_lazy(url);
    let mut named: Vec<(&str, &str, &str)> =
        database.sql_connections.iter().map(|(n, u)| (n.as_str(), u.as_str(), "--sql-connection")).collect();
    if let Some(url) = &database.context_database_url {
        named.push((DEFAULT_CONNECTION, url, "TASKFACTORY_CONTEXT_DATABASE_URL"));
    }
    let mut clients = ContextClients::default();
    for (name, url, origin) in named {
        if clients.connections.contains_key(name) {
            bail!(
                "the SQL connection {name:?} is configured twice ({origin}): give each --sql-connection its own name"
            );
        }
        let allow = database.allow_privileged_sql.iter().any(|a| a == name);
        let pool = lazy(url).with_context(|| format!("{origin} {name}"))?;
        clients = clients.with_connection(SqlConnection::new(name, pool, allow));
    }
    if let Some(unknown) = database.allow_privileged_sql.iter().find(|a| !clients.connections.contains_key(a.as_str()))
    {
        bail!("--allow-privileged-sql {unknown}: no SQL connection has that name (--sql-connection {unknown}=URL)");
    }
    taskfactory_activities::context::verify_connections(&clients).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    clients.egress.allow_private = database.allow_private_targets;
    clients.secrets = SecretStore::new(SecretStore::values_from_env(std::env::vars()), database.secrets_dir.clone());
    Ok(clients)
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled, so a signal during start-up is not lost (or fatal).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate()).ok();
    let interrupt = signal(SignalKind::interrupt()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(term) => {},
            () = wait(interrupt) => {},
        }
    }
}

async fn apply(client: &ApiClient, paths: &[PathBuf]) -> anyhow::Result<()> {
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
                    let what = if answer["changed"].as_bool() == Some(false) { "unchanged" } else { "saved" };
                    println!("{id}: version {} ({what})", answer["version"]);
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

async fn runs(
    client: &ApiClient,
    workflow_id: Option<String>,
    definition: Option<String>,
    events: bool,
) -> anyhow::Result<()> {
    match workflow_id {
        Some(id) if events => {
            let mut after = 0;
            loop {
                let page = client.get(&format!("/api/v1/runs/{id}/events?after={after}&limit=1000")).await?;
                for e in page["events"].as_array().into_iter().flatten() {
                    println!(
                        "{:>5} {} {:<18} {:<5} {} {}",
                        e["seq"],
                        e["ts"].as_str().unwrap_or_default(),
                        e["type"].as_str().unwrap_or_default(),
                        e["level"].as_str().unwrap_or_default(),
                        e["node_id"].as_str().unwrap_or("-"),
                        e["message"].as_str().unwrap_or_default()
                    );
                }
                match page["next"].as_i64() {
                    Some(next) => after = next,
                    None => break,
                }
            }
        }
        Some(id) => println!("{}", serde_json::to_string_pretty(&client.get(&format!("/api/v1/runs/{id}")).await?)?),
        None => {
            let query = definition.map(|d| format!("?definition_id={d}")).unwrap_or_default();
            let list = client.get(&format!("/api/v1/runs{query}")).await?;
            println!("{:<60} {:<10} {:>6} {:>6} {:>6}", "WORKFLOW ID", "STATUS", "TASKS", "DONE", "FAILED");
            for r in list["runs"].as_array().into_iter().flatten() {
                println!(
                    "{:<60} {:<10} {:>6} {:>6} {:>6}",
                    r["workflow_id"].as_str().unwrap_or_default(),
                    r["status"].as_str().unwrap_or_default(),
                    r["tasks_planned"].as_i64().unwrap_or_default(),
                    r["tasks_completed"].as_i64().unwrap_or_default(),
                    r["tasks_failed"].as_i64().unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

fn print_decisions(answer: &Value, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(answer)?);
        return Ok(());
    }
    if let Some(error) = answer["observer_error"].as_str() {
        eprintln!("warning: the schedule could not be observed: {error}");
    }
    for d in answer["decisions"].as_array().into_iter().flatten() {
        let when = d["slot"].as_str().or(d["recorded_at"].as_str()).unwrap_or_default();
        println!(
            "{:<26} {:<8} {:<16} {}",
            when,
            d["source"].as_str().unwrap_or_default(),
            d["outcome"].as_str().unwrap_or_default(),
            d["message"].as_str().unwrap_or_default()
        );
    }
    let counts: Vec<String> =
        answer["counts"].as_object().into_iter().flatten().map(|(k, v)| format!("{k} {v}")).collect();
    println!("totals: {}", if counts.is_empty() { "no decisions yet".to_owned() } else { counts.join(", ") });
    Ok(())
}

fn print_behaviour_diff(answer: &Value, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(answer)?);
        return Ok(());
    }
    for t in answer["triggers"].as_array().into_iter().flatten() {
        let outcome = |v: &Value| match (v["fires"].as_bool(), v["error"].as_str()) {
            (_, Some(e)) => format!("v{} fails: {e}", v["version"]),
            (Some(false), _) => {
                format!("v{} does not fire ({})", v["version"], v["not_fired_because"].as_str().unwrap_or_default())
            }
            _ => format!("v{} plans {}", v["version"], v["tasks"]),
        };
        let what = if t["recorded"] == "filtered_event" {
            "filtered event"
        } else {
            t["trigger_kind"].as_str().unwrap_or_default()
        };
        println!(
            "{} ({what}): {}; {}",
            t["workflow_id"].as_str().unwrap_or_default(),
            outcome(&t["from"]),
            outcome(&t["to"])
        );
        for a in t["added"].as_array().into_iter().flatten() {
            println!("  + {}", a["task_id"].as_str().unwrap_or_default());
        }
        for r in t["removed"].as_array().into_iter().flatten() {
            println!("  - {}", r["task_id"].as_str().unwrap_or_default());
        }
        for c in t["changed"].as_array().into_iter().flatten() {
            let paths: Vec<&str> =
                c["changes"].as_array().into_iter().flatten().filter_map(|x| x["path"].as_str()).collect();
            println!("  ~ {} ({})", c["task_id"].as_str().unwrap_or_default(), paths.join(", "));
        }
        for w in t["warnings"].as_array().into_iter().flatten() {
            println!("  ! {}", w.as_str().unwrap_or_default());
        }
    }
    let s = &answer["summary"];
    println!(
        "{} trigger(s) replayed, {} behave differently: {} task(s) added, {} removed, {} changed, {} fire/no-fire change(s)",
        s["replayed"], s["differing"], s["tasks_added"], s["tasks_removed"], s["tasks_changed"], s["fire_changes"]
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;

    fn fleet_request(args: &[&str]) -> (&'static str, Value) {
        let cli = Cli::try_parse_from(["taskfactory", "fleet"].iter().chain(args)).unwrap();
        let Command::Fleet { command, .. } = cli.command else { panic!("not a fleet command") };
        command.request().unwrap()
    }

    #[test]
    fn fleet_flags_become_the_api_body_without_unset_fields() {
        let (action, body) =
            fleet_request(&["pause", "--tag", "nightly", "--tag", "eu", "--note", "maintenance", "--dry-run"]);
        assert_eq!(action, "pause");
        assert_eq!(body, json!({"note": "maintenance", "tags": ["nightly", "eu"], "dry_run": true}));
        let (_, body) = fleet_request(&["trigger", "--search", "Invoices", "--payload", r#"{"n": 1}"#]);
        assert_eq!(body, json!({"payload": {"n": 1}, "tags": [], "dry_run": false, "search": "Invoices"}));
        let (action, body) = fleet_request(&[
            "backfill",
            "--tag",
            "a",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2026-01-02T00:00:00Z",
        ]);
        assert_eq!(action, "backfill");
        assert_eq!(
            body,
            json!({"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "tags": ["a"], "dry_run": false})
        );
        assert!(
            Cli::try_parse_from(["taskfactory", "fleet", "backfill", "--tag", "a"]).is_err(),
            "--from and --to are required"
        );
        let cli = Cli::try_parse_from([
            "taskfactory",
            "fleet",
            "pause",
            "--tag",
            "a",
            "--api-url",
            "http://api:1",
            "--api-key",
            "k",
        ])
        .unwrap();
        let Command::Fleet { client, .. } = cli.command else { panic!("not a fleet command") };
        assert_eq!(
            (client.api_url.as_str(), client.api_key.as_deref()),
            ("http://api:1", Some("k")),
            "client flags after the subcommand"
        );
    }
}
