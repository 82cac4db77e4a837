//! `taskfactory bench`: throughput and latency figures, measured against a Temporal dev server
//! and a Postgres cluster it starts itself (like `taskfactory dev`), printed as JSON (stdout)
//! and as a table (stderr). Every figure carries the command that reproduces it.
//!
//! - `fanout`: one run of N noop tasks (wall time from the trigger to the run's end, tasks/s,
//!   peak RSS of the worker process), next to the *floor*: N bare child workflows with one
//!   trivial remote activity each, no taskfactory at all ([`floor`]),
//!   on an identical fresh worker process; the ratio taskfactory/floor; with `--top-level`,
//!   the floor's leaves started as top-level workflows (what non-child tasks could save);
//! - `ingress`: events/s and request latency for events with 50% duplicate dedupe keys, and
//!   the runs started (must equal the distinct keys);
//! - `trace`: run-log appends per second at batch sizes 1 and 100;
//! - `read`: latency of run detail and of an events page on a run with many events;
//! - `schedule`: from a schedule slot to the run's first task recorded as started.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use taskfactory_activities::Store;
use taskfactory_activities::context::ContextClients;
use taskfactory_activities::store::RunFilter;
use taskfactory_api::ApiState;
use taskfactory_orchestrator::RunActivityWorkflow;
use taskfactory_schemas::events::{EventType, Level, NewTraceEvent};
use taskfactory_schemas::ids::DefinitionId;
use taskfactory_schemas::run::{RunTrigger, TriggerInfo};
use temporalio_client::{Client, WorkflowCountOptions, WorkflowGetResultOptions, WorkflowStartOptions};
use tokio::io::AsyncBufReadExt;

use crate::devstack::{self, PostgresCluster, PostgresConfig, TemporalConfig, TemporalDevServer};

pub mod floor;

use floor::{FloorChildWorkflow, FloorInput, FloorWorkflow};

