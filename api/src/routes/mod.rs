//! Routes, one module per resource; [`extract`] checks the path and query parameters several
//! of them share, and [`json_body`] parses every JSON body.

use axum::Router;
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use crate::ApiState;
use crate::error::ApiError;

pub mod control;
pub mod decisions;
pub mod definitions;
pub mod docs;
pub mod events;
pub mod extract;
pub mod fleet;
pub mod health;
pub mod human;
pub mod keys;
pub mod metrics;
pub mod notifications;
pub mod observe;
pub mod plans;
pub mod runs;
pub mod schedules;
pub mod stream;
pub mod task_events;
pub mod ui;

/// Every route of the API. Each handler also has a `#[utoipa::path]` and is listed in
/// [`crate::openapi::ApiDoc`]; a test fails when a route here is missing from the document.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/", get(ui::index))
        .route("/ui/{*path}", get(ui::asset))
        .route("/api/v1/ui-config", get(ui::config))
        .route("/api/v1/whoami", get(ui::whoami))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/openapi.json", get(docs::openapi_json))
        .route("/api/v1/definitions", get(definitions::list))
        .route("/api/v1/definitions/{id}", get(definitions::get).put(definitions::put).delete(definitions::delete))
        .route("/api/v1/definitions/{id}/versions", get(definitions::versions))
        .route("/api/v1/definitions/{id}/versions/{version}", get(definitions::version))
        .route("/api/v1/definitions/{id}/diff", get(definitions::diff))
        .route(
            "/api/v1/definitions/{id}/diff/behaviour",
            get(plans::behaviour_diff).post(plans::behaviour_diff_with_samples),
        )
        .route("/api/v1/definitions/{id}/decisions", get(decisions::list))
        .route("/api/v1/definitions/{id}/preview", get(decisions::preview))
        .route("/api/v1/definitions/{id}/notifications", get(notifications::list))
        .route("/api/v1/definitions/{id}/dry-run", post(plans::dry_run))
        .route("/api/v1/validate", post(definitions::validate))
        .route("/api/v1/definitions/{id}/runs", post(runs::trigger))
        .route("/api/v1/definitions/{id}/schedule", get(schedules::describe))
        .route("/api/v1/definitions/{id}/schedule/pause", post(schedules::pause))
        .route("/api/v1/definitions/{id}/schedule/unpause", post(schedules::unpause))
        .route("/api/v1/definitions/{id}/schedule/trigger", post(schedules::trigger))
        .route("/api/v1/definitions/{id}/schedule/backfill", post(schedules::backfill))
        .route("/api/v1/schedules/reconcile", post(schedules::reconcile))
        .route("/api/v1/fleet/pause", post(fleet::pause))
        .route("/api/v1/fleet/resume", post(fleet::resume))
        .route("/api/v1/fleet/trigger", post(fleet::trigger))
        .route("/api/v1/fleet/backfill", post(fleet::backfill))
        .route("/api/v1/keys", get(keys::list).post(keys::create))
        .route("/api/v1/keys/{id}", axum::routing::delete(keys::revoke))
        .route("/api/v1/audit", get(keys::audit))
        .route("/api/v1/events", post(events::ingest))
        .route("/api/v1/human-tasks", get(human::list))
        .route("/api/v1/human-tasks/{id}/complete", post(human::complete))
        .route("/api/v1/human-tasks/{id}/reject", post(human::reject))
        .route("/api/v1/runs", get(runs::list))
        .route("/api/v1/runs/{workflow_id}", get(runs::get))
        .route("/api/v1/runs/{workflow_id}/events", get(runs::events))
        .route("/api/v1/runs/{workflow_id}/cancel", post(control::cancel))
        .route("/api/v1/runs/{workflow_id}/retry", post(control::retry))
        .route("/api/v1/runs/{workflow_id}/stream", get(stream::run_stream))
        .route("/api/v1/runs/{workflow_id}/graph", get(observe::graph))
        .route("/api/v1/runs/{workflow_id}/external-events", post(observe::external_events))
        .route("/api/v1/task-events", post(task_events::report))
        .route("/api/v1/artifacts/{id}", get(task_events::artifact))
        .route("/api/v1/stream", get(stream::runs_stream))
}

/// Fields of request bodies that hold the caller's own JSON, passed on as it is: any string
/// may be in them (U+0000 included, see ADR-020). Everywhere else, strings are names, keys,
/// notes and reasons, and control characters other than tab and line breaks are refused.
pub const FREE_FORM_FIELDS: &[&str] = &["payload", "context"];

/// Parses a JSON body into `T`; an empty body is `T::default()`. Errors name the field; a
/// string outside [`FREE_FORM_FIELDS`] with a control character is refused at its path.
pub fn json_body<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?;
    let refused = taskfactory_schemas::validate::control_character_errors(&value, FREE_FORM_FIELDS);
    if !refused.is_empty() {
        return Err(ApiError::Invalid(refused));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::field(if path == "." { String::new() } else { path }, e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(default)]
        #[allow(dead_code)]
        note: Option<String>,
    }

    fn paths(body: &str) -> Vec<String> {
        match json_body::<Body>(body.as_bytes()) {
            Err(ApiError::Invalid(errors)) => errors.into_iter().map(|e| e.path).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_bodies_name_the_field_at_fault() {
        assert!(json_body::<Body>(b"  ").is_ok());
        assert_eq!(paths(r#"{"noet": "x"}"#), ["noet"]);
        assert_eq!(paths(r#"{"note": 3}"#), ["note"]);
        assert!(matches!(json_body::<Body>(b"{"), Err(ApiError::BadRequest(_))));
        assert_eq!(paths(r#"{"note": "a\u0000b"}"#), ["note"]);
    }
}
