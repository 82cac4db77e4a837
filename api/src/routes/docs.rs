//! `GET /api/v1/openapi.json`: the OpenAPI document of this API (no key needed: it describes
//! the API, not its data), as [`crate::OPENAPI`] holds it.

use axum::Json;
use serde_json::Value;

/// The OpenAPI document of this API
///
/// OpenAPI 3.1, generated from the code; `api/openapi.json` in the repository is the same.
#[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "openapi_document", tag = "health",
    responses((status = 200, description = "This document", body = Object)))]
pub async fn openapi_json() -> Json<Value> {
    Json(crate::OPENAPI.clone())
}
