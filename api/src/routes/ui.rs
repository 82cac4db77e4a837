//! The web UI: three static files compiled into the binary (no Node build to run it).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use schemars::JsonSchema;
use serde::Serialize;
use temporalio_client::NamespacedClient;

use crate::ApiState;

const INDEX: &str = include_str!("../../ui/index.html");
const APP: &str = include_str!("../../ui/app.js");
const STYLE: &str = include_str!("../../ui/style.css");

/// The web UI's page
#[utoipa::path(get, path = "/", operation_id = "ui_index", tag = "ui", responses((status = 200, description = "HTML", body = String, content_type = "text/html; charset=utf-8")))]
pub async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX)
}

/// The web UI's script
#[utoipa::path(get, path = "/ui/app.js", operation_id = "ui_script", tag = "ui", responses((status = 200, description = "JavaScript", body = String, content_type = "text/javascript; charset=utf-8")))]
pub async fn app_js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP)
}

/// The web UI's style sheet
#[utoipa::path(get, path = "/ui/style.css", operation_id = "ui_style", tag = "ui", responses((status = 200, description = "CSS", body = String, content_type = "text/css; charset=utf-8")))]
pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

/// What the UI links to.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UiConfig {
    /// The Temporal Web UI, when the API was told (`--temporal-ui-url`).
    pub temporal_ui_url: Option<String>,
    /// The Temporal namespace runs live in.
    pub namespace: String,
}

/// The web UI's settings
#[utoipa::path(get, path = "/api/v1/ui-config", operation_id = "ui_config", tag = "ui",
    responses((status = 200, description = "What the UI links to", body = ref("#/components/schemas/UiConfig"))))]
pub async fn config(State(state): State<ApiState>) -> Json<UiConfig> {
    Json(UiConfig { temporal_ui_url: state.temporal_ui_url, namespace: state.temporal.namespace() })
}
