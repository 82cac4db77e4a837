//! The test harness: one Temporal dev server and one Postgres cluster per test binary, started
//! here from the machine's binaries; per test a fresh database, its own task queue, a worker
//! and an API on port 0. Nothing is mocked, and a server that cannot start fails the test.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use taskfactory::devstack::{self, PostgresCluster, PostgresConfig, TemporalConfig, TemporalDevServer};
use taskfactory::startup::{ApiConfig, ApiProcess, WorkerConfig, WorkerProcess};
use taskfactory_activities::Store;
use taskfactory_activities::auth_store::Role;
use taskfactory_activities::context::ContextClients;
use taskfactory_activities::secrets::SecretStore;
use taskfactory_activities::sql_access::{DEFAULT_CONNECTION, SqlConnection};
use taskfactory_api::Background;
use taskfactory_orchestrator::RunActivityWorkflow;
use temporalio_client::{Client, WorkflowCountOptions, WorkflowGetResultOptions};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Addresses of the shared servers.
pub struct Servers {
    pub temporal_address: String,
    pub postgres_port: u16,
}

static SERVERS: OnceLock<Servers> = OnceLock::new();
static SEARCH_ATTRIBUTES: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Removes data dirs of earlier test binaries that are gone.
fn sweep_stale_dirs(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("taskfactory-e2e-").and_then(|p| p.parse::<u32>().ok())
            && !PathBuf::from(format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// How the suite runs a Temporal dev server and a Postgres cluster whose files live in `root`;
/// with `temporal_db_file` the dev server keeps its state in a SQLite file (it survives a
/// restart), else in memory.
pub fn server_configs(
    root: &std::path::Path,
    temporal_db_file: bool,
) -> anyhow::Result<(TemporalConfig, PostgresConfig)> {
    std::fs::create_dir_all(root)?;
    // Every port explicit and drawn outside the kernel's ephemeral range, where the dev
    // server's own random picks and port-0 listeners never land (see devstack::ports).
    let mut temporal = TemporalConfig::on_free_ports(
        devstack::find_temporal(std::env::var_os("TEMPORAL_BIN").map(PathBuf::from).as_deref())?,
        root.join("temporal.log"),
    )?;
    // In memory unless asked: the suite measures correctness, and memory is the faster store.
    temporal.db_file = temporal_db_file.then(|| root.join("temporal.db"));
    // Search attributes are registered through the operator API in `TestApp::spawn_on`, the
    // path `taskfactory setup` takes on a real cluster, so every run of the suite exercises it.
    let postgres = PostgresConfig {
        bin_dir: devstack::find_pg_bin(std::env::var_os("PG_BIN").map(PathBuf::from).as_deref())?,
        data_dir: root.join("postgres"),
        port: devstack::server_port()?,
        log_file: root.join("postgres.log"),
        ephemeral: true,
    };
    Ok((temporal, postgres))
}

/// Where this process's servers keep their files.
pub fn scratch_root() -> PathBuf {
    std::env::temp_dir().join(format!("taskfactory-e2e-{}", std::process::id()))
}

fn start_servers() -> anyhow::Result<(TemporalDevServer, PostgresCluster)> {
    sweep_stale_dirs(&std::env::temp_dir());
    let (mut temporal, mut postgres) = server_configs(&scratch_root(), false)?;
    Ok((
        TemporalDevServer::spawn_retrying(&mut temporal, TemporalConfig::repick_ports)?,
        PostgresCluster::spawn_on_free_port(&mut postgres)?,
    ))
}

/// The shared servers, started on first use by a thread that lives as long as the process
/// (the servers die with it, through PR_SET_PDEATHSIG).
pub fn servers() -> &'static Servers {
    SERVERS.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("e2e-servers".into())
            .spawn(move || match start_servers() {
                Ok((temporal, postgres)) => {
                    let _ = tx
                        .send(Ok(Servers { temporal_address: temporal.address.clone(), postgres_port: postgres.port }));
                    let _keep = (temporal, postgres);
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("{e:#}")));
                }
            })
            .expect("spawning the server thread");
        match rx.recv().expect("the server thread died") {
            Ok(servers) => servers,
            Err(e) => panic!("the test servers could not start: {e}"),
        }
    })
}

/// The value of the secret `API_TOKEN` every test's worker and API know.
pub const TEST_SECRET: &str = "e2e-S3CR3T-value-7Qx9";

