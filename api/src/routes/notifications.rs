//! A definition's notifications: every delivery its `notify` entries asked for, delivered or
//! failed, with the attempts made.

use axum::Json;
use axum::extract::{Path, Query, State};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use taskfactory_activities::store::NotificationRow;
use taskfactory_schemas::DefinitionId;
use utoipa::IntoParams;

use super::extract::{IdPath, path_id, query_number};
use crate::ApiState;
use crate::error::ApiError;

/// Query of the notification list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// The `next_before` of the previous page.
    pub before: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<String>,
}

/// A definition's notifications.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct NotificationList {
    /// The definition.
    pub definition_id: DefinitionId,
    /// Newest first.
    pub notifications: Vec<NotificationRow>,
    /// Pass as `before` for the next page; `null` on the last one.
    pub next_before: Option<i64>,
}

/// A definition's notifications
///
/// One entry per delivery its `notify` entries asked for (per run or silent slot, kind and
/// entry): `pending` while attempts remain, `delivered`, or `failed` after the last attempt,
/// with the attempts made, the webhook's last HTTP status and error, and the body sent
/// (secrets as placeholders).
#[utoipa::path(get, path = "/api/v1/definitions/{id}/notifications", operation_id = "list_notifications", tag = "definitions", params(IdPath, NotificationQuery),
    responses(
        (status = 200, description = "The notifications, newest first", body = ref("#/components/schemas/NotificationList")),
        (status = 404, description = "No such definition"),
        (status = 422, description = "`before` or `limit` is malformed"),
    ))]
pub async fn list(
    State(state): State<ApiState>,
    Path(IdPath { id }): Path<IdPath>,
    Query(q): Query<NotificationQuery>,
) -> Result<Json<NotificationList>, ApiError> {
    let id = path_id(&id)?;
    let before = query_number("before", &q.before, 1..=i64::MAX)?;
    let limit = query_number("limit", &q.limit, 1..=500)?.unwrap_or(50);
    state.store.get_definition(id.as_str()).await?;
    let notifications = state.store.list_notifications(id.as_str(), before, limit).await?;
    let next_before = (notifications.len() as i64 == limit).then(|| notifications.last().map(|n| n.id)).flatten();
    Ok(Json(NotificationList { definition_id: id, notifications, next_before }))
}
