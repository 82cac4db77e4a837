//! `taskfactory bench`: throughput and latency figures, measured against a Temporal dev server
//! and a Postgres cluster it starts itself (like `taskfactory dev`), printed as JSON (stdout)
//! and as a table (stderr). Every figure carries the command that reproduces it.
//!
//! - `fanout`: one run of N noop tasks in each execution mode (wall time from the trigger to
//!   the run's end, tasks/s, peak RSS of the worker process), next to two floors with no
//!   taskfactory at all ([`floor`]): N trivial activities in batch workflows of 250, and N
//!   bare child workflows with one activity each; each on a fresh worker process; the ratios;
//!   with `--top-level`, the child floor's leaves started as top-level workflows;
//! - `http`: one run of N `http` tasks against a server in this process, in each execution
//!   mode;
//! - `ingress`: events/s and request latency for events with 50% duplicate dedupe keys, and
//!   the runs started (must equal the distinct keys);
//! - `trace`: run-log appends per second at batch sizes 1 and 100;
//! - `read`: latency of run detail and of an events page on a run with many events;
//! - `schedule`: from a schedule slot to the run's first task recorded as started;
//! - `retention`: pruning half of a run log of millions of events, and the read API meanwhile.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use taskfactory_activities::Store;
use taskfactory_activities::context::ContextClients;
use taskfactory_activities::store::RunFilter;
use taskfactory_api::Background;
use taskfactory_orchestrator::RunActivityWorkflow;
use taskfactory_schemas::events::{EventType, Level, NewTraceEvent};
use taskfactory_schemas::ids::DefinitionId;
use taskfactory_schemas::run::{RunTrigger, TriggerInfo};
use temporalio_client::{Client, WorkflowCountOptions, WorkflowGetResultOptions, WorkflowStartOptions};
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

use crate::devstack::{self, PostgresCluster, PostgresConfig, TemporalConfig, TemporalDevServer};
use crate::startup::{ApiConfig, ApiProcess, EventRate};

mod fanout;
pub mod floor;
mod http;
mod ingress;
mod retention;
mod runlog;
mod schedule;

use floor::{ActivityFloorInput, FloorActivitiesWorkflow, FloorChildWorkflow, FloorInput, FloorWorkflow};

/// What to measure.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Fan-out sizes (tasks per run).
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    pub sizes: Vec<u64>,
    /// Runs per fan-out size up to 1,000 tasks (the series alternate; medians are reported).
    /// Larger sizes run once; workflow mode and the child floor run up to 2,000 tasks.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Measure taskfactory's fan-out only, without the floors.
    #[arg(long)]
    pub skip_floor: bool,
    /// Skip workflow mode and the child floor (they take about ten times as long): for tuning
    /// activity mode against the activity floor.
    #[arg(long)]
    pub skip_workflow_mode: bool,
    /// Activities per batch workflow of the activity floors (default 250, taskfactory's batch).
    #[arg(long, default_value_t = 250)]
    pub floor_batch: u64,
    /// Also time the activity floor with local activities (no activity task through the
    /// server): the alternative for fan-outs the remote floor cannot run fast enough.
    #[arg(long)]
    pub floor_local: bool,
    /// Also time taskfactory in `local` execution mode (noop tasks as local activities of
    /// their batches).
    #[arg(long)]
    pub local_mode: bool,
    /// Also time the floor's leaf workflows started as top-level workflows by the client
    /// (no parent): what tasks that are not child workflows would cost the server.
    #[arg(long)]
    pub top_level: bool,
    /// Tasks of the `http` fan-out (each a GET to a server in the bench process).
    #[arg(long, default_value_t = 1_000)]
    pub http_tasks: u64,
    /// Events sent to the ingress (half of them repeat a dedupe key).
    #[arg(long, default_value_t = 10_000)]
    pub events: usize,
    /// Concurrent clients sending events and reading the API.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The most the ingress API's event starter waits, per pass, for a busy ingress (`0s`:
    /// starts share the machine with acceptance): how the trade-off is measured.
    #[arg(long, default_value = "5s", value_parser = taskfactory_schemas::duration::parse_duration)]
    pub starter_yield: Duration,
    /// Trace events appended per batch size.
    #[arg(long, default_value_t = 10_000)]
    pub trace_events: usize,
    /// Events in the run the read API is measured on.
    #[arg(long, default_value_t = 100_000)]
    pub read_events: usize,
    /// Events in the run log the retention benchmark fills (and prunes half of).
    #[arg(long, default_value_t = 5_000_000)]
    pub retention_events: usize,
    /// Finished runs the retention benchmark spreads those events over, ten a day.
    #[arg(long, default_value_t = 100)]
    pub retention_runs: usize,
    /// Definitions firing every minute for the schedule latency (0 skips it).
    #[arg(long, default_value_t = 10)]
    pub schedules: usize,
    /// Minutes of schedule fires to wait for.
    #[arg(long, default_value_t = 2)]
    pub schedule_minutes: u32,
    /// Only these parts: fanout, http, ingress, trace, read, schedule, retention (default: all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Keep the dev server's state in a SQLite file (default: in memory, the faster store).
    #[arg(long)]
    pub temporal_db_file: bool,
    /// Also write the JSON report here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A dev-server dynamic config value, `KEY=VALUE` (repeat it), e.g.
    /// `history.shardIOConcurrency=4`: how server settings are measured.
    #[arg(long = "temporal-dynamic-config")]
    pub temporal_dynamic_config: Vec<String>,
    /// An argument for the taskfactory worker processes (repeat it), e.g.
    /// `--worker-arg=--eager-activities=10`: how tuning is measured.
    #[arg(long = "worker-arg", allow_hyphen_values = true)]
    pub worker_args: Vec<String>,
    /// The `temporal` CLI (default: from PATH).
    #[arg(long, env = "TEMPORAL_BIN")]
    pub temporal_bin: Option<PathBuf>,
    /// PostgreSQL server binaries (default: found like `taskfactory dev` does).
    #[arg(long, env = "PG_BIN")]
    pub pg_bin: Option<PathBuf>,
}

