//! API keys and the audit log (admin).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use taskfactory_schemas::duration::parse_duration;

use super::json_body;
use crate::ApiState;
use crate::auth::Role;
use crate::error::ApiError;

/// Body of a key creation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for.
    pub name: Option<String>,
    /// `viewer`, `operator` or `admin`.
    pub role: Option<String>,
    /// Lifetime, e.g. `30d` (default: no expiry).
    pub expires_in: Option<String>,
}

/// Validates a key request; returns (name, role, expiry).
pub fn check_key_request(r: &CreateKey) -> Result<(String, String, Option<chrono::DateTime<chrono::Utc>>), ApiError> {
    let name = r.name.clone().filter(|n| !n.trim().is_empty()).ok_or_else(|| ApiError::field("name", "required"))?;
    let role = r.role.clone().ok_or_else(|| ApiError::field("role", "required: viewer, operator or admin"))?;
    if Role::parse(&role).is_none() {
        return Err(ApiError::field("role", format!("{role:?} is not viewer, operator or admin")));
    }
    let expires = match &r.expires_in {
        None => None,
        Some(d) => {
            let d = parse_duration(d).map_err(|m| ApiError::field("expires_in", m))?;
            Some(chrono::Utc::now() + chrono::Duration::from_std(d).map_err(|_| ApiError::field("expires_in", "too long"))?)
        }
    };
    Ok((name, role, expires))
}

/// `POST /api/v1/keys`: the answer carries the key once; it is not stored.
pub async fn create(State(state): State<ApiState>, body: Bytes) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: CreateKey = json_body(&body)?;
    let (name, role, expires) = check_key_request(&request)?;
    let (key, secret) = state.store.create_key(&name, &role, expires).await?;
    Ok((StatusCode::CREATED, Json(json!({"key": secret, "info": key}))))
}

/// `GET /api/v1/keys`.
pub async fn list(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"keys": state.store.list_keys().await?})))
}

/// `DELETE /api/v1/keys/{id}`: revokes at once.
pub async fn revoke(State(state): State<ApiState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.store.revoke_key(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of the audit log.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// How many entries (default 100).
    pub limit: Option<i64>,
}

/// `GET /api/v1/audit`: newest first.
pub async fn audit(State(state): State<ApiState>, Query(q): Query<AuditQuery>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"audit": state.store.list_audit(q.limit.unwrap_or(100)).await?})))
}