/// Context clients of a test: its own database as the test's least-privilege role (see
/// [`TestApp::context_role`]), as the default SQL connection and as the named connection
/// `reporting`, and the secret `API_TOKEN`.
pub fn test_context(context_db: &PgConnectOptions) -> ContextClients {
    let pool = || sqlx::postgres::PgPoolOptions::new().max_connections(5).connect_lazy_with(context_db.clone());
    let mut clients = ContextClients::default()
        .with_connection(SqlConnection::new(DEFAULT_CONNECTION, pool(), false))
        .with_connection(SqlConnection::new("reporting", pool(), false));
    clients.secrets =
        SecretStore::new(std::collections::HashMap::from([("API_TOKEN".to_owned(), TEST_SECRET.to_owned())]), None);
    // The suite's HTTP services listen on loopback.
    clients.egress.allow_private = true;
    clients
}

/// The schema a test's context role reads (tables the test creates there are readable).
pub const CONTEXT_SCHEMA: &str = taskfactory::context_role::DEMO_SCHEMA;

/// A least-privilege role of the test's own for its `sql` sources: it reads the schema
/// [`CONTEXT_SCHEMA`] of the test's database and nothing else. Its name and how to connect.
async fn context_role_for(store: &Store, database_url: &str) -> (String, PgConnectOptions) {
    let role = taskfactory::context_role::ContextRole::new(format!("ctx_{}", unique()), CONTEXT_SCHEMA);
    taskfactory::context_role::ensure(store.pool(), &role).await.expect("creating the test's context role");
    let options = role.connect_options(&database_url.parse().expect("the test database URL"));
    (role.role, options)
}

/// A test's API: like production's, but on port 0, without the schedule observer (decision
/// logs are observed when read) and without the start-up reconcile.
fn test_api_config(client: &Client, store: &Store, task_queue: &str, context_db: &PgConnectOptions) -> ApiConfig {
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config =
        ApiConfig::new(client.clone(), store.clone(), task_queue.to_owned(), test_context(context_db), listen);
    // No run pruner: retention tests prune by calling the store, at the moment they choose.
    config.background = Background {
        observe_every: None,
        decision_retention: None,
        reconcile_every: Some(Duration::from_secs(2)),
        prune_every: None,
        run_retention: None,
        receipt_retention: None,
        ..Background::default()
    };
    config.reconcile_at_startup = false;
    config
}

/// A client that sends `key` with every request.
pub fn authed_client(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {key}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

/// A unique suffix for names.
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

/// One Server-Sent Event.
#[derive(Clone, Debug, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// A minimal SSE client over a streaming response.
pub struct SseClient {
    response: reqwest::Response,
    buffer: String,
}

impl SseClient {
    /// Opens `url` with `key`, resuming after `last_event_id` when given.
    pub async fn open(url: &str, key: &str, last_event_id: Option<&str>) -> Self {
        let mut request = authed_client(key).get(url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("opening the stream");
        assert_eq!(response.status(), StatusCode::OK, "stream {url}");
        Self { response, buffer: String::new() }
    }

    /// The next event (deadline 60 s); `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent { id: None, event: None, data: String::new() };
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event.event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        event.data.push_str(v.trim_start());
                    }
                }
                if event.id.is_some() || event.event.is_some() || !event.data.is_empty() {
                    return Some(event);
                }
                continue; // a keep-alive comment
            }
            let chunk =
                tokio::time::timeout_at(deadline, self.response.chunk()).await.expect("no stream event within 60 s");
            match chunk.expect("reading the stream") {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }
}

/// One test's world: its database, task queue, worker and API.
pub struct TestApp {
    pub store: Store,
    pub client: Client,
    pub api_url: String,
    /// Sends the test's admin key with every request.
    pub http: reqwest::Client,
    /// The test's admin key.
    pub api_key: String,
    task_queue: String,
    database_url: String,
    /// The role the test's `sql` sources run as, and how to connect as it.
    context_role: String,
    context_db: PgConnectOptions,
    /// Stops this test's worker and API (cancelled on drop).
    shutdown: CancellationToken,
}

impl TestApp {
    /// Starts a worker and an API for the test called `name`.
    pub async fn spawn(name: &str) -> Self {
        Self::spawn_with(name, true).await
    }

    /// Like [`Self::spawn`]; without the in-process worker when `with_worker` is false (the
    /// test runs `taskfactory worker` processes itself).
    pub async fn spawn_with(name: &str, with_worker: bool) -> Self {
        Self::spawn_on(servers(), name, with_worker).await
    }

