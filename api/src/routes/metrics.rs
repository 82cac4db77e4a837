//! `GET /metrics`: the process's Prometheus series (no API key needed).
//!
//! The API serves it on its own listener; `taskfactory worker --metrics-addr` serves the same
//! handler alone through [`serve_metrics`]. What is in it: `taskfactory_activities::metrics`.

use std::future::Future;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use taskfactory_activities::metrics::{CONTENT_TYPE, render};
use tokio::net::TcpListener;

/// Prometheus metrics of this process
///
/// Runs, tasks, events, run-log write latency, reconcile repairs; no API key needed.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "health",
    responses((status = 200, description = "The Prometheus text format", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render())
}

/// Serves only `GET /metrics` on `listener` until `shutdown` resolves (the worker's
/// `--metrics-addr`).
pub async fn serve_metrics(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app: Router = Router::new().route("/metrics", get(metrics));
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
