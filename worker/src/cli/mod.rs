//! The command line: [`args`] is its schema, [`run`] dispatches a parsed command.
//!
//! - Process commands (`dev`, `worker`, `api`, `bench`, the demo and floor workers) build their
//!   process in [`crate::startup`] and run it until Ctrl-C or SIGTERM.
//! - Operator commands against Temporal or Postgres directly: [`admin`] (`setup`, `migrate`,
//!   `history`), [`keys`] (which works before any API key exists) and `runs export` /
//!   `runs import` (in [`runs`]).
//! - Client commands talk to a running API, decode its answers into the API's own types and
//!   print them: [`definitions`] (`apply`, `dry-run`, `diff`, `preview`), [`runs`] (`trigger`,
//!   `runs`, `events send`), [`schedules`] (`schedules`, `fleet`, `decisions`).

pub mod admin;
pub mod args;
pub mod definitions;
pub mod keys;
pub mod runs;
pub mod schedules;

pub use args::{Cli, Command};

use crate::client::ApiClient;
use crate::startup::{ApiConfig, ApiProcess, WorkerConfig, WorkerProcess, shutdown_on_signals};

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev(args) => crate::dev::run(args).await,
        Command::Bench(args) => crate::bench::run(args).await,
        Command::Worker { temporal, database, tuning, metrics, notify } => {
            let shutdown = shutdown_on_signals();
            let mut config = WorkerConfig::from_args(&temporal, &database, &tuning).await?;
            config.activity_config.public_url = notify.public_url;
            WorkerProcess::build(config, metrics.metrics_addr).await?.run(shutdown).await
        }
        Command::Api { temporal, database, api } => {
            let shutdown = shutdown_on_signals();
            let config = ApiConfig::from_args(&temporal, &database, &api).await?;
            ApiProcess::build(config, shutdown).await?.run().await
        }
        Command::BenchFloorWorker { temporal } => {
            let shutdown = shutdown_on_signals();
            let client = crate::temporal::connect(&temporal.temporal_address, &temporal.namespace).await?;
            crate::bench::floor::run_worker(client, temporal.task_queue, shutdown.cancelled_owned()).await
        }
        Command::DemoWorker { temporal } => {
            let shutdown = shutdown_on_signals();
            let client = crate::temporal::connect(&temporal.temporal_address, &temporal.namespace).await?;
            tracing::info!(task_queue = %temporal.task_queue, "demo worker running");
            crate::demo::run(client, temporal.task_queue, shutdown.cancelled_owned()).await
        }
        Command::Setup { temporal } => admin::setup(&temporal).await,
        Command::Migrate { database } => admin::migrate(&database).await,
        Command::History { workflow_id, out, temporal } => admin::history(&temporal, &workflow_id, &out).await,
        Command::Keys { command, database } => keys::run(command, &database).await,
        Command::Apply { files, client } => definitions::apply(&ApiClient::from_args(&client), &files).await,
        Command::DryRun { id, event, payload, context, json, client } => {
            let sample = definitions::DryRunSample { event, payload, context };
            definitions::dry_run(&ApiClient::from_args(&client), &id, &sample, json).await
        }
        Command::Preview { id, count, after, client } => {
            definitions::preview(&ApiClient::from_args(&client), &id, count, after.as_deref()).await
        }
        Command::Diff { id, from, to, behaviour, last, events, group, json, client } => {
            let versions = definitions::Versions { from, to };
            let client = ApiClient::from_args(&client);
            if behaviour {
                let samples = definitions::Samples { events, group };
                definitions::behaviour_diff(&client, &id, versions, last, &samples, json).await
            } else {
                definitions::diff(&client, &id, versions, json).await
            }
        }
        Command::Trigger { id, key, payload, client } => {
            runs::trigger(&ApiClient::from_args(&client), &id, key, payload.as_deref()).await
        }
        Command::Events { command: args::EventsCommand::Send { event_type, key, source, payload, client } } => {
            let event = runs::NewEvent { event_type, key, source, payload };
            runs::send_event(&ApiClient::from_args(&client), &event).await
        }
        Command::Runs { action: Some(action), client, .. } => {
            runs::control(&ApiClient::from_args(&client), action).await
        }
        Command::Runs { action: None, workflow_id, definition, events, client } => {
            let client = ApiClient::from_args(&client);
            match workflow_id {
                Some(id) if events => runs::events(&client, &id).await,
                Some(id) => runs::show(&client, &id).await,
                None => runs::list(&client, definition.as_deref()).await,
            }
        }
        Command::Schedules { command, client } => schedules::schedules(&ApiClient::from_args(&client), command).await,
        Command::Fleet { command, client } => schedules::fleet(&ApiClient::from_args(&client), &command).await,
        Command::Decisions { id, outcome, limit, json, client } => {
            schedules::decisions(&ApiClient::from_args(&client), &id, outcome.as_deref(), limit, json).await
        }
    }
}

/// Prints `value` as indented JSON (`--json` and the commands that show a whole document).
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// An enum's wire name (`snake_case`, as the API writes it), for tables.
fn wire(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}
