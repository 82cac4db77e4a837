//! API keys and the audit log.
//!
//! A key reads `tfk_<id>_<secret>`; only the SHA-256 of the secret is stored, so a database
//! dump does not reveal usable keys, and the secret is shown once, at creation. A key has a
//! [`Role`]; the API's guard compares it with the role each route needs.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError};

/// Roles, weakest first: `viewer` reads; `operator` also triggers, pauses, backfills, sends
/// events and decides human tasks; `admin` also manages definitions and keys. Stored, shown
/// and accepted by their lowercase names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sends events, external job events and task events only (for workers: least privilege);
    /// reads nothing.
    Reporter,
    /// Reads.
    Viewer,
    /// Operates runs.
    Operator,
    /// Manages definitions and keys.
    Admin,
}

/// A key to create, checked: who it is for, its role, and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// What it is for.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When it stops working (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
}

/// What is wrong with a key request: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct KeyRequestError {
    /// `name`, `role` or `expires_in`.
    pub field: &'static str,
    /// Why.
    pub message: String,
}

impl NewKey {
    /// Checks a key request as the API and the CLI receive it: a non-blank name, one of the
    /// roles, and a lifetime such as `30d` (optional).
    pub fn check(name: Option<&str>, role: Option<&str>, expires_in: Option<&str>) -> Result<Self, KeyRequestError> {
        let error = |field, message: String| KeyRequestError { field, message };
        let name = name.filter(|n| !n.trim().is_empty()).ok_or_else(|| error("name", "required".to_owned()))?;
        let raw = role.ok_or_else(|| error("role", "required: reporter, viewer, operator or admin".to_owned()))?;
        let role = Role::parse(raw)
            .ok_or_else(|| error("role", format!("{raw:?} is not reporter, viewer, operator or admin")))?;
        let expires_at = match expires_in {
            None => None,
            Some(d) => {
                let d = taskfactory_schemas::duration::parse_duration(d).map_err(|m| error("expires_in", m))?;
                let d = chrono::Duration::from_std(d).map_err(|_| error("expires_in", "too long".to_owned()))?;
                Some(Utc::now().checked_add_signed(d).ok_or_else(|| error("expires_in", "too long".to_owned()))?)
            }
        };
        Ok(Self { name: name.to_owned(), role, expires_at })
    }
}

impl Role {
    /// The stored (and documented) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reporter => "reporter",
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    /// Parses a stored role name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "reporter" => Some(Self::Reporter),
            "viewer" => Some(Self::Viewer),
            "operator" => Some(Self::Operator),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that widths (`{:<9}`) apply.
        f.pad(self.as_str())
    }
}

/// A name that is not one of the [`Role`]s.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a role; the roles are reporter, viewer, operator and admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(raw: &str) -> Result<Self, UnknownRole> {
        Self::parse(raw).ok_or_else(|| UnknownRole(raw.to_owned()))
    }
}

// How `ApiKey` rows decode; the `api_keys.role` column is checked against the same names.
impl TryFrom<String> for Role {
    type Error = UnknownRole;

    fn try_from(raw: String) -> Result<Self, UnknownRole> {
        raw.parse()
    }
}

