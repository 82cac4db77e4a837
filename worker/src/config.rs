//! Typed settings. Read from flags and environment variables at the edge (clap), then passed
//! explicitly; nothing below `cli` reads the environment.

use std::net::SocketAddr;

/// How to reach Temporal.
#[derive(Clone, Debug, clap::Args)]
pub struct TemporalArgs {
    /// Temporal frontend address (host:port).
    #[arg(long, env = "TEMPORAL_ADDRESS", default_value = "127.0.0.1:7233")]
    pub temporal_address: String,
    /// Temporal namespace.
    #[arg(long, env = "TEMPORAL_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Task queue taskfactory's worker polls and its runs start on.
    #[arg(long, env = "TASKFACTORY_TASK_QUEUE", default_value = "taskfactory")]
    pub task_queue: String,
}

/// How to reach the run log.
#[derive(Clone, Debug, clap::Args)]
pub struct DatabaseArgs {
    /// Postgres URL of the run log and definition store.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Postgres URL `sql` context sources without `connection` query: the SQL connection
    /// named `default`. Connect as a read-only role (never the run log's owner): without it,
    /// such sources are refused when a definition is saved.
    #[arg(long, env = "TASKFACTORY_CONTEXT_DATABASE_URL")]
    pub context_database_url: Option<String>,
    /// A named database for `sql` sources with `connection: NAME`, as `NAME=URL` (repeat the
    /// flag, or separate with commas in the variable). Its role is checked at start-up.
    #[arg(long = "sql-connection", env = "TASKFACTORY_SQL_CONNECTIONS", value_delimiter = ',', value_parser = parse_connection)]
    pub sql_connections: Vec<(String, String)>,
    /// Let the SQL connection NAME use a privileged role (a superuser, or one that can read
    /// taskfactory's own tables or the server's files): refused at start-up otherwise.
    #[arg(
        long = "allow-privileged-sql",
        env = "TASKFACTORY_ALLOW_PRIVILEGED_SQL",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub allow_privileged_sql: Vec<String>,
    /// Largest resolved context of a run, in bytes (it is stored with the run and passes
    /// through workflow history).
    #[arg(long, env = "TASKFACTORY_MAX_CONTEXT_BYTES", default_value_t = 1024 * 1024)]
    pub max_context_bytes: usize,
    /// Let `http` tasks and context sources call private, loopback and link-local addresses
    /// (refused by default: SSRF guard).
    #[arg(long, env = "TASKFACTORY_ALLOW_PRIVATE_TARGETS")]
    pub allow_private_targets: bool,
    /// A directory with one file per secret (`{{ secret.NAME }}` reads the file NAME on every
    /// use), in addition to `TF_SECRET_<NAME>` environment variables.
    #[arg(long, env = "TASKFACTORY_SECRETS_DIR")]
    pub secrets_dir: Option<std::path::PathBuf>,
}

fn parse_connection(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((name, url)) if !name.trim().is_empty() && !url.trim().is_empty() => {
            Ok((name.trim().to_owned(), url.trim().to_owned()))
        }
        _ => Err(format!("{raw:?} is not NAME=URL")),
    }
}

/// Where the API listens.
#[derive(Clone, Debug, clap::Args)]
pub struct ApiArgs {
    /// Address of the HTTP API.
    #[arg(long, env = "TASKFACTORY_API_ADDR", default_value = "127.0.0.1:8080")]
    pub api_addr: SocketAddr,
    /// The Temporal Web UI the taskfactory UI links task workflows to.
    #[arg(long, env = "TEMPORAL_UI_URL")]
    pub temporal_ui_url: Option<String>,
    /// How long trigger decisions are kept (e.g. `30d`, `12h`; `0s` keeps them forever).
    #[arg(long, env = "TASKFACTORY_DECISION_RETENTION", default_value = taskfactory_api::schedule_observer::DEFAULT_RETENTION, value_parser = parse_duration)]
    pub decision_retention: std::time::Duration,
    #[command(flatten)]
    pub run_retention: RunRetentionArgs,
    /// The most the event starter waits, per pass, while this process's event ingress is busy
    /// (4 or more requests at once), so acceptance keeps the machine first (`0s`: never wait).
    #[arg(long, env = "TASKFACTORY_STARTER_YIELD", default_value = "5s", value_parser = parse_duration)]
    pub starter_yield: std::time::Duration,
}