impl BenchArgs {
    fn wants(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

/// The servers, the in-process API and what the parts share.
struct Bench {
    client: Client,
    store: Store,
    database_url: String,
    temporal_address: String,
    api: String,
    http: reqwest::Client,
    /// Extra arguments of the taskfactory worker processes.
    worker_args: Vec<String>,
    /// Stops the in-process APIs (before the servers they talk to).
    shutdown: CancellationToken,
    _servers: (TemporalDevServer, PostgresCluster),
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Runs the benchmark and prints the report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let root = std::env::temp_dir().join(format!("taskfactory-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;
    let result = run_in(&args, &root).await;
    let _ = std::fs::remove_dir_all(&root);
    let report = result?;
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

async fn run_in(args: &BenchArgs, root: &std::path::Path) -> anyhow::Result<Value> {
    let bench = Bench::start(args, root).await?;
    let mut report = json!({
        "machine": machine(),
        "temporal_store": if args.temporal_db_file { "dev server, SQLite file" } else { "dev server, in memory" },
        "postgres": "private cluster, default durability (fsync on)",
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
    });
    if args.wants("fanout") {
        report["fanout"] = bench.fanout(args).await?;
    }
    if args.wants("http") {
        report["http_fanout"] = bench.http_fanout(args.http_tasks, args.repeat).await?;
    }
    if args.wants("ingress") {
        report["ingress"] = bench.ingress(args.events, args.concurrency, args.starter_yield).await?;
    }
    if args.wants("trace") {
        report["trace_writes"] = bench.trace_writes(args.trace_events).await?;
    }
    if args.wants("read") {
        report["read_api"] = bench.read_api(args.read_events).await?;
    }
    if args.wants("schedule") && args.schedules > 0 && args.schedule_minutes > 0 {
        report["schedule"] = bench.schedule_latency(args.schedules, args.schedule_minutes).await?;
    }
    if args.wants("retention") {
        report["retention"] = bench.retention(args.retention_events, args.retention_runs).await?;
    }
    Ok(report)
}

fn machine() -> Value {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    json!({"cpus": cpus, "cpu": model, "memory_gib": (memory_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0})
}

/// `p` in 0..=1 of sorted samples, in milliseconds.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    round2(sorted[rank - 1].as_secs_f64() * 1000.0)
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn max(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, f64::max)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn latency(mut samples: Vec<Duration>) -> Value {
    samples.sort();
    json!({"samples": samples.len(), "p50_ms": percentile_ms(&samples, 0.5), "p99_ms": percentile_ms(&samples, 0.99), "max_ms": percentile_ms(&samples, 1.0)})
}

/// Which worker a [`WorkerProcess`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WorkerKind {
    /// `taskfactory worker`, with its own tuning.
    Taskfactory,
    /// `taskfactory bench-floor-worker`: the floor's workflows only, with the SDK's defaults
    /// (five workflow pollers, a fifth of them non-sticky; five activity pollers; a cache of
    /// 1,000 workflows).
    Floor,
}

/// A worker process of its own, so its peak RSS is the worker's alone.
struct WorkerProcess {
    child: tokio::process::Child,
}

impl WorkerProcess {
    async fn start(bench: &Bench, task_queue: &str, kind: WorkerKind) -> anyhow::Result<Self> {
        Self::start_with(bench, task_queue, kind, &[]).await
    }

    /// [`Self::start`] with extra arguments for a taskfactory worker.
    async fn start_with(bench: &Bench, task_queue: &str, kind: WorkerKind, extra: &[&str]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the taskfactory binary")?;
        let mut command = tokio::process::Command::new(exe);
        match kind {
            WorkerKind::Taskfactory => command
                .args(["worker", "--temporal-address", &bench.temporal_address, "--task-queue", task_queue])
                .args(["--database-url", &bench.database_url])
                .args(&bench.worker_args)
                .args(extra),
            WorkerKind::Floor => command.args([
                "bench-floor-worker",
                "--temporal-address",
                &bench.temporal_address,
                "--task-queue",
                task_queue,
            ]),
        };
        let mut child = command
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting a worker process")?;
        let mut lines = tokio::io::BufReader::new(child.stderr.take().context("worker stderr")?).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if line.contains("worker running") {
                    return Ok(());
                }
            }
            bail!("the worker exited before it ran")
        });
        ready.await.context("the worker did not start within 60 s")??;
        // Keep draining its log, or a full pipe would stall it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child })
    }

    /// The process's peak resident set (VmHWM), in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let kib = self
            .child
            .id()
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        round2(kib / 1024.0)
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

impl Bench {
    async fn start(args: &BenchArgs, root: &std::path::Path) -> anyhow::Result<Self> {
        eprintln!("starting a Temporal dev server and Postgres ...");
        // Ports as in `taskfactory dev` and the test harness: explicit, outside the kernel's
        // ephemeral range, redrawn when taken (see devstack::ports).
        let mut temporal_config = TemporalConfig::on_free_ports(
            devstack::find_temporal(args.temporal_bin.as_deref())?,
            root.join("temporal.log"),
        )?;
        temporal_config.db_file = args.temporal_db_file.then(|| root.join("temporal.db"));
        temporal_config.dynamic_config = args.temporal_dynamic_config.clone();
        let temporal = TemporalDevServer::spawn_retrying(&mut temporal_config, TemporalConfig::repick_ports)?;
        let postgres = PostgresCluster::spawn_on_free_port(&mut PostgresConfig {
            bin_dir: devstack::find_pg_bin(args.pg_bin.as_deref())?,
            data_dir: root.join("postgres"),
            port: devstack::server_port()?,
            log_file: root.join("postgres.log"),
            ephemeral: false,
        })?;
        devstack::ensure_database(&postgres.url("postgres"), "bench").await?;
        let database_url = postgres.url("bench");
        let store = Store::connect(&database_url, 40).await?;
        store.migrate().await?;
        let client = crate::temporal::wait_ready(&temporal.address, "default", Duration::from_secs(60)).await?;
        crate::temporal::register_search_attributes(&client, "default").await?;

        let (_, key) = store.create_key("bench", taskfactory_activities::auth_store::Role::Admin, None).await?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {key}").parse()?);
        let http = reqwest::Client::builder().default_headers(headers).pool_max_idle_per_host(256).build()?;
        // The API runs in this process; its runs start on `bench`, its event runs on
        // `bench-ingress` (no worker polls that queue: ingress is measured alone).
        let shutdown = CancellationToken::new();
        let api = Self::serve_api(&store, &client, "bench", Background::default().starter_yield, &shutdown).await?;
        Ok(Self {
            client,
            store,
            database_url,
            temporal_address: temporal.address.clone(),
            api,
            http,
            worker_args: args.worker_args.clone(),
            shutdown,
            _servers: (temporal, postgres),
        })
    }

    /// An API in this process (event ingress unthrottled, no schedule observer), until the
    /// bench ends.
    async fn serve_api(
        store: &Store,
        client: &Client,
        task_queue: &str,
        starter_yield: Duration,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<String> {
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let mut config =
            ApiConfig::new(client.clone(), store.clone(), task_queue.to_owned(), ContextClients::default(), listen);
        config.background = Background {
            observe_every: None,
            decision_retention: None,
            reconcile_every: None,
            prune_every: None,
            run_retention: None,
            starter_yield,
            receipt_retention: None,
        };
        config.reconcile_at_startup = false;
        config.event_rate = Some(EventRate { per_second: 1e9, burst: 1e9 });
        let api = ApiProcess::build(config, shutdown.clone()).await?;
        let url = api.url()?;
        tokio::spawn(api.run());
        Ok(url)
    }

    async fn put(&self, api: &str, definition: &Value) -> anyhow::Result<()> {
        let id = definition["id"].as_str().context("definition id")?;
        let response = self.http.put(format!("{api}/api/v1/definitions/{id}")).json(definition).send().await?;
        if !response.status().is_success() {
            bail!("saving {id}: {} {}", response.status(), response.text().await.unwrap_or_default());
        }
        Ok(())
    }
}
