//! API keys and the audit log (admin).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use taskfactory_activities::auth_store::{ApiKey, NewKey};
use utoipa::IntoParams;

use super::json_body;
use crate::ApiState;
use crate::error::ApiError;

/// Body of a key creation.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for.
    pub name: Option<String>,
    /// `viewer`, `operator` or `admin`.
    pub role: Option<String>,
    /// Lifetime, e.g. `30d` (default: no expiry).
    pub expires_in: Option<String>,
}

/// A new key.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CreatedKey {
    /// The key itself (`tfk_<id>_<secret>`): shown this once, only its hash is stored.
    pub key: String,
    /// What the key list shows of it.
    pub info: ApiKey,
}

/// Create an API key
///
/// The answer carries the key once; it is not stored.
#[utoipa::path(post, path = "/api/v1/keys", operation_id = "create_key", tag = "keys",
    request_body(content = ref("#/components/schemas/CreateKey")),
    responses(
        (status = 201, description = "Created", body = ref("#/components/schemas/CreatedKey")),
        (status = 422, description = "Missing name or role, unknown role, or a bad `expires_in`"),
    ))]
pub async fn create(State(state): State<ApiState>, body: Bytes) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let request: CreateKey = json_body(&body)?;
    let new = NewKey::check(request.name.as_deref(), request.role.as_deref(), request.expires_in.as_deref())
        .map_err(|e| ApiError::field(e.field, e.message))?;
    let (info, key) = state.store.create_key(&new.name, new.role, new.expires_at).await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { key, info })))
}

/// The keys.
#[derive(Debug, Serialize, JsonSchema)]
pub struct KeyList {
    /// Newest first, revoked and expired ones included; never their secrets.
    pub keys: Vec<ApiKey>,
}

/// List API keys
#[utoipa::path(get, path = "/api/v1/keys", operation_id = "list_keys", tag = "keys",
    responses((status = 200, description = "Every key", body = ref("#/components/schemas/KeyList"))))]
pub async fn list(State(state): State<ApiState>) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(KeyList { keys: state.store.list_keys().await? }))
}

/// The `{id}` of a key's route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// The key's public id (the middle part of `tfk_<id>_<secret>`).
    pub id: String,
}

/// Revoke an API key
///
/// At once: the key's next call is refused.
#[utoipa::path(delete, path = "/api/v1/keys/{id}", operation_id = "revoke_key", tag = "keys", params(KeyPath),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such key"),
    ))]
pub async fn revoke(
    State(state): State<ApiState>,
    Path(KeyPath { id }): Path<KeyPath>,
) -> Result<StatusCode, ApiError> {
    state.store.revoke_key(&id).await?;
    state.keys.forget_all();
    Ok(StatusCode::NO_CONTENT)
}

/// Query of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// How many entries (default 100, at most 1,000).
    pub limit: Option<i64>,
}

/// The audit log.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditList {
    /// Rows of the `audit_log` table, newest first: `id`, `at`, who (`key_id`, `key_name`,
    /// `role`), `action` (`METHOD /path`), `target`, `request_id`, `status`.
    pub audit: Vec<Value>,
}

/// Read the audit log
///
/// Every mutating call, newest first, with its answer's status and request id.
#[utoipa::path(get, path = "/api/v1/audit", operation_id = "list_audit", tag = "keys", params(AuditQuery),
    responses((status = 200, description = "Newest first", body = ref("#/components/schemas/AuditList"))))]
pub async fn audit(State(state): State<ApiState>, Query(q): Query<AuditQuery>) -> Result<Json<AuditList>, ApiError> {
    state.audit.flush().await;
    Ok(Json(AuditList { audit: state.store.list_audit(q.limit.unwrap_or(100)).await? }))
}