/// A key as listed (never its secret).
#[derive(Clone, Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct ApiKey {
    /// Public id (the middle part of the key).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    #[schemars(with = "String")]
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last successful use (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Who a valid key belongs to.
#[derive(Clone, Debug, Serialize)]
pub struct Principal {
    /// Key id.
    pub key_id: String,
    /// Key name.
    pub name: String,
    /// Role.
    pub role: Role,
}

/// One audited call.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    /// Who (absent when the call was refused before authentication).
    pub principal: Option<Principal>,
    /// `METHOD /route`.
    pub action: String,
    /// The path called.
    pub target: String,
    /// The request id returned in `x-request-id`.
    pub request_id: String,
    /// The HTTP status answered.
    pub status: u16,
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut out = String::new();
    while out.len() < bytes * 2 {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(bytes * 2);
    out
}

impl Store {
    /// Creates a key; returns it with its full secret, which is not stored.
    pub async fn create_key(
        &self,
        name: &str,
        role: Role,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(ApiKey, String), StoreError> {
        let id = random_hex(6);
        let secret = random_hex(24);
        let row: (DateTime<Utc>,) =
            sqlx::query_as("insert into api_keys (id, name, role, secret_hash, expires_at) values ($1, $2, $3, $4, $5) returning created_at")
                .bind(&id)
                .bind(name)
                .bind(role.as_str())
                .bind(hash(&secret))
                .bind(expires_at)
                .fetch_one(self.pool())
                .await?;
        let key = ApiKey {
            id: id.clone(),
            name: name.to_owned(),
            role,
            created_at: row.0,
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        Ok((key, format!("tfk_{id}_{secret}")))
    }

    /// The principal of a presented key, if it is valid (known, not revoked, not expired).
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, StoreError> {
        let Some((id, secret)) = token.strip_prefix("tfk_").and_then(|rest| rest.split_once('_')) else {
            return Ok(None);
        };
        // A read per request; `last_used_at` is written at most once a minute per key, so
        // concurrent requests of one key never queue on its row's lock.
        let row: Option<(String, String)> = sqlx::query_as(
            "with k as (select id, name, role, last_used_at from api_keys where id = $1 and secret_hash = $2 \
               and revoked_at is null and (expires_at is null or expires_at > now())), \
             used as (update api_keys set last_used_at = now() where id = \
               (select id from k where last_used_at is null or last_used_at < now() - interval '1 minute')) \
             select name, role from k",
        )
        .bind(id)
        .bind(hash(secret))
        .fetch_optional(self.pool())
        .await?;
        row.map(|(name, role)| {
            let role = role.parse().map_err(|e: UnknownRole| StoreError::Corrupt(format!("key {id:?}: {e}")))?;
            Ok(Principal { key_id: id.to_owned(), name, role })
        })
        .transpose()
    }

    /// Every key, newest first.
    pub async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        Ok(sqlx::query_as::<_, ApiKey>(
            "select id, name, role, created_at, expires_at, revoked_at, last_used_at from api_keys order by created_at desc",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Revokes a key; `NotFound` when there is no such (unrevoked) key.
    pub async fn revoke_key(&self, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("update api_keys set revoked_at = now() where id = $1 and revoked_at is null")
            .bind(id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("key {id:?}")));
        }
        Ok(())
    }

    /// Records audited calls, in order, in one statement.
    pub async fn audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let column = |f: fn(&AuditEntry) -> Option<&str>| entries.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "insert into audit_log (key_id, key_name, role, action, target, request_id, status) \
             select key_id, key_name, role, action, target, request_id, status from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[]) \
             with ordinality as e(key_id, key_name, role, action, target, request_id, status, n) order by n",
        )
        .bind(column(|e| e.principal.as_ref().map(|p| p.key_id.as_str())))
        .bind(column(|e| e.principal.as_ref().map(|p| p.name.as_str())))
        .bind(column(|e| e.principal.as_ref().map(|p| p.role.as_str())))
        .bind(column(|e| Some(e.action.as_str())))
        .bind(column(|e| Some(e.target.as_str())))
        .bind(column(|e| Some(e.request_id.as_str())))
        .bind(entries.iter().map(|e| i32::from(e.status)).collect::<Vec<_>>())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The newest audit entries.
    pub async fn list_audit(&self, limit: i64) -> Result<Vec<Value>, StoreError> {
        let rows: Vec<(Value,)> = sqlx::query_as("select to_jsonb(a) from audit_log a order by id desc limit $1")
            .bind(limit.clamp(1, 1000))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_by_their_lowercase_names() {
        for role in [Role::Reporter, Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
            assert_eq!(serde_json::from_value::<Role>(role.as_str().into()).unwrap(), role);
        }
        assert!(Role::Reporter < Role::Viewer && Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert_eq!(format!("[{:<9}]", Role::Admin), "[admin    ]");
        assert_eq!(
            "root".parse::<Role>().unwrap_err().to_string(),
            r#""root" is not a role; the roles are reporter, viewer, operator and admin"#
        );
        assert!(Role::try_from("Admin".to_owned()).is_err());
    }

    #[test]
    fn key_requests_are_checked_field_by_field() {
        let ok = NewKey::check(Some("ci"), Some("operator"), Some("30d")).unwrap();
        assert_eq!((ok.name.as_str(), ok.role), ("ci", Role::Operator));
        assert!(ok.expires_at.is_some_and(|at| at > Utc::now() + chrono::Duration::days(29)));
        assert_eq!(NewKey::check(Some("ci"), Some("admin"), None).unwrap().expires_at, None);
        let field = |name, role, expires| NewKey::check(name, role, expires).unwrap_err().field;
        assert_eq!(field(None, Some("admin"), None), "name");
        assert_eq!(field(Some("  "), Some("admin"), None), "name");
        assert_eq!(field(Some("ci"), None, None), "role");
        assert_eq!(field(Some("ci"), Some("root"), None), "role");
        assert_eq!(field(Some("ci"), Some("admin"), Some("soon")), "expires_in");
    }
}
