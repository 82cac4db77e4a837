//! `/api/v1/definitions`: create (PUT makes a new immutable version), read, list, delete.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use taskfactory_activities::store::{DefinitionSummary, VersionRecord};
use taskfactory_schemas::definition::TriggerKind;
use taskfactory_schemas::diff::Change;
use taskfactory_schemas::preview::{DstWarning, Fire, next_fires, preview};
use taskfactory_schemas::validate::{Format, parse_definition, parse_text};
use taskfactory_schemas::{ActivityDefinition, DefinitionId};
use utoipa::IntoParams;

use super::extract::{IdPath, definition_filter, from_version, parse_version, path_id};
use crate::ApiState;
use crate::error::ApiError;
use crate::schedules;

fn body_format(headers: &HeaderMap) -> Format {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if content_type.contains("yaml") { Format::Yaml } else { Format::Json }
}

/// What a save did.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct SaveAnswer {
    /// The definition.
    pub id: DefinitionId,
    /// The current version after the call.
    pub version: i32,
    /// `false` when the document equals the current version (no new version was made).
    pub changed: bool,
    /// What happened to the definition's Temporal Schedule: `created`, `updated`,
    /// `unchanged`, `deleted`, `absent`, or `sync_failed` (the reconciler repairs it later).
    pub schedule: String,
    /// Why the schedule sync failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_error: Option<String>,
    /// For cron triggers: the next 10 fire times (local preview).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_fires: Option<Vec<Fire>>,
}

/// Save a definition (a new immutable version)
///
/// JSON or YAML, by Content-Type; the body's `id` may be left out. 201 for a new definition,
/// 200 otherwise; `changed: false` when the document equals the current version. The
/// definition's Temporal Schedule follows.
#[utoipa::path(put, path = "/api/v1/definitions/{id}", operation_id = "put_definition", tag = "definitions", params(IdPath),
    request_body(description = "The definition document", content(
        (ref("#/components/schemas/ActivityDefinition") = "application/json"),
        (ref("#/components/schemas/ActivityDefinition") = "application/yaml"),
    )),
    responses(
        (status = 201, description = "A new definition, version 1", body = ref("#/components/schemas/SaveAnswer")),
        (status = 200, description = "A new version, or `changed: false`", body = ref("#/components/schemas/SaveAnswer")),
        (status = 400, description = "The body is not UTF-8, JSON or YAML"),
        (status = 422, description = "The document is invalid: every problem, each with its path"),
    ))]
pub async fn put(
    State(state): State<ApiState>,
    Path(IdPath { id }): Path<IdPath>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<SaveAnswer>), ApiError> {
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
    let definition = checked_definition(&state, document)?;
    let outcome = state.store.put_definition(&definition).await?;
    let status = if outcome.changed && outcome.version == 1 { StatusCode::CREATED } else { StatusCode::OK };
    tracing::info!(definition = %id, version = outcome.version, changed = outcome.changed, "definition saved");
    // The definition is saved; its schedule follows. If Temporal is unreachable now, the
    // answer says so and the reconciler (start-up, `taskfactory schedules reconcile`) repairs it.
    let (schedule, schedule_error) =
        match schedules::sync_definition(&state.temporal, &state.task_queue, &definition).await {
            Ok(action) => (action.as_str().to_owned(), None),
            Err(e) => {
                tracing::warn!(definition = %id, error = %e, "schedule sync failed");
                ("sync_failed".to_owned(), Some(e.to_string()))
            }
        };
    let next_fires = (definition.trigger.kind == TriggerKind::Cron)
        .then(|| next_fires(&definition.trigger, Utc::now(), 10).unwrap_or_default());
    Ok((
        status,
        Json(SaveAnswer {
            id,
            version: outcome.version,
            changed: outcome.changed,
            schedule,
            schedule_error,
            next_fires,
        }),
    ))
}

/// Parses and validates a document, and checks that its `sql` sources name SQL connections
/// this process has (a source without `connection` needs the default one).
fn checked_definition(state: &ApiState, document: Value) -> Result<ActivityDefinition, ApiError> {
    let definition = parse_definition(document)?;
    let missing = state.context.check_connections(&definition);
    if missing.is_empty() { Ok(definition) } else { Err(ApiError::Invalid(missing)) }
}

