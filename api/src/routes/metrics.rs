//! `GET /metrics`: the process's Prometheus series (no API key needed).
//!
//! The API serves it on its own listener, with the growth gauges of its database (rows and
//! bytes per table, the oldest run kept), read from Postgres' catalog at most every
//! [`GROWTH_EVERY`]; `taskfactory worker --metrics-addr` serves the process's series alone
//! through [`serve_metrics`]. What is in it: `taskfactory_activities::metrics`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use taskfactory_activities::metrics::{CONTENT_TYPE, growth_families, render, render_with};
use taskfactory_activities::store::Growth;
use tokio::net::TcpListener;

use crate::ApiState;

/// How long a reading of the growth gauges is served before the next scrape reads again.
pub const GROWTH_EVERY: Duration = Duration::from_secs(15);

/// The growth gauges as last read, and when: scrapes in between answer them unchanged, so
/// however often (and by however many scrapers) `/metrics` is read, the catalog is read at
/// most once per [`GROWTH_EVERY`].
#[derive(Clone, Default)]
pub struct GrowthCache(Arc<tokio::sync::Mutex<Option<(Instant, Growth)>>>);

impl GrowthCache {
    /// The gauges, read again if the last reading is older than [`GROWTH_EVERY`]. A failed
    /// read is logged and answers the last reading (none at first): `/metrics` still answers.
    async fn read(&self, state: &ApiState) -> Option<Growth> {
        let mut cached = self.0.lock().await;
        if cached.as_ref().is_none_or(|(at, _)| at.elapsed() >= GROWTH_EVERY) {
            match state.store.growth().await {
                Ok(growth) => *cached = Some((Instant::now(), growth)),
                Err(e) => tracing::warn!(error = %e, "metrics: cannot read the tables' sizes"),
            }
        }
        cached.as_ref().map(|(_, growth)| growth.clone())
    }
}

/// Prometheus metrics of this process
///
/// Runs, tasks, events, run-log write latency, reconcile repairs, and the size of the run log
/// (rows and bytes per table, the oldest run kept); no API key needed.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "health",
    responses((status = 200, description = "The Prometheus text format", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    let growth = state.growth.read(&state).await;
    let text = render_with(growth.as_ref().map(growth_families).unwrap_or_default());
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text)
}

/// The process's series alone (the worker has no database of its own to describe).
async fn process_metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render())
}

/// Serves only `GET /metrics` on `listener` until `shutdown` resolves (the worker's
/// `--metrics-addr`).
pub async fn serve_metrics(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app: Router = Router::new().route("/metrics", get(process_metrics));
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
