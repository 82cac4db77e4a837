//! `taskfactory dev`: the whole system on one machine, in one process tree.
//!
//! Starts a Temporal dev server (with the Web UI and taskfactory's search attributes), a
//! private Postgres cluster unless `DATABASE_URL` is set, applies the migrations, runs the
//! worker and the API, applies `examples/`, and prints where everything is. Ctrl-C or SIGTERM
//! stops the worker and the API gracefully, then every child process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use taskfactory_activities::Store;
use taskfactory_activities::auth_store::Role;
use taskfactory_activities::context::ContextClients;
use taskfactory_activities::secrets::SecretStore;
use taskfactory_schemas::validate::{Format, parse_definition_text};

use crate::client::{definition_files, is_yaml};
use crate::devstack::{self, PostgresCluster, PostgresConfig, TemporalConfig, TemporalDevServer};
use crate::startup::{ApiConfig, ApiProcess, WorkerConfig, WorkerProcess, shutdown_on_signals};

/// Flags of `taskfactory dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Address of the HTTP API.
    #[arg(long, env = "TASKFACTORY_API_ADDR", default_value = "127.0.0.1:8080")]
    pub api_addr: std::net::SocketAddr,
    /// Port of the Temporal dev server's frontend.
    #[arg(long, default_value_t = 7233)]
    pub temporal_port: u16,
    /// Port of the Temporal Web UI.
    #[arg(long, default_value_t = 8233)]
    pub temporal_ui_port: u16,
    /// Where the dev server's history, the private Postgres cluster and the logs live.
    #[arg(long, default_value = ".taskfactory")]
    pub data_dir: PathBuf,
    /// Definitions applied at start-up (a file or a directory).
    #[arg(long, default_value = "examples")]
    pub examples: PathBuf,
    /// Do not apply the examples.
    #[arg(long)]
    pub no_examples: bool,
    /// Use this Postgres instead of starting a private cluster.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Port of the private Postgres cluster (default: a free one).
    #[arg(long)]
    pub postgres_port: Option<u16>,
    /// The Temporal CLI binary (default: `temporal` on PATH).
    #[arg(long, env = "TEMPORAL_BIN")]
    pub temporal_bin: Option<PathBuf>,
    /// PostgreSQL's server binaries (default: found via pg_config or /usr/lib/postgresql).
    #[arg(long, env = "PG_BIN")]
    pub pg_bin: Option<PathBuf>,
    /// Task queue of the worker.
    #[arg(long, default_value = "taskfactory")]
    pub task_queue: String,
    #[command(flatten)]
    pub run_retention: crate::config::RunRetentionArgs,
}

fn ensure_free(port: u16, flag: &str) -> anyhow::Result<()> {
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        bail!("port {port} is already in use (another `taskfactory dev`?): pass {flag} with a free port");
    }
    Ok(())
}

/// Validates and saves every definition under `path`; prints one line per file.
pub async fn apply_examples(store: &Store, path: &Path) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for file in definition_files(path)? {
        let text = std::fs::read_to_string(&file)?;
        let format = if is_yaml(&file) { Format::Yaml } else { Format::Json };
        let definition =
            parse_definition_text(&text, format).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let outcome = store.put_definition(&definition).await?;
        println!("  applied {} (version {})", definition.id, outcome.version);
        ids.push(definition.id.to_string());
    }
    Ok(ids)
}

/// How to call this very binary from a shell: `taskfactory` when that is what `PATH` finds,
/// else its full path (a `cargo build` leaves it in the target directory, not on `PATH`).
fn this_binary() -> String {
    let exe = std::env::current_exe().ok().and_then(|p| std::fs::canonicalize(p).ok());
    let on_path = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join("taskfactory")).find(|p| p.is_file()))
        .and_then(|p| std::fs::canonicalize(p).ok());
    match exe {
        Some(exe) if on_path.as_ref() != Some(&exe) => shell_quote(&exe.to_string_lossy()),
        _ => "taskfactory".to_owned(),
    }
}