/// A valid document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ValidAnswer {
    /// Always `true` (an invalid document is answered with 422).
    pub valid: bool,
    /// The document's id.
    pub id: DefinitionId,
    /// For cron triggers, the next 10 fire times; empty otherwise.
    pub next_fires: Vec<Fire>,
    /// Slots up to the 10th fire that a daylight-saving change removes or collapses.
    pub dst_warnings: Vec<DstWarning>,
}

/// Validate a definition without saving it
///
/// JSON or YAML, by Content-Type; for cron triggers, previews the next 10 fire times with
/// their daylight-saving warnings.
#[utoipa::path(post, path = "/api/v1/validate", operation_id = "validate_definition", tag = "definitions",
    request_body(description = "The definition document", content(
        (ref("#/components/schemas/ActivityDefinition") = "application/json"),
        (ref("#/components/schemas/ActivityDefinition") = "application/yaml"),
    )),
    responses(
        (status = 200, description = "The document is valid", body = ref("#/components/schemas/ValidAnswer")),
        (status = 400, description = "The body is not UTF-8, JSON or YAML"),
        (status = 422, description = "The document is invalid: every problem, each with its path"),
    ))]
pub async fn validate(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ValidAnswer>, ApiError> {
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("body is not UTF-8".into()))?;
    let definition = checked_definition(&state, parse_text(text, body_format(&headers))?)?;
    let made = preview(&definition.trigger, Utc::now(), 10).map_err(|m| ApiError::field("trigger.cron", m))?;
    Ok(Json(ValidAnswer { valid: true, id: definition.id, next_fires: made.fires, dst_warnings: made.warnings }))
}

/// A definition's current version.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DefinitionAnswer {
    /// The definition.
    pub id: DefinitionId,
    /// The current version.
    pub version: i32,
    /// When the definition was first created.
    pub created_at: DateTime<Utc>,
    /// When the current version was saved.
    pub updated_at: DateTime<Utc>,
    /// The document.
    pub definition: ActivityDefinition,
}

/// Read a definition's current version
#[utoipa::path(get, path = "/api/v1/definitions/{id}", operation_id = "get_definition", tag = "definitions", params(IdPath),
    responses(
        (status = 200, description = "The current version", body = ref("#/components/schemas/DefinitionAnswer")),
        (status = 404, description = "No such definition (or it was deleted)"),
        (status = 422, description = "The id is not a slug"),
    ))]
pub async fn get(
    State(state): State<ApiState>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Json<DefinitionAnswer>, ApiError> {
    let id = path_id(&id)?;
    let record = state.store.get_definition(id.as_str()).await?;
    Ok(Json(DefinitionAnswer {
        id,
        version: record.version,
        created_at: record.created_at,
        updated_at: record.updated_at,
        definition: record.definition,
    }))
}

/// The definitions.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DefinitionList {
    /// Every definition that is not deleted and passes the filters, by id.
    pub definitions: Vec<DefinitionSummary>,
}

/// Query of `GET /api/v1/definitions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only definitions carrying every one of these tags, comma-separated (`billing,nightly`).
    pub tag: Option<String>,
    /// Only definitions whose id or name contains this text, ignoring case.
    pub search: Option<String>,
}

/// List the definitions
///
/// `?tag=a,b` keeps those carrying every tag named; `?search=text` those whose id or name
/// contains the text (ignoring case).
#[utoipa::path(get, path = "/api/v1/definitions", operation_id = "list_definitions", tag = "definitions", params(ListQuery),
    responses(
        (status = 200, description = "The definitions that pass the filters", body = ref("#/components/schemas/DefinitionList")),
        (status = 422, description = "A tag that is not one (`tag[i]`), or a search text too long"),
    ))]
pub async fn list(State(state): State<ApiState>, Query(q): Query<ListQuery>) -> Result<Json<DefinitionList>, ApiError> {
    let tags =
        q.tag.iter().flat_map(|t| t.split(',')).map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect();
    let filter = definition_filter("tag", tags, q.search)?;
    Ok(Json(DefinitionList { definitions: state.store.list_definitions(&filter).await? }))
}

/// A definition's versions.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VersionList {
    /// The definition.
    pub id: DefinitionId,
    /// Newest first.
    pub versions: Vec<VersionRecord>,
}