    /// Like [`Self::spawn_with`], on servers of the test's own (see `restarts.rs`).
    pub async fn spawn_on(servers: &Servers, name: &str, with_worker: bool) -> Self {
        let admin_url = format!("postgres://postgres@127.0.0.1:{}/postgres", servers.postgres_port);
        let db = format!("t_{}_{}", name.replace('-', "_"), unique());
        devstack::ensure_database(&admin_url, &db).await.expect("creating the test database");
        let database_url = format!("postgres://postgres@127.0.0.1:{}/{db}", servers.postgres_port);
        let store = Store::connect(&database_url, 10).await.expect("connecting to the test database");
        store.migrate().await.expect("migrating");
        let (_, api_key) = store.create_key("e2e", Role::Admin, None).await.expect("creating the test's admin key");
        let (context_role, context_db) = context_role_for(&store, &database_url).await;
        let client = taskfactory::temporal::wait_ready(&servers.temporal_address, "default", Duration::from_secs(60))
            .await
            .expect("Temporal dev server not ready");
        if std::ptr::eq(servers, self::servers()) {
            SEARCH_ATTRIBUTES
                .get_or_init(|| async {
                    let added = taskfactory::temporal::register_search_attributes(&client, "default")
                        .await
                        .expect("registering search attributes");
                    assert_eq!(
                        added.len(),
                        taskfactory_orchestrator::search::ALL.len(),
                        "a fresh server has none of them"
                    );
                    let again = taskfactory::temporal::register_search_attributes(&client, "default").await.unwrap();
                    assert!(again.is_empty(), "registration is idempotent");
                })
                .await;
        } else {
            taskfactory::temporal::register_search_attributes(&client, "default")
                .await
                .expect("registering search attributes");
        }
        let task_queue = format!("tq-{name}-{}", unique());

        // The worker's future is not Send: it gets a thread and a runtime of its own.
        let shutdown = CancellationToken::new();
        let (address, queue, worker_store, worker_context, stop) =
            (servers.temporal_address.clone(), task_queue.clone(), store.clone(), context_db.clone(), shutdown.clone());
        if with_worker {
            std::thread::Builder::new()
                .name(format!("worker-{name}"))
                .spawn(move || {
                    let runtime =
                        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("worker runtime");
                    runtime.block_on(async move {
                        let client = taskfactory::temporal::connect(&address, "default").await.expect("worker client");
                        let config = WorkerConfig::new(client, queue, worker_store, test_context(&worker_context));
                        let worker = WorkerProcess::build(config, None).await.expect("building the worker");
                        worker.run(stop).await.expect("worker failed");
                    });
                })
                .expect("spawning the worker thread");
        }

        let config = test_api_config(&client, &store, &task_queue, &context_db);
        let api = ApiProcess::build(config, shutdown.clone()).await.expect("building the API");
        let api_url = api.url().unwrap();
        tokio::spawn(api.run());
        Self {
            store,
            client,
            api_url,
            task_queue,
            database_url,
            context_role,
            context_db,
            http: authed_client(&api_key),
            api_key,
            shutdown,
        }
    }

    /// Deletes a workflow's executions in Temporal, as its namespace retention would, and
    /// waits until Temporal no longer knows it.
    pub async fn forget_in_temporal(&self, workflow_id: &str) {
        use temporalio_common::protos::temporal::api::common::v1::WorkflowExecution;
        use temporalio_common::protos::temporal::api::workflowservice::v1::DeleteWorkflowExecutionRequest;
        self.client
            .connection()
            .workflow_service()
            .delete_workflow_execution(temporalio_client::tonic::Request::new(DeleteWorkflowExecutionRequest {
                namespace: "default".into(),
                workflow_execution: Some(WorkflowExecution {
                    workflow_id: workflow_id.to_owned(),
                    run_id: String::new(),
                }),
            }))
            .await
            .expect("deleting the workflow execution");
        let handle = self.client.get_workflow_handle::<temporalio_common::UntypedWorkflow>(workflow_id.to_owned());
        // The dev server deletes closed executions asynchronously: about 30 s here.
        eventually(Duration::from_secs(120), "the workflow to be deleted", || async {
            handle.describe(Default::default()).await.is_err()
        })
        .await;
    }

