//! The HTTP API: admin CRUD for definitions, triggers (manual runs, event ingress, schedule
//! controls), the run log read API with live streams, and the web UI.
//!
//! - [`answers`]: the answer types clients decode (re-exported from the routes).
//! - [`auth`]: API keys, roles and the audit log, as one middleware.
//! - [`boundary`]: URLs with control characters refused; every error answer in the envelope.
//! - [`error`]: the one error type every handler returns, rendered as
//!   `{"error": {"code", "message", "details": [{"path", "message"}]}}`.
//! - [`routes`]: one module per resource.
//! - [`openapi`]: the OpenAPI document of the routes, generated from the code.
//! - [`ratelimit`]: a token bucket per API key (event ingress).
//! - [`live`]: Postgres LISTEN/NOTIFY fanned out to the live streams.
//! - [`starter`]: starting runs with the options every trigger shares.
//! - [`schedules`]: cron definitions as Temporal Schedules, and the reconciler.
//! - [`acceptor`]: group commit of the acceptances of concurrent event ingress requests.
//! - [`event_starter`]: starts the runs of the events ingress accepted.
//! - [`run_reconciler`]: records runs an operator (or a timeout) closed in Temporal.
//! - [`run_pruner`]: deletes finished runs past their retention, and event receipts past theirs.
//! - [`notify`]: `schedule_silent` notifications, delivered by a `NotifyWorkflow` per slot.
//! - [`schedule_observer`]: writes each cron slot's outcome into the trigger decision log,
//!   and prunes old decisions.
//!
//! [`app`] builds the router with its layers; [`run`] serves it on a listener, with the
//! process's background work, until the state's shutdown token is cancelled.

use std::future::IntoFuture;
use std::time::Duration;

use axum::Router;
use taskfactory_activities::Store;
use temporalio_client::Client;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub mod acceptor;
pub mod answers;
pub mod audit;
pub mod auth;
pub mod boundary;
pub mod error;
pub mod event_starter;
pub mod listening;
pub mod live;
pub mod notify;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub mod run_pruner;
pub mod run_reconciler;
pub mod schedule_observer;
pub mod schedules;
pub mod starter;

/// Everything handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    /// Definitions and the run log.
    pub store: Store,
    /// Starts workflows.
    pub temporal: Client,
    /// The task queue taskfactory's worker polls.
    pub task_queue: String,
    /// What context sources read from in dry-runs (the same as the worker's).
    pub context: taskfactory_activities::context::ContextClients,
    /// Notifications for the live streams.
    pub live: live::LiveHub,
    /// The Temporal Web UI, for links from the UI (e.g. `http://127.0.0.1:8233`).
    pub temporal_ui_url: Option<String>,
    /// Wakes the event starter of this process (event ingress accepted something).
    pub starter: event_starter::Wake,
    /// Commits the acceptances of concurrent ingress requests together.
    pub acceptor: acceptor::Acceptor,
    /// Writes the audit log.
    pub audit: audit::AuditLog,
    /// Recently authenticated keys ([`auth::KeyCache`]).
    pub keys: auth::KeyCache,
    /// The definitions each event type reaches, as ingress last read them.
    pub listening: listening::ListeningCache,
    /// Events per second per key accepted by `POST /api/v1/events`.
    pub event_limiter: std::sync::Arc<ratelimit::RateLimiter>,
    /// The growth gauges `GET /metrics` last read ([`routes::metrics::GrowthCache`]).
    pub growth: routes::metrics::GrowthCache,
    /// Cancelled when the process shuts down: background loops stop and open streams end, so
    /// draining can finish.
    pub shutdown: CancellationToken,
}

impl ApiState {
    /// The state, with a shutdown token of its own (see [`Self::with_shutdown`]); nothing runs
    /// until [`run`].
    pub fn new(
        store: Store,
        temporal: Client,
        task_queue: String,
        context: taskfactory_activities::context::ContextClients,
    ) -> Self {
        let event_limiter =
            std::sync::Arc::new(ratelimit::RateLimiter::new(DEFAULT_EVENTS_PER_SECOND, DEFAULT_EVENTS_BURST));
        let (live, shutdown) = (live::LiveHub::new(), CancellationToken::new());
        Self {
            store,
            temporal,
            task_queue,
            context,
            live,
            temporal_ui_url: None,
            starter: event_starter::Wake::default(),
            acceptor: acceptor::Acceptor::default(),
            listening: listening::ListeningCache::default(),
            audit: audit::AuditLog::default(),
            keys: auth::KeyCache::default(),
            event_limiter,
            growth: routes::metrics::GrowthCache::default(),
            shutdown,
        }
    }

    /// Limits event ingress to `per_second` events per key, `burst` at once.
    pub fn with_event_rate(mut self, per_second: f64, burst: f64) -> Self {
        self.event_limiter = std::sync::Arc::new(ratelimit::RateLimiter::new(per_second, burst));
        self
    }

