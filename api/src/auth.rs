//! Authentication, authorisation and the audit log.
//!
//! Every route needs a key except `/healthz`, `/readyz`, `/metrics`, the OpenAPI document
//! (`/api/v1/openapi.json`: it describes the API, not its data) and the UI's static files.
//! Keys come as `Authorization: Bearer tfk_...`, `x-api-key`, or (for `EventSource`, which
//! cannot set headers) `?access_token=`. Roles are ordered: `viewer` reads; `operator` also
//! triggers, pauses, backfills, sends events and decides human tasks; `admin` also manages
//! definitions and keys. Aside of them, `reporter` (for workers: least privilege) may only
//! send events, external job events and task events — what operators may send too — and reads
//! nothing. Every mutating call is audited with its answer and request id.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
// `Role` lives with the keys in the store, which the CLI uses too; re-exported here, where the
// routes' needs are decided.
pub use taskfactory_activities::auth_store::Role;
use taskfactory_activities::auth_store::{AuditEntry, Principal};

use crate::ApiState;
use crate::error::ApiError;

/// The caller's role, as the guard authenticated it (`None` on open routes).
pub fn role_of(principal: Option<&Principal>) -> Option<Role> {
    principal.map(|p| p.role)
}

/// Whether the caller may see the values of `sensitive` context sources (admin keys only).
pub fn sees_sensitive(principal: Option<&Principal>) -> bool {
    role_of(principal) == Some(Role::Admin)
}

/// Whether the call only reports (events, external job events, task events): what a
/// `reporter` key may do.
pub fn is_reporting(method: &Method, path: &str) -> bool {
    *method == Method::POST
        && (path == "/api/v1/events"
            || path == "/api/v1/task-events"
            || (path.starts_with("/api/v1/runs/") && path.ends_with("/external-events")))
}

/// Whether a key of role `has` may make a call that needs `needed`: reporting calls take
/// reporter, operator and admin keys; every other call a key of at least its role (never a
/// reporter's).
pub fn permits(has: Role, needed: Role) -> bool {
    match needed {
        Role::Reporter => has == Role::Reporter || has >= Role::Operator,
        _ => has >= needed,
    }
}

/// The role a call needs; `None` for open routes.
pub fn required_role(method: &Method, path: &str) -> Option<Role> {
    if matches!(path, "/healthz" | "/readyz" | "/metrics" | "/api/v1/openapi.json" | "/" | "/api/v1/ui-config")
        || path.starts_with("/ui/")
    {
        return None;
    }
    if path.starts_with("/api/v1/keys") || path.starts_with("/api/v1/audit") || path == "/api/v1/schedules/reconcile" {
        return Some(Role::Admin);
    }
    if is_reporting(method, path) {
        return Some(Role::Reporter);
    }
    if *method == Method::GET || *method == Method::HEAD || path == "/api/v1/validate" {
        return Some(Role::Viewer);
    }
    let definition_change = path.starts_with("/api/v1/definitions/")
        && (*method == Method::PUT || *method == Method::DELETE)
        && path.trim_start_matches("/api/v1/definitions/").split('/').count() == 1;
    if definition_change { Some(Role::Admin) } else { Some(Role::Operator) }
}

fn presented_key(request: &Request) -> Option<String> {
    let headers = request.headers();
    if let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        return v.strip_prefix("Bearer ").map(|k| k.trim().to_owned());
    }
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_owned());
    }
    request.uri().query()?.split('&').find_map(|pair| pair.strip_prefix("access_token=").map(str::to_owned))
}

/// The middleware: authenticate, authorise, audit.
pub async fn guard(State(state): State<ApiState>, mut request: Request, next: Next) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mutating = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let mut principal: Option<Principal> = None;
    let mut response = match required_role(&method, &path) {
        None => next.run(request).await,
        Some(needed) => match presented_key(&request) {
            None => {
                ApiError::Unauthorized("an API key is required (Authorization: Bearer tfk_...)".into()).into_response()
            }
            Some(key) => match state.store.authenticate(&key).await {
                Err(e) => ApiError::Unavailable(format!("postgres: {e}")).into_response(),
                Ok(None) => ApiError::Unauthorized("the API key is unknown, revoked or expired".into()).into_response(),
                Ok(Some(p)) => {
                    principal = Some(p.clone());
                    if !permits(p.role, needed) {
                        ApiError::Forbidden(
                            format!("{method} {path} needs the {needed:?} role; key {:?} is {}", p.name, p.role)
                                .to_lowercase(),
                        )
                        .into_response()
                    } else {
                        request.extensions_mut().insert(p);
                        next.run(request).await
                    }
                }
            },
        },
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    if mutating && required_role(&method, &path).is_some() {
        let entry = AuditEntry {
            principal,
            action: format!("{method} {path}"),
            target: path.clone(),
            request_id,
            status: response.status().as_u16(),
        };
        if let Err(e) = state.store.audit(&entry).await {
            tracing::error!(error = %e, action = %entry.action, "writing the audit log failed");
        }
    }
    response
}