/// How long the run log keeps finished runs (`taskfactory api` and `taskfactory dev`).
#[derive(Clone, Debug, clap::Args)]
pub struct RunRetentionArgs {
    /// How long finished runs are kept, with their tasks, trace events, human tasks and
    /// artifacts (e.g. `30d`); a definition's `retention` wins over it. Default: forever (no
    /// run is pruned unless its definition says so). Open runs are never pruned.
    #[arg(long, env = "TASKFACTORY_RUN_RETENTION", value_parser = parse_run_retention)]
    pub run_retention: Option<std::time::Duration>,
    /// How long event receipts are kept once their run was started (e.g. `90d`); they keep
    /// an event's dedupe key deduplicated after its run is gone. Default: forever. A receipt
    /// whose run has not started yet is never pruned.
    #[arg(long, env = "TASKFACTORY_RECEIPT_RETENTION", value_parser = parse_receipt_retention)]
    pub receipt_retention: Option<std::time::Duration>,
}

impl RunRetentionArgs {
    /// The API's default retention: `None` keeps runs forever.
    pub fn default_keep(&self) -> Option<std::time::Duration> {
        self.run_retention
    }

    /// How long event receipts are kept: `None` keeps them forever.
    pub fn receipts_keep(&self) -> Option<std::time::Duration> {
        self.receipt_retention
    }
}

/// What the worker's notifications say about where taskfactory is.
#[derive(Clone, Debug, clap::Args)]
pub struct NotifyArgs {
    /// The public base URL of taskfactory's API and UI, for the run links notifications
    /// carry (e.g. `https://taskfactory.example.com`).
    #[arg(long, env = "TASKFACTORY_PUBLIC_URL", default_value = taskfactory_activities::worker_activities::DEFAULT_PUBLIC_URL)]
    pub public_url: String,
}

/// Where the worker serves its metrics.
#[derive(Clone, Debug, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics (`GET /metrics`: the Temporal SDK's worker metrics and
    /// taskfactory's run and task counters) on this address, e.g. `0.0.0.0:9464`. Off by
    /// default. The API serves its own on its listener.
    #[arg(long, env = "TASKFACTORY_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

/// The API client commands talk to unless told otherwise (where `taskfactory dev` serves it).
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8080";