    /// Waits (deadline 300 s) until the run has at least `n` completed tasks.
    pub async fn wait_for_completed_tasks(&self, workflow_id: &str, n: i64) {
        eventually(Duration::from_secs(300), format!("{n} completed tasks"), || async {
            let (status, run) = self.call(reqwest::Method::GET, &format!("/api/v1/runs/{workflow_id}"), None).await;
            let completed = run["tasks_completed"].as_i64().unwrap_or(0);
            if status == StatusCode::OK && completed >= n {
                Ok(())
            } else {
                Err(format!("stuck below {n} completed tasks ({status}, tasks_completed {completed})"))
            }
        })
        .await
    }

    /// Completed runs matching `filter` (query parameters of `GET /api/v1/runs`, such as
    /// `definition_id=x&trigger=schedule`), once there are at least `count` (deadline 60 s).
    pub async fn completed_runs(&self, filter: &str, count: usize) -> Vec<Value> {
        eventually(Duration::from_secs(60), format!("{count} completed runs ({filter})"), || async {
            let (_, list) =
                self.call(reqwest::Method::GET, &format!("/api/v1/runs?status=completed&{filter}"), None).await;
            let runs = list["runs"].as_array().cloned().unwrap_or_default();
            if runs.len() >= count {
                Ok(runs)
            } else {
                Err(format!("only {} of {count} runs ({filter}) completed", runs.len()))
            }
        })
        .await
    }

    /// Asserts the run's log is gapless and has each of its `tasks` tasks started and
    /// completed exactly once.
    pub async fn assert_log_gapless_each_task_once(&self, workflow_id: &str, tasks: usize) -> Vec<Value> {
        let events = self.all_events(workflow_id, 1000).await;
        assert!(events.iter().enumerate().all(|(i, e)| e["seq"] == serde_json::json!(i + 1)), "gapless");
        let mut started = std::collections::HashSet::new();
        for e in events.iter().filter(|e| e["type"] == "NODE_STARTED") {
            assert!(started.insert(e["node_id"].as_str().unwrap().to_owned()), "started twice: {e}");
        }
        assert_eq!(started.len(), tasks);
        assert_eq!(events.iter().filter(|e| e["type"] == "NODE_COMPLETED").count(), tasks);
        events
    }

    /// In Temporal, every task of the run is exactly one activity (activity mode): the
    /// histories of the batches its task rows name schedule each task id once, as an activity
    /// with a summary. Answers the batch workflow ids.
    pub async fn assert_each_task_one_activity(&self, workflow_id: &str, tasks: usize) -> Vec<String> {
        let rows: Vec<(String, Option<String>, String)> =
            sqlx::query_as("select id, temporal_workflow_id, execution from task_runs where run_workflow_id = $1")
                .bind(workflow_id)
                .fetch_all(self.store.pool())
                .await
                .unwrap();
        assert_eq!(rows.len(), tasks, "task rows of {workflow_id}");
        assert!(rows.iter().all(|(_, _, execution)| execution == "activity"), "every task in activity mode");
        let batches: std::collections::BTreeSet<String> =
            rows.iter().map(|(id, batch, _)| batch.clone().unwrap_or_else(|| panic!("{id} has no batch"))).collect();
        let mut scheduled: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for batch in &batches {
            let history = taskfactory::temporal::history_json(&self.client, batch).await.unwrap();
            let history: Value = serde_json::from_slice(&history).unwrap();
            for event in history["events"].as_array().unwrap() {
                let Some(attributes) = event["attributes"].get("ActivityTaskScheduledEventAttributes") else {
                    continue;
                };
                let activity_id = attributes["activity_id"].as_str().unwrap().to_owned();
                if rows.iter().any(|(id, _, _)| *id == activity_id) {
                    assert!(!event["user_metadata"].is_null(), "the activity of {activity_id} has a summary");
                    *scheduled.entry(activity_id).or_default() += 1;
                }
            }
        }
        for (id, _, _) in &rows {
            assert_eq!(scheduled.get(id), Some(&1), "task {id} is scheduled once as an activity");
        }
        batches.into_iter().collect()
    }

    /// Another API process on the same database and task queue (its own listener), on a new
    /// port; it stops when the returned guard is dropped.
    pub async fn spawn_api(&self) -> (String, DropGuard) {
        self.spawn_api_with(|config| config).await
    }

    /// [`Self::spawn_api`] with its settings adjusted by `adjust`.
    pub async fn spawn_api_with(&self, adjust: impl FnOnce(ApiConfig) -> ApiConfig) -> (String, DropGuard) {
        let config = adjust(test_api_config(&self.client, &self.store, &self.task_queue, &self.context_db));
        let shutdown = CancellationToken::new();
        let api = ApiProcess::build(config, shutdown.clone()).await.expect("building the API");
        let url = api.url().unwrap();
        tokio::spawn(api.run());
        (url, shutdown.drop_guard())
    }

