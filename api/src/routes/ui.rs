//! The web UI: three static files compiled into the binary (no Node build to run it).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use temporalio_client::NamespacedClient;

use crate::ApiState;

const INDEX: &str = include_str!("../../ui/index.html");
const APP: &str = include_str!("../../ui/app.js");
const STYLE: &str = include_str!("../../ui/style.css");

/// `GET /`.
pub async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX)
}

/// `GET /ui/app.js`.
pub async fn app_js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP)
}

/// `GET /ui/style.css`.
pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

/// `GET /api/v1/ui-config`: what the UI links to.
pub async fn config(State(state): State<ApiState>) -> Json<Value> {
    Json(json!({"temporal_ui_url": state.temporal_ui_url, "namespace": state.temporal.namespace()}))
}
