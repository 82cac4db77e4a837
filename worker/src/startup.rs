//! The composition root: how taskfactory's processes are put together, in one place.
//!
//! `taskfactory api`, `taskfactory worker`, `taskfactory dev`, `taskfactory bench` and the e2e
//! harness all build their API and their worker here, so a new piece of either (a background
//! loop, a client, a limit) is wired once:
//!
//! - [`ApiProcess::build`] binds the listener, builds the handlers' state and repairs schedule
//!   drift; [`ApiProcess::run`] serves until the shutdown token is cancelled, with the
//!   background work (live streams' listener, schedule observer), then drains.
//! - [`WorkerProcess::build`] builds the Temporal worker; [`WorkerProcess::run`] polls until
//!   the token is cancelled, then lets in-flight tasks finish.
//! - [`shutdown_on_signals`]: a process's token, cancelled by SIGINT or SIGTERM.
//! - [`context_clients`]: what context sources read from, from the command line's settings.
//!
//! Every long-lived task of a process watches the same [`CancellationToken`] (as mini-redis
//! hands its `Shutdown` to every task), so stopping is one call and nothing is left detached.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use taskfactory_activities::context::ContextClients;
use taskfactory_activities::secrets::SecretStore;
use taskfactory_activities::sql_access::{DEFAULT_CONNECTION, SqlConnection};
use taskfactory_activities::{ActivityConfig, Store};
use taskfactory_api::{ApiState, Background};
use temporalio_client::Client;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{ApiArgs, DatabaseArgs, TemporalArgs, TuningArgs};
pub use crate::worker::WorkerConfig;
use crate::worker::WorkerTuning;

/// A token cancelled on Ctrl-C or SIGTERM. The handlers are installed when this is called, so a
/// signal during start-up is not lost (or fatal).
pub fn shutdown_on_signals() -> CancellationToken {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let (term, interrupt) = (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok());
    let cancel = token.clone();
    tokio::spawn(async move {
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
        cancel.cancel();
    });
    token
}

/// Events per second per API key accepted by event ingress, and the burst.
#[derive(Clone, Copy, Debug)]
pub struct EventRate {
    /// Sustained rate.
    pub per_second: f64,
    /// Burst.
    pub burst: f64,
}

/// What an API process is made of.
#[derive(Clone)]
pub struct ApiConfig {
    /// Temporal, namespace-bound.
    pub client: Client,
    /// Definitions and the run log.
    pub store: Store,
    /// The task queue runs start on (the worker's).
    pub task_queue: String,
    /// What context sources read from in dry-runs (the worker's own).
    pub context: ContextClients,
    /// Where to listen (port 0 takes a free one; see [`ApiProcess::url`]).
    pub listen: SocketAddr,
    /// The Temporal Web UI the UI links to.
    pub temporal_ui_url: Option<String>,
    /// The schedule observer and decision pruning.
    pub background: Background,
    /// Repair drift between definitions and Temporal Schedules before serving.
    pub reconcile_at_startup: bool,
    /// Event ingress rate limit per key (`None`: the default).
    pub event_rate: Option<EventRate>,
}

impl ApiConfig {
    /// An API on `listen` with the defaults of a production process: schedule observer on,
    /// decisions kept 30 days, schedules reconciled at start-up.
    pub fn new(client: Client, store: Store, task_queue: String, context: ContextClients, listen: SocketAddr) -> Self {
        Self {
            client,
            store,
            task_queue,
            context,
            listen,
            temporal_ui_url: None,
            background: Background::default(),
            reconcile_at_startup: true,
            event_rate: None,
        }
    }

    /// `taskfactory api`'s settings: connects to Temporal and Postgres, and checks the SQL
    /// connections of the context sources.
    pub async fn from_args(temporal: &TemporalArgs, database: &DatabaseArgs, api: &ApiArgs) -> anyhow::Result<Self> {
        let client = crate::temporal::connect(&temporal.temporal_address, &temporal.namespace).await?;
        let store = Store::connect(&database.database_url, 20).await.context("connecting to DATABASE_URL")?;
        let context = context_clients(database).await?;
        let mut config = Self::new(client, store, temporal.task_queue.clone(), context, api.api_addr);
        config.temporal_ui_url = api.temporal_ui_url.clone();
        let retention = Some(api.decision_retention).filter(|r| !r.is_zero());
        config.background = Background {
            decision_retention: retention,
            run_retention: api.run_retention.default_keep(),
            starter_yield: api.starter_yield,
            receipt_retention: api.run_retention.receipts_keep(),
            ..Background::default()
        };
        Ok(config)
    }
}