    /// The database URL of this test.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// The database role this test's `sql` context sources run as (it reads the schema
    /// [`CONTEXT_SCHEMA`]: `grant` it more in a test to try what a role may do).
    pub fn context_role(&self) -> &str {
        &self.context_role
    }

    /// The task queue of this test's worker (and of the schedules its API creates).
    pub fn task_queue(&self) -> &str {
        &self.task_queue
    }

    /// `METHOD path` with an optional JSON body; returns status and JSON body.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.api_url));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("API request");
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }

    /// PUT a definition as JSON.
    pub async fn put_definition(&self, definition: &Value) -> (StatusCode, Value) {
        let id = definition["id"].as_str().expect("definition id");
        self.call(reqwest::Method::PUT, &format!("/api/v1/definitions/{id}"), Some(definition)).await
    }

    /// Manually triggers a run; asserts it was accepted and returns the answer.
    pub async fn trigger(&self, id: &str, body: &Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, &format!("/api/v1/definitions/{id}/runs"), Some(body)).await
    }

    /// Manually triggers a run, asserting it started; returns its workflow id.
    pub async fn start_run(&self, id: &str, body: &Value) -> String {
        let (status, started) = self.trigger(id, body).await;
        assert_eq!(status, StatusCode::CREATED, "{started}");
        started["workflow_id"].as_str().unwrap().to_owned()
    }

    /// Waits (deadline: 60 s) for the run workflow to close, then returns `GET /api/v1/runs/{id}`.
    pub async fn wait_for_run(&self, workflow_id: &str) -> Value {
        self.wait_for_run_within(workflow_id, Duration::from_secs(60)).await
    }

    /// [`Self::wait_for_run`] with another deadline.
    pub async fn wait_for_run_within(&self, workflow_id: &str, limit: Duration) -> Value {
        let handle = self.client.get_workflow_handle::<RunActivityWorkflow>(workflow_id);
        // An accepted event's run is started by the API's starter a moment later: wait for
        // the workflow to exist, then for it to close.
        let deadline = tokio::time::Instant::now() + limit;
        eventually(limit, format!("run {workflow_id} to exist in Temporal"), || async {
            handle.describe(Default::default()).await.is_ok()
        })
        .await;
        // A failed run is a valid outcome for some tests: only the closing matters here.
        let _ = tokio::time::timeout_at(deadline, handle.get_result(WorkflowGetResultOptions::default()))
            .await
            .unwrap_or_else(|_| panic!("run {workflow_id} did not finish within {limit:?}"));
        let (status, run) = self.call(reqwest::Method::GET, &format!("/api/v1/runs/{workflow_id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{run}");
        run
    }

    /// Every trace event of a run, following `next` pages of `page` events.
    pub async fn all_events(&self, workflow_id: &str, page: usize) -> Vec<Value> {
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let path = format!("/api/v1/runs/{workflow_id}/events?after={after}&limit={page}");
            let (status, body) = self.call(reqwest::Method::GET, &path, None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            events.extend(body["events"].as_array().unwrap().iter().cloned());
            match body["next"].as_i64() {
                Some(next) => after = next,
                None => return events,
            }
        }
    }

    /// Waits (deadline: 60 s) until Temporal's visibility counts `expected` workflows for
    /// `query`; counting more fails at once (visibility lags, it does not over-count).
    pub async fn wait_for_visibility(&self, query: &str, expected: usize) {
        let what = format!("visibility query {query:?} to count {expected}");
        eventually(Duration::from_secs(60), what, || async {
            let counted = self
                .client
                .count_workflows(query, WorkflowCountOptions::default())
                .await
                .expect("count_workflows")
                .count();
            assert!(counted <= expected, "visibility query {query:?} counted {counted}, more than {expected}");
            if counted == expected {
                Ok(())
            } else {
                Err(format!("visibility query {query:?} counted {counted}, expected {expected}"))
            }
        })
        .await
    }
}