/// What to measure.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Fan-out sizes (tasks per run).
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    pub sizes: Vec<u64>,
    /// Runs per fan-out size up to 1,000 tasks (taskfactory and floor alternate; medians are
    /// reported). Larger sizes run once.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Measure taskfactory's fan-out only, without the floor.
    #[arg(long)]
    pub skip_floor: bool,
    /// Also time the floor's leaf workflows started as top-level workflows by the client
    /// (no parent): what tasks that are not child workflows would cost the server.
    #[arg(long)]
    pub top_level: bool,
    /// Events sent to the ingress (half of them repeat a dedupe key).
    #[arg(long, default_value_t = 10_000)]
    pub events: usize,
    /// Concurrent clients sending events and reading the API.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Trace events appended per batch size.
    #[arg(long, default_value_t = 10_000)]
    pub trace_events: usize,
    /// Events in the run the read API is measured on.
    #[arg(long, default_value_t = 100_000)]
    pub read_events: usize,
    /// Definitions firing every minute for the schedule latency (0 skips it).
    #[arg(long, default_value_t = 10)]
    pub schedules: usize,
    /// Minutes of schedule fires to wait for.
    #[arg(long, default_value_t = 2)]
    pub schedule_minutes: u32,
    /// Only these parts: fanout, ingress, trace, read, schedule (default: all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Keep the dev server's state in a SQLite file (default: in memory, the faster store).
    #[arg(long)]
    pub temporal_db_file: bool,
    /// Also write the JSON report here.
    #[arg(long)]
    pub out: Option<PathBuf>,
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
    _servers: (TemporalDevServer, PostgresCluster),
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
        report["fanout"] = bench.fanout(&args.sizes, args.repeat, args.skip_floor, args.top_level).await?;
    }
    if args.wants("ingress") {
        report["ingress"] = bench.ingress(args.events, args.concurrency).await?;
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
        let exe = std::env::current_exe().context("finding the taskfactory binary")?;
        let mut command = tokio::process::Command::new(exe);
        match kind {
            WorkerKind::Taskfactory => command
                .args(["worker", "--temporal-address", &bench.temporal_address, "--task-queue", task_queue])
                .args(["--database-url", &bench.database_url]),
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
        let api = Self::serve_api(&store, &client, "bench").await?;
        Ok(Self {
            client,
            store,
            database_url,
            temporal_address: temporal.address.clone(),
            api,
            http,
            _servers: (temporal, postgres),
        })
    }

    async fn serve_api(store: &Store, client: &Client, task_queue: &str) -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = ApiState::new(store.clone(), client.clone(), task_queue.to_owned(), ContextClients::default())
            .with_event_rate(1e9, 1e9);
        tokio::spawn(taskfactory_api::serve(listener, state, std::future::pending()));
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

    // ---- fan-out and the floor ------------------------------------------------------------

    async fn fanout(&self, sizes: &[u64], repeat: usize, skip_floor: bool, top_level: bool) -> anyhow::Result<Value> {
        let mut rows = Vec::new();
        for &n in sizes {
            let rounds = if n <= 1_000 { repeat.max(1) } else { 1 };
            let (mut tf, mut floor, mut top) = (Vec::new(), Vec::new(), Vec::new());
            for round in 1..=rounds {
                eprintln!("fan-out of {n} ({round}/{rounds}): the floor (bare child workflows), then taskfactory ...");
                if !skip_floor {
                    floor.push(self.floor_run(n).await?);
                }
                tf.push(self.taskfactory_run(n).await?);
                if top_level {
                    top.push(self.top_level_run(n).await?);
                }
            }
            let (tf_wall, floor_wall) = (median(tf.iter().map(|r| r.0)), median(floor.iter().map(|r| r.0)));
            let (tf_rss, floor_rss) = (max(tf.iter().map(|r| r.1)), max(floor.iter().map(|r| r.1)));
            let ratio = round2(tf_wall / floor_wall);
            eprintln!(
                "  {n:>6} tasks: taskfactory {tf_wall:>7.2} s ({:>6.1} tasks/s, worker peak {tf_rss:>6.1} MiB) | floor {floor_wall:>7.2} s ({floor_rss:>6.1} MiB) | ratio {ratio} (medians of {rounds})",
                n as f64 / tf_wall
            );
            let walls = |runs: &[(f64, f64)]| runs.iter().map(|r| round2(r.0)).collect::<Vec<_>>();
            let mut row = json!({
                "tasks": n,
                "runs": rounds,
                "taskfactory": {"wall_s": round2(tf_wall), "tasks_per_s": round2(n as f64 / tf_wall), "peak_worker_rss_mib": tf_rss, "wall_s_each": walls(&tf)},
                "floor": {"wall_s": round2(floor_wall), "tasks_per_s": round2(n as f64 / floor_wall), "peak_worker_rss_mib": floor_rss, "wall_s_each": walls(&floor)},
                "ratio_taskfactory_to_floor": ratio,
                "command": format!("taskfactory bench --only fanout --sizes {n} --repeat {rounds}{}", if top_level { " --top-level" } else { "" }),
            });
            if top_level {
                let top_wall = median(top.iter().map(|r| r.0));
                eprintln!(
                    "         the floor's leaves as top-level workflows: {top_wall:>7.2} s, ratio to the floor {}",
                    round2(top_wall / floor_wall)
                );
                row["top_level_leaves"] = json!({"wall_s": round2(top_wall), "tasks_per_s": round2(n as f64 / top_wall), "wall_s_each": walls(&top), "ratio_to_floor": round2(top_wall / floor_wall)});
            }
            rows.push(row);
        }
        Ok(Value::Array(rows))
    }

    /// Wall seconds and the worker's peak RSS of a run of `n` noop tasks.
    async fn taskfactory_run(&self, n: u64) -> anyhow::Result<(f64, f64)> {
        let id = format!("bench-fanout-{n}-{}", uuid::Uuid::new_v4().simple().to_string().get(..6).unwrap_or("x"));
        let items: Vec<u64> = (0..n).collect();
        let definition = json!({"id": id, "name": format!("Fan-out of {n}"), "trigger": {"kind": "manual"},
            "context": [{"name": "items", "kind": "static", "value": items}],
            "tasks": [{"id": "t", "kind": "noop", "for_each": "items", "key": "{{ item }}"}]});
        self.put(&self.api, &definition).await?;
        let worker = WorkerProcess::start(self, "bench", WorkerKind::Taskfactory).await?;
        let started = Instant::now();
        let response =
            self.http.post(format!("{}/api/v1/definitions/{id}/runs", self.api)).json(&json!({})).send().await?;
        let answer: Value = response.json().await?;
        let workflow_id =
            answer["workflow_id"].as_str().with_context(|| format!("triggering {id}: {answer}"))?.to_owned();
        let handle = self.client.get_workflow_handle::<RunActivityWorkflow>(workflow_id.clone());
        handle.get_result(WorkflowGetResultOptions::default()).await.with_context(|| format!("run {workflow_id}"))?;
        let wall = started.elapsed().as_secs_f64();
        let rss = worker.peak_rss_mib();
        worker.stop().await;
        let run = self.store.get_run(&workflow_id).await?;
        if run.summary.tasks_completed != n as i64 {
            bail!("run {workflow_id} completed {} of {n} tasks", run.summary.tasks_completed);
        }
        // Where the time went, from the run log's own timestamps.
        let (first, last): (Option<chrono::DateTime<chrono::Utc>>, Option<chrono::DateTime<chrono::Utc>>) =
            sqlx::query_as("select min(started_at), max(finished_at) from task_runs where run_workflow_id = $1")
                .bind(&workflow_id)
                .fetch_one(self.store.pool())
                .await?;
        if let (Some(first), Some(last), Some(end)) = (first, last, run.summary.finished_at) {
            let ms = |d: chrono::TimeDelta| d.num_milliseconds();
            eprintln!(
                "  phases: trigger → first task {} ms, first task → last task done {} ms, last task → run recorded done {} ms",
                ms(first - run.summary.fired_at),
                ms(last - first),
                ms(end - last)
            );
        }
        Ok((wall, rss))
    }

    /// Wall seconds and the worker's peak RSS of the floor for `n` children.
    async fn floor_run(&self, n: u64) -> anyhow::Result<(f64, f64)> {
        let task_queue = format!("bench-floor-{n}");
        let worker = WorkerProcess::start(self, &task_queue, WorkerKind::Floor).await?;
        let id = format!("bench-floor-{n}-{}", uuid::Uuid::new_v4().simple());
        let started = Instant::now();
        let handle = self
            .client
            .start_workflow(
                FloorWorkflow::run,
                FloorInput { id_prefix: id.clone(), children: n },
                WorkflowStartOptions::new(task_queue, id.clone()).build(),
            )
            .await?;
        let done =
            handle.get_result(WorkflowGetResultOptions::default()).await.with_context(|| format!("floor {id}"))?;
        let wall = started.elapsed().as_secs_f64();
        let rss = worker.peak_rss_mib();
        worker.stop().await;
        if done != n {
            bail!("the floor completed {done} of {n} children");
        }
        Ok((wall, rss))
    }

    /// Wall seconds of the floor's `n` leaf workflows started by the client, with no parent:
    /// all started (100 at a time), then all awaited.
    async fn top_level_run(&self, n: u64) -> anyhow::Result<(f64, f64)> {
        use futures::StreamExt;
        let task_queue = format!("bench-top-{n}");
        let worker = WorkerProcess::start(self, &task_queue, WorkerKind::Floor).await?;
        let prefix = format!("bench-top-{n}-{}", uuid::Uuid::new_v4().simple());
        let started = Instant::now();
        let handles: Vec<_> = futures::stream::iter(0..n)
            .map(|i| {
                let options = WorkflowStartOptions::new(task_queue.clone(), format!("{prefix}/{i}")).build();
                self.client.start_workflow(FloorChildWorkflow::run, i, options)
            })
            .buffer_unordered(100)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let done = futures::stream::iter(handles)
            .map(|h| async move { h.get_result(WorkflowGetResultOptions::default()).await })
            .buffer_unordered(200)
            .filter(|r| std::future::ready(r.is_ok()))
            .count()
            .await;
        let wall = started.elapsed().as_secs_f64();
        let rss = worker.peak_rss_mib();
        worker.stop().await;
        if done as u64 != n {
            bail!("{done} of {n} top-level leaves completed");
        }
        Ok((wall, rss))
    }

    // ---- event ingress -----------------------------------------------------------------------

    async fn ingress(&self, events: usize, concurrency: usize) -> anyhow::Result<Value> {
        let api = Self::serve_api(&self.store, &self.client, "bench-ingress").await?;
        let id = "bench-ingress";
        let definition = json!({"id": id, "name": "Ingress", "trigger": {"kind": "event", "event_type": "bench.pushed"},
            "tasks": [{"id": "t", "kind": "noop"}]});
        self.put(&api, &definition).await?;
        let distinct = events.div_ceil(2);
        eprintln!("ingress: {events} events, {distinct} distinct keys, {concurrency} concurrent clients ...");
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let clients = (0..concurrency).map(|_| {
            let (next, http, api) = (next.clone(), self.http.clone(), api.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut started_runs = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= events {
                        return Ok::<_, anyhow::Error>((samples, started_runs));
                    }
                    // Every key twice: event i and event i + distinct share key i.
                    let key = format!("push-{}", i % distinct);
                    let at = Instant::now();
                    let response = http
                        .post(format!("{api}/api/v1/events"))
                        .json(&json!({"type": "bench.pushed", "key": key, "payload": {"n": i}}))
                        .send()
                        .await?;
                    let status = response.status();
                    let body = response.text().await?;
                    samples.push(at.elapsed());
                    if !status.is_success() {
                        bail!("event {i}: {status} {body}");
                    }
                    started_runs += body.matches("\"outcome\":\"started\"").count();
                }
            })
        });
        let mut samples = Vec::with_capacity(events);
        let mut started_runs = 0;
        for client in futures::future::join_all(clients).await {
            let (s, n) = client??;
            samples.extend(s);
            started_runs += n;
        }
        let wall = started.elapsed().as_secs_f64();
        let query = format!("TfDefinitionId = '{id}' AND TfKind = 'run'");
        let visible = self.wait_for_count(&query, distinct).await?;
        let receipts: i64 = sqlx::query_scalar("select count(*) from event_receipts where definition_id = $1")
            .bind(id)
            .fetch_one(self.store.pool())
            .await?;
        let report = json!({
            "events": events, "distinct_keys": distinct, "concurrency": concurrency,
            "events_per_s": round2(events as f64 / wall), "latency": latency(samples),
            "runs_started_per_answers": started_runs, "run_workflows_in_temporal": visible, "receipts": receipts,
            "runs_equal_distinct_keys": started_runs == distinct && visible == distinct && receipts == distinct as i64,
            "command": format!("taskfactory bench --only ingress --events {events} --concurrency {concurrency}"),
        });
        eprintln!(
            "  {:.0} events/s, p50 {} ms, p99 {} ms; runs started {started_runs} (Temporal counts {visible}) for {distinct} keys",
            report["events_per_s"].as_f64().unwrap_or(0.0),
            report["latency"]["p50_ms"],
            report["latency"]["p99_ms"]
        );
        Ok(report)
    }

    /// Waits (at most 60 s) for visibility to count `expected`; answers the last count.
    async fn wait_for_count(&self, query: &str, expected: usize) -> anyhow::Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let count = self.client.count_workflows(query, WorkflowCountOptions::default()).await?.count();
            if count >= expected || Instant::now() > deadline {
                return Ok(count);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // ---- run log writes and reads ------------------------------------------------------------

    /// A run row to append events to.
    async fn bare_run(&self, name: &str) -> anyhow::Result<String> {
        let definition =
            json!({"id": name, "name": name, "trigger": {"kind": "manual"}, "tasks": [{"id": "t", "kind": "noop"}]});
        self.put(&self.api, &definition).await?;
        let workflow_id = format!("tf:{name}:manual:{}", uuid::Uuid::new_v4().simple());
        let trigger =
            TriggerInfo { kind: RunTrigger::Manual, key: None, event: None, payload: Value::Null, scheduled_for: None };
        let definition_id = DefinitionId::parse(name).map_err(anyhow::Error::msg)?;
        self.store.start_run(&workflow_id, "bench", &definition_id, &trigger).await?;
        Ok(workflow_id)
    }

    async fn append(&self, run: &str, from: usize, count: usize) -> anyhow::Result<()> {
        let events: Vec<NewTraceEvent> = (from..from + count)
            .map(|i| NewTraceEvent {
                key: format!("bench:{i}"),
                event_type: EventType::NodeLog,
                node_id: Some(format!("job:{}", i % 100)),
                level: Level::Info,
                message: Some(format!("progress {i}")),
                payload: json!({"i": i}),
            })
            .collect();
        let written = self.store.append_external(run, &events).await?;
        if written != count {
            bail!("appended {written} of {count} events");
        }
        Ok(())
    }

    async fn trace_writes(&self, total: usize) -> anyhow::Result<Value> {
        let mut rows = Vec::new();
        for batch in [1usize, 100] {
            eprintln!("trace writes: {total} events in batches of {batch} ...");
            let run = self.bare_run(&format!("bench-trace-{batch}")).await?;
            let started = Instant::now();
            let mut written = 0;
            while written < total {
                let count = batch.min(total - written);
                self.append(&run, written, count).await?;
                written += count;
            }
            let wall = started.elapsed().as_secs_f64();
            eprintln!("  batch {batch:>3}: {:.0} events/s", total as f64 / wall);
            rows.push(json!({"batch": batch, "events": total, "events_per_s": round2(total as f64 / wall),
                "command": format!("taskfactory bench --only trace --trace-events {total}")}));
        }
        Ok(Value::Array(rows))
    }

    async fn read_api(&self, events: usize) -> anyhow::Result<Value> {
        eprintln!("read API: filling a run with {events} events ...");
        let run = self.bare_run("bench-read").await?;
        let mut written = 0;
        while written < events {
            let count = 1_000.min(events - written);
            self.append(&run, written, count).await?;
            written += count;
        }
        let requests = 200usize;
        let mut detail = Vec::with_capacity(requests);
        let mut pages = Vec::with_capacity(requests);
        for i in 0..requests {
            let at = Instant::now();
            let response = self.http.get(format!("{}/api/v1/runs/{run}", self.api)).send().await?;
            if !response.status().is_success() {
                bail!("run detail: {}", response.status());
            }
            response.bytes().await?;
            detail.push(at.elapsed());
            // Pages spread evenly over the whole log.
            let after = (i * events) / requests;
            let at = Instant::now();
            let response =
                self.http.get(format!("{}/api/v1/runs/{run}/events?after={after}&limit=100", self.api)).send().await?;
            if !response.status().is_success() {
                bail!("events page: {}", response.status());
            }
            let page: Value = response.json().await?;
            pages.push(at.elapsed());
            if page["events"].as_array().map_or(0, Vec::len) == 0 {
                bail!("an empty events page after {after}");
            }
        }
        let report = json!({"run_events": events, "requests": requests, "run_detail": latency(detail), "events_page_100": latency(pages),
            "command": format!("taskfactory bench --only read --read-events {events}")});
        eprintln!(
            "  run detail p50 {} ms p99 {} ms; events page p50 {} ms p99 {} ms",
            report["run_detail"]["p50_ms"],
            report["run_detail"]["p99_ms"],
            report["events_page_100"]["p50_ms"],
            report["events_page_100"]["p99_ms"]
        );
        Ok(report)
    }

    // ---- schedules ---------------------------------------------------------------------------

    async fn schedule_latency(&self, definitions: usize, minutes: u32) -> anyhow::Result<Value> {
        eprintln!("schedule latency: {definitions} definitions firing every minute, {minutes} minute(s) ...");
        let worker = WorkerProcess::start(self, "bench", WorkerKind::Taskfactory).await?;
        let ids: Vec<String> = (0..definitions).map(|i| format!("bench-cron-{i}")).collect();
        for id in &ids {
            let definition = json!({"id": id, "name": id, "trigger": {"kind": "cron", "cron": ["* * * * *"]}, "tasks": [{"id": "t", "kind": "noop"}]});
            self.put(&self.api, &definition).await?;
        }
        let wanted = definitions * minutes as usize;
        let deadline = Instant::now() + Duration::from_secs(60 * (u64::from(minutes) + 2));
        let mut samples = Vec::new();
        while samples.len() < wanted {
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            samples = self.schedule_samples(&ids).await?;
        }
        worker.stop().await;
        for id in &ids {
            let _ = self.http.delete(format!("{}/api/v1/definitions/{id}", self.api)).send().await;
        }
        if samples.len() < wanted {
            bail!("only {} of {wanted} scheduled runs started a task in time", samples.len());
        }
        let report = json!({"definitions": definitions, "minutes": minutes, "slot_to_first_task_started": latency(samples),
            "command": format!("taskfactory bench --only schedule --schedules {definitions} --schedule-minutes {minutes}")});
        eprintln!(
            "  slot → first task started: p50 {} ms, p99 {} ms",
            report["slot_to_first_task_started"]["p50_ms"], report["slot_to_first_task_started"]["p99_ms"]
        );
        Ok(report)
    }

    /// Slot → first task started, for every scheduled run of `ids` whose task has started.
    async fn schedule_samples(&self, ids: &[String]) -> anyhow::Result<Vec<Duration>> {
        let mut samples = Vec::new();
        for id in ids {
            let filter = RunFilter { definition_id: Some(id.clone()), limit: 100, ..RunFilter::default() };
            for run in self.store.list_runs(&filter).await? {
                let detail = self.store.get_run(&run.workflow_id).await?;
                let first = detail.tasks.iter().filter_map(|t| t.started_at).min();
                if let (Some(slot), Some(first)) = (detail.scheduled_for, first) {
                    samples.push((first - slot).to_std().unwrap_or_default());
                }
            }
        }
        Ok(samples)
    }
}