/// List a definition's versions
///
/// Newest first; deleted definitions keep theirs.
#[utoipa::path(get, path = "/api/v1/definitions/{id}/versions", operation_id = "list_versions", tag = "definitions", params(IdPath),
    responses(
        (status = 200, description = "Every version, newest first", body = ref("#/components/schemas/VersionList")),
        (status = 404, description = "No such definition"),
        (status = 422, description = "The id is not a slug"),
    ))]
pub async fn versions(
    State(state): State<ApiState>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Json<VersionList>, ApiError> {
    let id = path_id(&id)?;
    Ok(Json(VersionList { versions: state.store.list_versions(id.as_str()).await?, id }))
}

/// The `{id}` and `{version}` of a version's route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionPath {
    /// The definition's id.
    pub id: String,
    /// The version number: 1, 2, ...
    pub version: String,
}

/// One version of a definition.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VersionAnswer {
    /// The definition.
    pub id: DefinitionId,
    /// The version.
    pub version: VersionRecord,
}

/// Read one version of a definition
#[utoipa::path(get, path = "/api/v1/definitions/{id}/versions/{version}", operation_id = "get_version", tag = "definitions", params(VersionPath),
    responses(
        (status = 200, description = "The version", body = ref("#/components/schemas/VersionAnswer")),
        (status = 404, description = "No such definition or version"),
        (status = 422, description = "The id is not a slug, or the version not a number"),
    ))]
pub async fn version(
    State(state): State<ApiState>,
    Path(VersionPath { id, version }): Path<VersionPath>,
) -> Result<Json<VersionAnswer>, ApiError> {
    let id = path_id(&id)?;
    let number = parse_version("version", &version)?;
    Ok(Json(VersionAnswer { version: state.store.get_version(id.as_str(), number).await?, id }))
}

/// Query of the diff route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The old version (required).
    pub from: Option<String>,
    /// The new version (default: the current one).
    pub to: Option<String>,
}

/// What changed between two versions.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct DiffAnswer {
    /// The definition.
    pub id: DefinitionId,
    /// The old version.
    pub from: i32,
    /// The new version.
    pub to: i32,
    /// Path by path.
    pub changes: Vec<Change>,
}

/// Compare two versions of a definition
///
/// `?from=1&to=2`: what changed, path by path.
#[utoipa::path(get, path = "/api/v1/definitions/{id}/diff", operation_id = "diff_versions", tag = "definitions", params(IdPath, DiffQuery),
    responses(
        (status = 200, description = "The changes", body = ref("#/components/schemas/DiffAnswer")),
        (status = 404, description = "No such definition or version"),
        (status = 422, description = "`from` is missing, or a version is not a number"),
    ))]
pub async fn diff(
    State(state): State<ApiState>,
    Path(IdPath { id }): Path<IdPath>,
    Query(q): Query<DiffQuery>,
) -> Result<Json<DiffAnswer>, ApiError> {
    let id = path_id(&id)?;
    let from = from_version(q.from.as_deref())?;
    let to = match q.to.as_deref() {
        Some(raw) => parse_version("to", raw)?,
        None => state.store.get_definition(id.as_str()).await?.version,
    };
    let old = state.store.get_version(id.as_str(), from).await?;
    let new = state.store.get_version(id.as_str(), to).await?;
    let changes = taskfactory_schemas::diff::diff(&old.document, &new.document);
    Ok(Json(DiffAnswer { id, from, to, changes }))
}

/// Delete a definition
///
/// A soft delete: runs keep their versions; the definition's schedule is deleted.
#[utoipa::path(delete, path = "/api/v1/definitions/{id}", operation_id = "delete_definition", tag = "definitions", params(IdPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such definition"),
        (status = 422, description = "The id is not a slug"),
    ))]
pub async fn delete(State(state): State<ApiState>, Path(IdPath { id }): Path<IdPath>) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    state.store.delete_definition(id.as_str()).await?;
    tracing::info!(definition = %id, "definition deleted");
    if let Err(e) = schedules::delete(&state.temporal, &id).await {
        // The reconciler deletes orphaned schedules; the definition is gone either way.
        tracing::warn!(definition = %id, error = %e, "deleting the schedule failed");
    }
    Ok(StatusCode::NO_CONTENT)
}
