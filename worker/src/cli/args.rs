//! The command line's schema (clap): every subcommand and its flags. Dispatch is in
//! [`super::run`]; settings shared by several commands are in [`crate::config`].

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use crate::client::json_arg;
use crate::config::{ApiArgs, ClientArgs, DatabaseArgs, MetricsArgs, NotifyArgs, TemporalArgs, TuningArgs};
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
        #[command(flatten)]
        notify: NotifyArgs,
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
        /// Only this outcome (accepted, fired, fired_zero_tasks, queued, skipped, deduplicated, debounced, batched, filtered, error).
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
        /// With `--behaviour`: how many recorded triggers, newest first (0: the samples only).
        #[arg(long, default_value_t = 10)]
        last: u32,
        /// With `--behaviour`: sample events replayed too, a JSON array (or @file), each as
        /// its own trigger.
        #[arg(long, requires = "behaviour")]
        events: Option<String>,
        /// With `--events`: replay the sample events as one debounced or batched run.
        #[arg(long, requires = "events")]
        group: bool,
        /// Print the whole answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List runs, or show one run (with `--events`, its trace events); `runs cancel WF` and
    /// `runs retry WF` control one; `runs export` and `runs import` archive finished runs.
    #[command(args_conflicts_with_subcommands = true)]
    Runs {
        /// Cancel or retry a run, export or import runs.
        #[command(subcommand)]
        action: Option<RunsCommand>,
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

/// `taskfactory runs ...`: acting on one run, or archiving finished ones.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Cancel a running run: no new task starts, tasks in flight are cancelled, the run ends
    /// `cancelled` with the reason and who asked.
    Cancel {
        /// The run's workflow id.
        workflow_id: String,
        /// Why (recorded with the cancellation).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Retry a finished run as a new run `WF:retry:N`: completed tasks are reused, the rest
    /// run again.
    Retry {
        /// The run's workflow id.
        workflow_id: String,
        /// `failed` (what did not complete), `all`, or task ids separated by commas.
        #[arg(long, default_value = "failed")]
        tasks: String,
        /// `same` (the version the run used) or `latest`.
        #[arg(long, default_value = "same")]
        version: String,
        /// Resolve the context anew instead of reusing the run's snapshot.
        #[arg(long)]
        refresh_context: bool,
        /// Idempotency key: the same key again answers the same retry.
        #[arg(long)]
        key: Option<String>,
    },
    /// Export finished runs with every row they own (tasks, trace events, human tasks,
    /// artifacts, retries, notifications) as JSON Lines, straight from the database.
    Export {
        /// Only runs of this definition.
        #[arg(long)]
        definition: Option<String>,
        /// Only runs that finished before this: an RFC 3339 timestamp, or an age such as
        /// `30d` or `12h` (now minus it).
        #[arg(long)]
        before: Option<String>,
        /// The file to write (`-`: stdout).
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Import an export into the database (migrated first); runs it has already are skipped.
    Import {
        /// The file to read (`-`: stdin).
        #[arg(short = 'i', long = "in")]
        input: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
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