impl TestApp {
    /// Starts `taskfactory api` as a process on this test's database and task queue, on a free
    /// port; returns its URL once it answers `/healthz`. Killed on drop.
    pub async fn api_process(&self) -> (String, tokio::process::Child) {
        let port = devstack::server_port().unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskfactory"))
            .args(["api", "--temporal-address", &servers().temporal_address, "--task-queue", self.task_queue()])
            .args(["--database-url", self.database_url(), "--api-addr", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting taskfactory api");
        let url = format!("http://127.0.0.1:{port}");
        eventually(Duration::from_secs(60), "taskfactory api to come up", || async {
            reqwest::get(format!("{url}/healthz")).await.map(drop)
        })
        .await;
        (url, child)
    }

    /// Waits (deadline 30 s) for a waiting human task of `assignee`; returns it.
    pub async fn waiting_human_task(&self, assignee: &str) -> Value {
        eventually(Duration::from_secs(30), format!("a waiting human task for {assignee}"), || async {
            let (_, inbox) = self
                .call(reqwest::Method::GET, &format!("/api/v1/human-tasks?status=waiting&assignee={assignee}"), None)
                .await;
            match inbox["human_tasks"].as_array().and_then(|t| t.first()) {
                Some(task) => Ok(task.clone()),
                None => Err(format!("no waiting human task for {assignee}: {inbox}")),
            }
        })
        .await
    }
}

/// A manual definition that holds its run on a human task: `a` → `hold` (human) → `b`.
pub fn held_definition(id: &str, assignee: &str) -> Value {
    serde_json::json!({
        "id": id, "name": "Held", "trigger": {"kind": "manual"},
        "tasks": [
            {"id": "a", "kind": "noop"},
            {"id": "hold", "kind": "human", "title": "Release the run", "assignee": assignee, "depends_on": ["a"]},
            {"id": "b", "kind": "noop", "depends_on": ["hold"]}
        ]
    })
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// With `UPDATE_HISTORIES=1`, saves `history` as `path` (relative to the workspace root, e.g.
/// `orchestrator/tests/histories/x.json`) for the replay tests.
pub fn save_history_if_asked(history: &[u8], path: &str) {
    if std::env::var_os("UPDATE_HISTORIES").is_some() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::write(root.join(path), history).unwrap();
    }
}

/// How often [`eventually`] asks again.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// What a probe of [`eventually`] answers: done (with a value), or not yet (with what it saw
/// instead, when it can say).
pub trait Probe {
    /// What `eventually` returns once the condition holds.
    type Value;
    /// `Ok` once the condition holds; otherwise the observed state, if the probe reports one.
    fn outcome(self) -> Result<Self::Value, Option<String>>;
}

impl Probe for bool {
    type Value = ();
    fn outcome(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Probe for Option<T> {
    type Value = T;
    fn outcome(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

/// `Err(state)`: not yet, and `state` is what was observed (shown if the deadline passes).
impl<T, E: std::fmt::Display> Probe for Result<T, E> {
    type Value = T;
    fn outcome(self) -> Result<T, Option<String>> {
        self.map_err(|state| Some(state.to_string()))
    }
}

/// Asks `probe` every [`POLL_EVERY`] until it answers done (`true`, `Some(value)` or
/// `Ok(value)`), and returns the value; once `limit` has passed, the test fails naming `what`
/// was awaited and the last state the probe observed. The probe is asked at least once, and
/// once more after the deadline; a panic inside it (an assertion on the way) fails at once.
pub async fn eventually<P: Probe, F: Future<Output = P>>(
    limit: Duration,
    what: impl std::fmt::Display,
    mut probe: impl FnMut() -> F,
) -> P::Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let last = match probe().await.outcome() {
            Ok(value) => return value,
            Err(last) => last,
        };
        if tokio::time::Instant::now() >= deadline {
            match last {
                Some(last) => panic!("waited {limit:?} for {what}; last observed: {last}"),
                None => panic!("waited {limit:?} for {what}"),
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

#[tokio::test]
async fn eventually_answers_the_first_value_its_probe_gives() {
    let asked = std::cell::Cell::new(0);
    let value = eventually(Duration::from_secs(5), "a third ask", || async {
        asked.set(asked.get() + 1);
        (asked.get() == 3).then_some(asked.get())
    })
    .await;
    assert_eq!(value, 3);
}

#[tokio::test]
#[should_panic(expected = "waited 300ms for the impossible; last observed: asked ")]
async fn eventually_names_what_it_awaited_and_the_last_state_seen() {
    let asked = std::cell::Cell::new(0);
    eventually(Duration::from_millis(300), "the impossible", || async {
        asked.set(asked.get() + 1);
        Err::<(), _>(format!("asked {} times", asked.get()))
    })
    .await;
}