/// A built API process: listening, not yet serving.
pub struct ApiProcess {
    listener: TcpListener,
    state: ApiState,
    background: Background,
}

impl ApiProcess {
    /// Binds the listener, builds the state and, when asked, reconciles schedules (a failure
    /// there is logged, not fatal: the API still serves reads, and `taskfactory schedules
    /// reconcile` retries). Nothing is served until [`Self::run`].
    pub async fn build(config: ApiConfig, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        let mut state = ApiState::new(config.store, config.client, config.task_queue, config.context)
            .with_temporal_ui(config.temporal_ui_url)
            .with_shutdown(shutdown);
        if let Some(rate) = config.event_rate {
            state = state.with_event_rate(rate.per_second, rate.burst);
        }
        if config.reconcile_at_startup {
            reconcile_at_startup(&state).await;
        }
        Ok(Self { listener, state, background: config.background })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// `http://{address}`.
    pub fn url(&self) -> anyhow::Result<String> {
        Ok(format!("http://{}", self.local_addr()?))
    }

    /// The handlers' state (the same the process serves with).
    pub fn state(&self) -> &ApiState {
        &self.state
    }

    /// Serves until the shutdown token given to [`Self::build`] is cancelled, then finishes
    /// in-flight requests.
    pub async fn run(self) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr()?, "API listening");
        taskfactory_api::run(self.listener, self.state, self.background).await.context("serving the API")
    }
}

/// Repairs schedule drift before serving; a failure is logged, not fatal.
async fn reconcile_at_startup(state: &ApiState) {
    match taskfactory_api::schedules::reconcile(&state.temporal, &state.store, &state.task_queue).await {
        Ok(repairs) if repairs.is_empty() => tracing::info!("schedules in sync"),
        Ok(repairs) => tracing::info!(repairs = repairs.len(), "schedules reconciled"),
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "reconciling schedules failed"),
    }
}

impl WorkerConfig {
    /// `taskfactory worker`'s settings: connects to Temporal and Postgres, and checks the SQL
    /// connections of the context sources.
    pub async fn from_args(
        temporal: &TemporalArgs,
        database: &DatabaseArgs,
        tuning: &TuningArgs,
    ) -> anyhow::Result<Self> {
        let client = crate::temporal::connect(&temporal.temporal_address, &temporal.namespace).await?;
        let store = Store::connect(&database.database_url, 20).await.context("connecting to DATABASE_URL")?;
        let context = context_clients(database).await?;
        let mut activity_config = ActivityConfig::default();
        activity_config.context_limits.max_bytes = database.max_context_bytes;
        activity_config.group_task_writes = !tuning.no_group_commit;
        activity_config.max_tasks_per_run = tuning.max_tasks_per_run;
        Ok(Self {
            client,
            task_queue: temporal.task_queue.clone(),
            store,
            context,
            activity_config,
            tuning: tuning.tuning(),
        })
    }

    /// A worker with the defaults, for `dev` and the test harness.
    pub fn new(client: Client, task_queue: String, store: Store, context: ContextClients) -> Self {
        Self {
            client,
            task_queue,
            store,
            context,
            activity_config: ActivityConfig::default(),
            tuning: WorkerTuning::default(),
        }
    }
}

/// A built worker process, with its optional metrics listener.
pub struct WorkerProcess {
    config: WorkerConfig,
    metrics: Option<TcpListener>,
}

impl WorkerProcess {
    /// Binds the metrics listener when asked (a taken port fails the start instead of a
    /// silent worker).
    pub async fn build(config: WorkerConfig, metrics_addr: Option<SocketAddr>) -> anyhow::Result<Self> {
        let metrics = match metrics_addr {
            Some(addr) => {
                let listener =
                    TcpListener::bind(addr).await.with_context(|| format!("binding --metrics-addr {addr}"))?;
                tracing::info!(%addr, "metrics at /metrics");
                Some(listener)
            }
            None => None,
        };
        Ok(Self { config, metrics })
    }

    /// Polls until `shutdown` is cancelled, then drains (in-flight tasks finish). Not `Send`:
    /// run it on the task that owns it (`block_on`, `select!`), not through `tokio::spawn`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        if let Some(listener) = self.metrics {
            // A scrape holds nothing the drain waits for.
            tokio::spawn(taskfactory_api::routes::metrics::serve_metrics(listener, shutdown.clone().cancelled_owned()));
        }
        crate::worker::run(self.config, shutdown.cancelled_owned()).await
    }
}

/// What context sources read from, from the flags: the named SQL connections (the context
/// database is the one called `default`), each checked for privileges it must not have, the
/// egress rule and the secrets. Pools connect lazily: a database that is down fails the runs
/// that need it, not the start-up.
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