    /// Stops with `shutdown` (the process's token).
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Links the UI to a Temporal Web UI.
    pub fn with_temporal_ui(mut self, url: Option<String>) -> Self {
        self.temporal_ui_url = url;
        self
    }
}

/// The OpenAPI document, built once from the code (it only changes with the code); served
/// by `GET /api/v1/openapi.json`.
pub static OPENAPI: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(openapi::document);

/// Default sustained event rate per key.
pub const DEFAULT_EVENTS_PER_SECOND: f64 = 200.0;
/// Default event burst per key.
pub const DEFAULT_EVENTS_BURST: f64 = 2000.0;

/// Largest request body accepted (definitions are small; events come in batches).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The router with every route and the common layers.
pub fn app(state: ApiState) -> Router {
    routes::router()
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard))
        .layer(axum::middleware::from_fn(boundary::refuse_control_characters))
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        // Outside the limit, so it applies to the decompressed body: `Content-Encoding: gzip`
        // bodies (the clients' event batches) are taken, never a decompression bomb.
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
        // Outside the body limit and the timeout, so their answers get the envelope too.
        .layer(axum::middleware::from_fn(boundary::error_envelope))
        .layer(TraceLayer::new_for_http())
}

/// What an API process does besides answering requests.
#[derive(Clone, Copy, Debug)]
pub struct Background {
    /// How often the schedule observer looks at every cron definition's schedule (`None`: it
    /// does not run; decision logs are still observed when they are read).
    pub observe_every: Option<Duration>,
    /// How long trigger decisions are kept (`None`: forever).
    pub decision_retention: Option<Duration>,
    /// How often the run reconciler records runs closed in Temporal (`None`: it does not run).
    pub reconcile_every: Option<Duration>,
    /// How often the run pruner deletes finished runs past their retention (`None`: it does
    /// not run, and no run is ever deleted).
    pub prune_every: Option<Duration>,
    /// How long finished runs of definitions without `retention` are kept (`None`: forever).
    pub run_retention: Option<Duration>,
    /// The most a pass of the event starter waits for a busy event ingress (zero: never).
    pub starter_yield: Duration,
    /// How long event receipts are kept once their run was started (`None`: forever); the
    /// run pruner deletes older ones.
    pub receipt_retention: Option<Duration>,
}

impl Default for Background {
    fn default() -> Self {
        let retention = taskfactory_schemas::duration::parse_duration(schedule_observer::DEFAULT_RETENTION).ok();
        Self {
            observe_every: Some(schedule_observer::OBSERVE_EVERY),
            decision_retention: retention,
            reconcile_every: Some(run_reconciler::RECONCILE_EVERY),
            prune_every: Some(run_pruner::PRUNE_EVERY),
            run_retention: None,
            starter_yield: event_starter::YIELD_AT_MOST,
            receipt_retention: None,
        }
    }
}

/// Serves the API on `listener`, with its background work (the live streams' listener, the
/// schedule observer), until `state.shutdown` is cancelled; then ends open streams, stops the
/// background loops and finishes in-flight requests.
pub async fn run(listener: TcpListener, state: ApiState, background: Background) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    let live = state.live.clone();
    let listening = live.listen(state.store.pool().clone(), shutdown.clone());
    let observing = {
        let (state, shutdown) = (state.clone(), shutdown.clone());
        async move {
            if let Some(every) = background.observe_every {
                schedule_observer::run(state, every, background.decision_retention, shutdown).await;
            }
        }
    };
    let reconciling = {
        let (state, shutdown) = (state.clone(), shutdown.clone());
        async move {
            if let Some(every) = background.reconcile_every {
                run_reconciler::run(state, every, shutdown).await;
            }
        }
    };
    let pruning = {
        let (state, shutdown) = (state.clone(), shutdown.clone());
        async move {
            if let Some(every) = background.prune_every {
                let keep = run_pruner::Keep { runs: background.run_retention, receipts: background.receipt_retention };
                run_pruner::run(state, every, keep, shutdown).await;
            }
        }
    };
    let starting = event_starter::run(state.clone(), background.starter_yield, shutdown.clone());
    // The audit writer stops after the last request is answered, writing what is left.
    let (audit, audit_stop) = (state.audit.clone(), CancellationToken::new());
    let auditing = audit.write(state.store.clone(), audit_stop.clone());
    let serving = axum::serve(listener, app(state)).with_graceful_shutdown(shutdown.cancelled_owned()).into_future();
    let serving = async {
        let served = serving.await;
        audit_stop.cancel();
        served
    };
    let (served, (), (), (), (), (), ()) =
        tokio::join!(serving, listening, observing, reconciling, pruning, starting, auditing);
    served
}
