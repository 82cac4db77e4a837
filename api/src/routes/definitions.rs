//! `/api/v1/definitions`: create (PUT makes a new immutable version), read, list, delete.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use chrono::Utc;
use taskfactory_schemas::DefinitionId;
use taskfactory_schemas::definition::TriggerKind;
use taskfactory_schemas::preview::next_fires;
use taskfactory_schemas::validate::{Format, parse_definition, parse_text};

use crate::ApiState;
use crate::schedules;
use crate::error::ApiError;

/// Checks the `{id}` of a URL.
pub fn path_id(raw: &str) -> Result<DefinitionId, ApiError> {
    DefinitionId::parse(raw).map_err(|m| ApiError::field("id", format!("{raw:?} is not a valid definition id: {m}")))
}

fn body_format(headers: &HeaderMap) -> Format {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if content_type.contains("yaml") { Format::Yaml } else { Format::Json }
}

/// `PUT /api/v1/definitions/{id}`: JSON or YAML (by Content-Type). 201 for a new definition,
/// 200 otherwise; `changed: false` when the document equals the current version.
pub async fn put(State(state): State<ApiState>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = path_id(&id)?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("body is not UTF-8".into()))?;
    let mut document = parse_text(text, body_format(&headers))?;
    let Some(object) = document.as_object_mut() else {
        return Err(ApiError::field("", "the definition must be an object"));
    };
    match object.get("id") {
        None => {
            object.insert("id".into(), json!(id));
        }
        Some(Value::String(body_id)) if body_id == id.as_str() => {}
        Some(other) => return Err(ApiError::field("id", format!("{other} does not match the id in the URL ({id})"))),
    }
    let definition = parse_definition(document)?;
    let outcome = state.store.put_definition(&definition).await?;
    let status = if outcome.changed && outcome.version == 1 { StatusCode::CREATED } else { StatusCode::OK };
    tracing::info!(definition = %id, version = outcome.version, changed = outcome.changed, "definition saved");
    let mut body = json!({"id": id, "version": outcome.version, "changed": outcome.changed});
    // The definition is saved; its schedule follows. If Temporal is unreachable now, the
    // answer says so and the reconciler (start-up, `taskfactory schedules reconcile`) repairs it.
    match schedules::sync_definition(&state.temporal, &state.task_queue, &definition).await {
        Ok(action) => body["schedule"] = json!(action),
        Err(e) => {
            tracing::warn!(definition = %id, error = %e, "schedule sync failed");
            body["schedule"] = json!("sync_failed");
            body["schedule_error"] = json!(e.to_string());
        }
    }
    if definition.trigger.kind == TriggerKind::Cron {
        body["next_fires"] = json!(next_fires(&definition.trigger, Utc::now(), 10).unwrap_or_default());
    }
    Ok((status, Json(body)))
}

/// `POST /api/v1/validate`: checks a document (JSON or YAML) without saving it;
/// for cron triggers, previews the next 10 fire times.
pub async fn validate(headers: HeaderMap, body: Bytes) -> Result<Json<Value>, ApiError> {
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("body is not UTF-8".into()))?;
    let definition = parse_definition(parse_text(text, body_format(&headers))?)?;
    let fires = next_fires(&definition.trigger, Utc::now(), 10).map_err(|m| ApiError::field("trigger.cron", m))?;
    Ok(Json(json!({"valid": true, "id": definition.id, "next_fires": fires})))
}

/// `GET /api/v1/definitions/{id}`: the current version.
pub async fn get(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let record = state.store.get_definition(id.as_str()).await?;
    Ok(Json(json!({
        "id": id,
        "version": record.version,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "definition": record.definition,
    })))
}

/// `GET /api/v1/definitions`.
pub async fn list(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"definitions": state.store.list_definitions().await?})))
}

/// `GET /api/v1/definitions/{id}/versions`: newest first.
pub async fn versions(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    Ok(Json(json!({"id": id, "versions": state.store.list_versions(id.as_str()).await?})))
}

/// `GET /api/v1/definitions/{id}/versions/{version}`.
pub async fn version(State(state): State<ApiState>, Path((id, version)): Path<(String, String)>) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let number = parse_version("version", &version)?;
    Ok(Json(json!({"id": id, "version": state.store.get_version(id.as_str(), number).await?})))
}

fn parse_version(field: &str, raw: &str) -> Result<i32, ApiError> {
    raw.parse::<i32>().ok().filter(|v| *v > 0).ok_or_else(|| ApiError::field(field, format!("{raw:?} is not a version number (1, 2, ...)")))
}

/// Query of the diff route.
#[derive(Debug, Deserialize)]
pub struct DiffQuery {
    /// The old version.
    pub from: Option<String>,
    /// The new version (default: the current one).
    pub to: Option<String>,
}

/// `GET /api/v1/definitions/{id}/diff?from=1&to=2`: what changed, path by path.
pub async fn diff(State(state): State<ApiState>, Path(id): Path<String>, Query(q): Query<DiffQuery>) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let from = parse_version("from", q.from.as_deref().ok_or_else(|| ApiError::field("from", "required"))?)?;
    let to = match q.to.as_deref() {
        Some(raw) => parse_version("to", raw)?,
        None => state.store.get_definition(id.as_str()).await?.version,
    };
    let old = state.store.get_version(id.as_str(), from).await?;
    let new = state.store.get_version(id.as_str(), to).await?;
    let changes = taskfactory_schemas::diff::diff(&old.document, &new.document);
    Ok(Json(json!({"id": id, "from": from, "to": to, "changes": changes})))
}

/// `DELETE /api/v1/definitions/{id}`: soft delete; runs keep their versions.
pub async fn delete(State(state): State<ApiState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    state.store.delete_definition(id.as_str()).await?;
    tracing::info!(definition = %id, "definition deleted");
    if let Err(e) = schedules::delete(&state.temporal, &id).await {
        // The reconciler deletes orphaned schedules; the definition is gone either way.
        tracing::warn!(definition = %id, error = %e, "deleting the schedule failed");
    }
    Ok(StatusCode::NO_CONTENT)
}