/// Where client commands send their requests. Global, so that commands with subcommands
/// (`schedules`, `fleet`) take them after the subcommand too.
#[derive(Clone, Debug, clap::Args)]
pub struct ClientArgs {
    /// Base URL of a running taskfactory API.
    #[arg(long, global = true, env = "TASKFACTORY_API_URL", default_value = DEFAULT_API_URL)]
    pub api_url: String,
    /// API key (`tfk_...`); `taskfactory dev` prints one, `taskfactory keys create` makes more.
    #[arg(long, global = true, env = "TASKFACTORY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

/// Worker polling (see `worker::WorkerTuning`).
#[derive(Clone, Debug, clap::Args)]
pub struct TuningArgs {
    /// Concurrent workflow-task polls (sticky and non-sticky together).
    #[arg(long, env = "TASKFACTORY_WORKFLOW_POLLERS", default_value_t = 5)]
    pub workflow_pollers: usize,
    /// Share of the workflow-task polls on the non-sticky queue (new task workflows start there).
    #[arg(long, env = "TASKFACTORY_NONSTICKY_RATIO", default_value_t = 0.2)]
    pub nonsticky_ratio: f32,
    /// Concurrent activity-task polls.
    #[arg(long, env = "TASKFACTORY_ACTIVITY_POLLERS", default_value_t = 5)]
    pub activity_pollers: usize,
    /// Workflows kept in the worker's cache. A run keeps up to `max_parallel` (default 1,000)
    /// task workflows in flight next to its batches; a cache smaller than that evicts the
    /// batches, which then replay their whole history on every child completion.
    #[arg(long, env = "TASKFACTORY_MAX_CACHED_WORKFLOWS", default_value_t = 2_500)]
    pub max_cached_workflows: usize,
    /// Most tasks one run may plan; a plan above it fails naming the limit.
    #[arg(long, env = "TASKFACTORY_MAX_TASKS_PER_RUN", default_value_t = 50_000)]
    pub max_tasks_per_run: usize,
    /// Activities the worker runs at once (activity-mode tasks of its batches among them).
    #[arg(long, env = "TASKFACTORY_ACTIVITY_SLOTS", default_value_t = 100)]
    pub activity_slots: usize,
    /// Activities the server may hand back with a workflow task's completion (eager dispatch).
    #[arg(long, env = "TASKFACTORY_EAGER_ACTIVITIES", default_value_t = 3)]
    pub eager_activities: usize,
    /// Write each task's start and end in a transaction of its own instead of grouping
    /// concurrent ones (for measuring what grouping buys; slower).
    #[arg(long, env = "TASKFACTORY_NO_GROUP_COMMIT", hide = true)]
    pub no_group_commit: bool,
}

impl TuningArgs {
    /// The worker's tuning.
    pub fn tuning(&self) -> crate::worker::WorkerTuning {
        crate::worker::WorkerTuning {
            workflow_pollers: self.workflow_pollers,
            nonsticky_ratio: self.nonsticky_ratio,
            activity_pollers: self.activity_pollers,
            max_cached_workflows: self.max_cached_workflows,
            activity_slots: self.activity_slots,
            eager_activities: self.eager_activities,
        }
    }
}

fn parse_duration(raw: &str) -> Result<std::time::Duration, String> {
    taskfactory_schemas::duration::parse_duration(raw)
}

/// A run retention: a duration of at least a minute (`0s` is refused: omit the flag to keep
/// runs forever), so a typo like `30` seconds cannot wipe the run log.
fn parse_run_retention(raw: &str) -> Result<std::time::Duration, String> {
    at_least_a_minute(raw, "runs")
}

/// A receipt retention: at least a minute, as [`parse_run_retention`].
fn parse_receipt_retention(raw: &str) -> Result<std::time::Duration, String> {
    at_least_a_minute(raw, "receipts")
}

fn at_least_a_minute(raw: &str, what: &str) -> Result<std::time::Duration, String> {
    let keep = taskfactory_schemas::duration::parse_duration(raw)?;
    if keep < std::time::Duration::from_secs(60) {
        return Err(format!("{raw:?}: at least 1m (omit the flag to keep {what} forever)"));
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::{RunRetentionArgs, parse_receipt_retention, parse_run_retention};

    #[test]
    fn a_run_retention_is_at_least_a_minute() {
        assert_eq!(parse_run_retention("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_run_retention("1m"), Ok(Duration::from_secs(60)));
        for bad in ["0s", "30s", "30", "forever"] {
            assert!(parse_run_retention(bad).is_err(), "{bad}");
        }
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        retention: RunRetentionArgs,
    }

    #[test]
    fn a_receipt_retention_is_at_least_a_minute_and_a_bad_one_names_the_flag() {
        assert_eq!(parse_receipt_retention("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_receipt_retention("1m"), Ok(Duration::from_secs(60)));
        for bad in ["0s", "30s", "30", "forever"] {
            assert!(parse_receipt_retention(bad).is_err(), "{bad}");
            let refused =
                Cli::try_parse_from(["taskfactory", "--receipt-retention", bad]).err().expect(bad).to_string();
            assert!(refused.contains("--receipt-retention"), "{bad}: {refused}");
        }
        let unset = Cli::try_parse_from(["taskfactory"]).unwrap();
        assert_eq!(unset.retention.receipts_keep(), None, "default: forever");
        let set = Cli::try_parse_from(["taskfactory", "--receipt-retention", "7d"]).unwrap();
        assert_eq!(set.retention.receipts_keep(), Some(Duration::from_secs(7 * 86_400)));
    }
}
