//! The web UI: three static files compiled into the binary (no Node build to run it).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use schemars::JsonSchema;
use serde::Serialize;
use taskfactory_schemas::EventType;
use taskfactory_schemas::run::Status;
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

/// What the UI links to, and the names of the run log it shows.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UiConfig {
    /// The Temporal Web UI, when the API was told (`--temporal-ui-url`).
    pub temporal_ui_url: Option<String>,
    /// The Temporal namespace runs live in.
    pub namespace: String,
    /// Every trace event type: the run page follows each on the run's stream.
    pub event_types: Vec<EventType>,
    /// Every status a run or a task is stored with, in the order the run page counts them.
    pub statuses: Vec<Status>,
}

impl UiConfig {
    fn new(temporal_ui_url: Option<String>, namespace: String) -> Self {
        Self { temporal_ui_url, namespace, event_types: EventType::all().to_vec(), statuses: Status::all().to_vec() }
    }
}

/// The web UI's settings
#[utoipa::path(get, path = "/api/v1/ui-config", operation_id = "ui_config", tag = "ui",
    responses((status = 200, description = "What the UI links to, its event types and statuses", body = ref("#/components/schemas/UiConfig"))))]
pub async fn config(State(state): State<ApiState>) -> Json<UiConfig> {
    Json(UiConfig::new(state.temporal_ui_url, state.temporal.namespace()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_config_names_event_types_and_statuses_as_the_run_log_does() {
        let config = serde_json::to_value(UiConfig::new(None, "default".into())).unwrap();
        let names = |key: &str| config[key].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect::<Vec<_>>();
        assert_eq!(names("event_types"), EventType::all().iter().map(|t| t.as_str()).collect::<Vec<_>>());
        assert_eq!(names("statuses"), Status::all().iter().map(|s| s.as_str()).collect::<Vec<_>>());
        assert!(names("event_types").contains(&"NODE_WAITING".to_owned()));
        assert_eq!(config["namespace"], json!("default"));
    }
}