/// `text` as one shell word.
fn shell_quote(text: &str) -> String {
    if text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:=@".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// The commands the start-up text suggests, each one that works as printed.
fn try_commands(admin_key: &str, api_addr: std::net::SocketAddr, example: &str) -> Vec<String> {
    let bin = this_binary();
    let mut lines = vec![format!("export TASKFACTORY_API_KEY={admin_key}")];
    let url = format!("http://{api_addr}");
    if url != crate::config::DEFAULT_API_URL {
        lines.push(format!("export TASKFACTORY_API_URL={url}"));
    }
    lines.push(format!("{bin} trigger {example}"));
    lines.push(format!("{bin} runs"));
    lines
}

/// Runs the dev stack until Ctrl-C or SIGTERM.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    // Installed first: Ctrl-C while the servers start still stops everything cleanly.
    let shutdown = shutdown_on_signals();
    let logs = args.data_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    ensure_free(args.temporal_port, "--temporal-port")?;
    ensure_free(args.temporal_ui_port, "--temporal-ui-port")?;
    ensure_free(args.api_addr.port(), "--api-addr")?;

    let search_attributes =
        taskfactory_orchestrator::search::ALL.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect();
    println!("starting the Temporal dev server on 127.0.0.1:{} ...", args.temporal_port);
    // The frontend and UI ports are the user's (checked free above); the HTTP and metrics
    // ports are explicit too, from `server_port`, so the dev server never picks random ones
    // that Postgres's port could be among (see devstack::ports).
    let mut temporal_config = TemporalConfig {
        binary: devstack::find_temporal(args.temporal_bin.as_deref())?,
        port: args.temporal_port,
        ui_port: Some(args.temporal_ui_port),
        http_port: devstack::server_port()?,
        metrics_port: devstack::server_port()?,
        db_file: Some(data_dir.join("temporal.db")),
        log_file: data_dir.join("logs/temporal.log"),
        search_attributes,
        dynamic_config: Vec::new(),
    };
    let temporal_server =
        TemporalDevServer::spawn_retrying(&mut temporal_config, TemporalConfig::repick_auxiliary_ports)?;

    let (postgres, database_url) = match &args.database_url {
        Some(url) => (None, url.clone()),
        None => {
            let mut config = PostgresConfig {
                bin_dir: devstack::find_pg_bin(args.pg_bin.as_deref())?,
                data_dir: data_dir.join("postgres"),
                port: match args.postgres_port {
                    Some(p) => p,
                    None => devstack::server_port()?,
                },
                log_file: data_dir.join("logs/postgres.log"),
                ephemeral: false,
            };
            println!("starting a private Postgres cluster on 127.0.0.1:{} ...", config.port);
            let cluster = match args.postgres_port {
                Some(_) => PostgresCluster::spawn(&config)?,
                None => PostgresCluster::spawn_on_free_port(&mut config)?,
            };
            if let Some(why) = &cluster.relocated_because {
                println!("  its files are in {} ({why})", cluster.location.display());
            }
            devstack::ensure_database(&cluster.url("postgres"), "taskfactory").await?;
            let url = cluster.url("taskfactory");
            (Some(cluster), url)
        }
    };
    let store = Store::connect(&database_url, 20).await.context("connecting to Postgres")?;
    store.migrate().await.context("applying migrations")?;
    let client = crate::temporal::wait_ready(&temporal_server.address, "default", Duration::from_secs(60)).await?;

    // `sql` sources run as a read-only role of their own, never as the store's user.
    let mut context = ContextClients::default();
    if let Some(connection) = crate::context_role::dev_connection(store.pool(), &database_url).await {
        context = context.with_connection(connection);
    }
    // On a developer's machine the services tasks call are usually local.
    context.egress.allow_private = true;
    // Secrets: TF_SECRET_<NAME> variables and the files of <data dir>/secrets.
    context.secrets =
        SecretStore::new(SecretStore::values_from_env(std::env::vars()), Some(args.data_dir.join("secrets")));

    // Applied before the API is built, whose start-up reconcile then creates their schedules.
    let applied = if args.no_examples || !args.examples.exists() {
        Vec::new()
    } else {
        println!("applying definitions from {} ...", args.examples.display());
        apply_examples(&store, &args.examples).await?
    };
    let mut api_config =
        ApiConfig::new(client.clone(), store.clone(), args.task_queue.clone(), context.clone(), args.api_addr);
    api_config.temporal_ui_url = temporal_server.ui_url.clone();
    api_config.background.run_retention = args.run_retention.default_keep();
    api_config.background.receipt_retention = args.run_retention.receipts_keep();
    let api = ApiProcess::build(api_config, shutdown.clone()).await?;
    let mut worker_config = WorkerConfig::new(client, args.task_queue.clone(), store.clone(), context);
    // Notifications link to this process's UI.
    worker_config.activity_config.public_url = format!("http://{}", args.api_addr);
    let worker = WorkerProcess::build(worker_config, None).await?;
    let (_, admin_key) =
        store.create_key("taskfactory dev", Role::Admin, None).await.context("creating the dev admin key")?;
    let example =
        applied.iter().find(|id| id.as_str() == "hello-fanout").or(applied.first()).map_or("<id>", String::as_str);
    println!();
    println!("taskfactory is running");
    println!("  UI:               http://{}/", args.api_addr);
    println!("  API:              http://{}/api/v1", args.api_addr);
    println!("  metrics:          http://{}/metrics  (worker and API)", args.api_addr);
    println!(
        "  Temporal Web UI:  {}  (filter runs with: TfDefinitionId = \"{example}\")",
        temporal_server.ui_url.as_deref().unwrap_or("-")
    );
    println!("  Temporal address: {}", temporal_server.address);
    println!("  Postgres:         {database_url}");
    if let Some(cluster) = postgres.as_ref().filter(|c| c.relocated_because.is_some()) {
        println!("  Postgres files:   {}", cluster.location.display());
    }
    println!("  logs:             {}", logs.display());
    println!("  admin API key:    {admin_key}");
    println!();
    println!("try it, in another terminal:");
    for line in try_commands(&admin_key, args.api_addr, example) {
        println!("  {line}");
    }
    println!("Ctrl-C stops everything.");

    let api = tokio::spawn(api.run());
    let running = worker.run(shutdown.clone());
    tokio::pin!(running);
    let result = tokio::select! {
        result = &mut running => result,
        () = shutdown.cancelled() => {
            println!("stopping ...");
            running.await
        }
    };
    // The worker may also have ended on its own (an error): the API stops with it.
    shutdown.cancel();
    match api.await {
        Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "API stopped with an error"),
        Err(e) => tracing::warn!(error = %e, "API task failed"),
        Ok(Ok(())) => {}
    }
    drop(postgres);
    drop(temporal_server);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_examples_are_valid_definitions() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut tagged = Vec::new();
        for file in definition_files(&dir).unwrap() {
            let text = std::fs::read_to_string(&file).unwrap();
            let format = if is_yaml(&file) { Format::Yaml } else { Format::Json };
            let definition = parse_definition_text(&text, format).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if definition.tags.iter().any(|t| t == "nightly") {
                tagged.push(definition.id.to_string());
            }
        }
        assert_eq!(tagged, ["nightly-digest"], "the fleet example in wiki/operations.md pauses it by tag");
    }
}
