//! The HTTP API: admin CRUD for definitions, triggers (manual runs, event ingress, schedule
//! controls), the run log read API with live streams, and the web UI.
//!
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
//! - [`decisions`]: the schedule observer that writes schedule slots into the trigger
//!   decision log, and the pruning of old decisions.
//!
//! [`app`] builds the router with its layers; [`serve`] runs it on a listener until
//! `shutdown` (the e2e suite serves it on port 0).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use taskfactory_activities::Store;
use temporalio_client::Client;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub mod auth;
pub mod boundary;
pub mod decisions;
pub mod error;
pub mod live;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
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
    /// Events per second per key accepted by `POST /api/v1/events`.
    pub event_limiter: std::sync::Arc<ratelimit::RateLimiter>,
    /// Turns true when the server shuts down: open streams end so draining can finish.
    pub closing: Option<tokio::sync::watch::Receiver<bool>>,
}

impl ApiState {
    /// The state, with its notification listener started on the current runtime.
    pub fn new(
        store: Store,
        temporal: Client,
        task_queue: String,
        context: taskfactory_activities::context::ContextClients,
    ) -> Self {
        let live = live::LiveHub::start(store.pool().clone());
        let event_limiter =
            std::sync::Arc::new(ratelimit::RateLimiter::new(DEFAULT_EVENTS_PER_SECOND, DEFAULT_EVENTS_BURST));
        Self { store, temporal, task_queue, context, live, temporal_ui_url: None, event_limiter, closing: None }
    }

    /// Limits event ingress to `per_second` events per key, `burst` at once.
    pub fn with_event_rate(mut self, per_second: f64, burst: f64) -> Self {
        self.event_limiter = std::sync::Arc::new(ratelimit::RateLimiter::new(per_second, burst));
        self
    }

    /// Links the UI to a Temporal Web UI.
    pub fn with_temporal_ui(mut self, url: Option<String>) -> Self {
        self.temporal_ui_url = url;
        self
    }
}

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
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
        // Outside the body limit and the timeout, so their answers get the envelope too.
        .layer(axum::middleware::from_fn(boundary::error_envelope))
        .layer(TraceLayer::new_for_http())
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes in-flight requests
/// (open event streams are ended, so they cannot hold the shutdown forever).
pub async fn serve(
    listener: TcpListener,
    mut state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (closing, closed) = tokio::sync::watch::channel(false);
    state.closing = Some(closed);
    let signal = async move {
        shutdown.await;
        let _ = closing.send(true);
    };
    axum::serve(listener, app(state)).with_graceful_shutdown(signal).await
}
