//! API keys and the audit log.
//!
//! A key reads `tfk_<id>_<secret>`; only the SHA-256 of the secret is stored, so a database
//! dump does not reveal usable keys, and the secret is shown once, at creation.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError};

/// A key as listed (never its secret).
#[derive(Clone, Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct ApiKey {
    /// Public id (the middle part of the key).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last successful use.
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
    pub role: String,
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
        role: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(ApiKey, String), StoreError> {
        let id = random_hex(6);
        let secret = random_hex(24);
        let row: (DateTime<Utc>,) =
            sqlx::query_as("insert into api_keys (id, name, role, secret_hash, expires_at) values ($1, $2, $3, $4, $5) returning created_at")
                .bind(&id)
                .bind(name)
                .bind(role)
                .bind(hash(&secret))
                .bind(expires_at)
                .fetch_one(self.pool())
                .await?;
        let key = ApiKey {
            id: id.clone(),
            name: name.to_owned(),
            role: role.to_owned(),
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
        let row: Option<(String, String)> = sqlx::query_as(
            "update api_keys set last_used_at = now() where id = $1 and secret_hash = $2 and revoked_at is null \
             and (expires_at is null or expires_at > now()) returning name, role",
        )
        .bind(id)
        .bind(hash(secret))
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(name, role)| Principal { key_id: id.to_owned(), name, role }))
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

    /// Records an audited call.
    pub async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let p = entry.principal.as_ref();
        sqlx::query("insert into audit_log (key_id, key_name, role, action, target, request_id, status) values ($1, $2, $3, $4, $5, $6, $7)")
            .bind(p.map(|p| p.key_id.as_str()))
            .bind(p.map(|p| p.name.as_str()))
            .bind(p.map(|p| p.role.as_str()))
            .bind(&entry.action)
            .bind(&entry.target)
            .bind(&entry.request_id)
            .bind(i32::from(entry.status))
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
