//! Authentication, authorisation and the audit log.
//!
//! Every route needs a key except `/healthz`, `/readyz`, `/metrics`, the OpenAPI document
//! (`/api/v1/openapi.json`: it describes the API, not its data) and the UI's static files.
//! Keys come as `Authorization: Bearer tfk_...`, `x-api-key`, or (for `EventSource`, which
//! cannot set headers) `?access_token=`. Roles are ordered: `viewer` reads; `operator` also
//! triggers, pauses, backfills, sends events and decides human tasks; `admin` also manages
//! definitions and keys. Aside of them, `reporter` (for workers: least privilege) may only
//! send events, external job events and task events — what operators may send too — and reads
//! nothing. Every mutating call is audited with its answer and request id ([`crate::audit`]).
//! Keys are asked of Postgres at most every [`KEY_CACHE_TTL`] per process ([`KeyCache`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
// `Role` lives with the keys in the store, which the CLI uses too; re-exported here, where the
// routes' needs are decided.
use sha2::{Digest, Sha256};
pub use taskfactory_activities::auth_store::Role;
use taskfactory_activities::auth_store::{AuditEntry, Principal};
use taskfactory_activities::store::{Store, StoreError};

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

/// How long an authenticated key is taken without asking Postgres again: a key revoked or
/// expired elsewhere (the CLI, another API process) is refused within this time; one revoked
/// through this process's API at once.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

/// Keys this process authenticated in the last [`KEY_CACHE_TTL`], by the hash of the key.
#[derive(Clone, Default)]
pub struct KeyCache(Arc<Mutex<Remembered>>);

/// A key's SHA-256 to its principal and when Postgres last confirmed it.
type Remembered = HashMap<[u8; 32], (Principal, Instant)>;

/// Keys remembered at most; past it the cache starts over.
const MAX_KEYS: usize = 10_000;

impl KeyCache {
    /// The key's principal: remembered, or asked of Postgres (`None`: unknown, revoked or
    /// expired; never remembered).
    pub async fn authenticate(&self, store: &Store, key: &str) -> Result<Option<Principal>, StoreError> {
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if let Some((principal, at)) = self.lock().get(&hash)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(Some(principal.clone()));
        }
        let principal = store.authenticate(key).await?;
        if let Some(p) = &principal {
            let mut keys = self.lock();
            if keys.len() >= MAX_KEYS {
                keys.clear();
            }
            keys.insert(hash, (p.clone(), Instant::now()));
        }
        Ok(principal)
    }

    /// Forgets every key (one was revoked).
    pub fn forget_all(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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
            Some(key) => match state.keys.authenticate(&state.store, &key).await {
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
    // Reports that were taken (events, task and external job events) are data, kept in
    // their own logs (receipts, decisions, the run log); refused ones are audited like any
    // other call.
    let taken_report = is_reporting(&method, &path) && response.status().is_success();
    if mutating && required_role(&method, &path).is_some() && !taken_report {
        let entry = AuditEntry {
            principal,
            action: format!("{method} {path}"),
            target: path.clone(),
            request_id,
            status: response.status().as_u16(),
        };
        state.audit.record(&state.store, entry).await;
    }
    response
}
