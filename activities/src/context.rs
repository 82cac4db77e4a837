//! Resolving a definition's context sources, in order; later sources see earlier ones.
//!
//! - `static`: the literal value;
//! - `trigger`: the trigger's payload;
//! - `sql`: the query's rows as a list of objects, run in a read-only transaction with a
//!   statement timeout, on a named connection (the context database is the one named
//!   `default`), never the store's own pool; see [`crate::sql_access`]. Parameters are rendered
//!   from templates and *bound* (as text), never spliced into the SQL; the extended protocol
//!   also refuses multi-statement strings.
//! - `http`: a JSON document (GET, or POST with a templated body), optionally narrowed by a
//!   JSON pointer (`select`). 4xx and non-JSON answers are permanent errors; 5xx, timeouts and
//!   connection errors are retried.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::PgPool;

use crate::egress::{self, Egress, EgressError, Outgoing};
use crate::secrets::{Revealed, SecretStore};
use crate::sql_access::{AccessError, DEFAULT_CONNECTION, SqlConnection};
use taskfactory_schemas::ActivityDefinition;
use taskfactory_schemas::definition::{ContextKind, ContextSource};
use taskfactory_schemas::run::{LoadedDefinition, TriggerInfo};
use taskfactory_schemas::template::Templates;
use taskfactory_schemas::validate::FieldError;

/// Limits applied while resolving.
#[derive(Clone, Copy, Debug)]
pub struct ContextLimits {
    /// `statement_timeout` of each SQL source.
    pub sql_statement_timeout: Duration,
    /// Largest context, serialised, in bytes; the snapshot travels through Temporal history.
    pub max_bytes: usize,
}

impl Default for ContextLimits {
    fn default() -> Self {
        Self { sql_statement_timeout: Duration::from_secs(30), max_bytes: 1024 * 1024 }
    }
}

/// What context sources read from.
#[derive(Clone, Debug)]
pub struct ContextClients {
    /// The databases `sql` sources may query, by name; a source without `connection` uses
    /// [`DEFAULT_CONNECTION`]. Never the store's own pool ([`crate::sql_access`]).
    pub connections: HashMap<String, SqlConnection>,
    /// For `http` sources (follows no redirects: [`egress::send`] does, hop by hop).
    pub http: reqwest::Client,
    /// Where `http` sources may connect.
    pub egress: Egress,
    /// Values of `{{ secret.NAME }}` in `http` sources and `sql` params.
    pub secrets: SecretStore,
}

impl Default for ContextClients {
    /// No SQL connections, public HTTP targets only, no secrets.
    fn default() -> Self {
        Self {
            connections: HashMap::new(),
            http: egress::http_client(),
            egress: Egress::default(),
            secrets: SecretStore::default(),
        }
    }
}

impl ContextClients {
    /// Adds (or replaces) a named SQL connection.
    pub fn with_connection(mut self, connection: SqlConnection) -> Self {
        self.connections.insert(connection.name.clone(), connection);
        self
    }

    /// The connection a `sql` source at `path` queries, or why there is none.
    pub fn connection_for(&self, source: &ContextSource, path: &str) -> Result<&SqlConnection, FieldError> {
        let name = source.connection.as_deref().unwrap_or(DEFAULT_CONNECTION);
        self.connections.get(name).ok_or_else(|| FieldError {
            path: format!("{path}.connection"),
            message: self.missing(source.connection.as_deref()),
        })
    }

    fn missing(&self, named: Option<&str>) -> String {
        let mut names: Vec<&str> = self.connections.keys().map(String::as_str).collect();
        names.sort_unstable();
        let known = if names.is_empty() {
            "none is configured".to_owned()
        } else {
            format!("configured: {}", names.join(", "))
        };
        match named {
            Some(name) => format!("no SQL connection named {name:?} ({known}; --sql-connection {name}=URL adds it)"),
            None => format!(
                "required: no default SQL connection is configured ({known}); name one, or configure the context database (TASKFACTORY_CONTEXT_DATABASE_URL)"
            ),
        }
    }

    /// The `sql` sources of `definition` that name no configured connection; checked when a
    /// definition is saved or validated.
    pub fn check_connections(&self, definition: &ActivityDefinition) -> Vec<FieldError> {
        definition
            .context
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind == ContextKind::Sql)
            .filter_map(|(i, s)| self.connection_for(s, &format!("context[{i}]")).err())
            .collect()
    }
}

/// Checks every SQL connection's role at start-up (at most
/// [`crate::sql_access::STARTUP_CHECK_TIMEOUT`] each). A privileged role is an error; a
/// database that cannot be reached now is logged and checked again before its first query.
pub async fn verify_connections(clients: &ContextClients) -> Result<(), AccessError> {
    let mut names: Vec<&String> = clients.connections.keys().collect();
    names.sort();
    for name in names {
        let connection = &clients.connections[name];
        match tokio::time::timeout(crate::sql_access::STARTUP_CHECK_TIMEOUT, connection.verify()).await {
            Ok(Ok(())) => {
                tracing::info!(connection = %name, allowed_privileged = connection.allow_privileged, "SQL context connection checked")
            }
            Ok(Err(AccessError::Privileged(message))) => return Err(AccessError::Privileged(message)),
            Ok(Err(e)) => {
                tracing::warn!(connection = %name, error = %e, "SQL context connection not reachable; it is checked before its first query")
            }
            Err(_) => {
                tracing::warn!(connection = %name, "SQL context connection did not answer in time; it is checked before its first query")
            }
        }
    }
    Ok(())
}

/// Why resolution failed; `permanent` errors are not retried.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ContextError {
    /// The source's field path, e.g. `context[0].query`.
    pub path: String,
    /// What went wrong.
    pub message: String,
    /// Retrying cannot help (bad SQL, template error) when true.
    pub permanent: bool,
}

/// Resolves every source of `loaded` into an object `{name: value}`. A source named in
/// `overrides` takes that value instead of being resolved (dry-runs with sample data).
pub async fn resolve(
    clients: &ContextClients,
    loaded: &LoadedDefinition,
    trigger: &TriggerInfo,
    overrides: &Map<String, Value>,
    limits: ContextLimits,
) -> Result<Value, ContextError> {
    let templates = Templates::new();
    let mut context = Map::new();
    for (index, source) in loaded.definition.context.iter().enumerate() {
        let path = format!("context[{index}]");
        let scope = serde_json::json!({
            "context": Value::Object(context.clone()),
            "trigger": trigger,
            "definition": {"id": loaded.definition.id, "name": loaded.definition.name, "version": loaded.version},
        });
        if let Some(value) = overrides.get(&source.name) {
            context.insert(source.name.clone(), value.clone());
            continue;
        }
        // The secrets a source used are redacted from its value and its errors.
        let mut revealed = Revealed::default();
        let redact = |revealed: &Revealed, mut e: ContextError| {
            e.message = revealed.redact(&e.message);
            e
        };
        let value = match source.kind {
            ContextKind::Static => source.value.clone().unwrap_or(Value::Null),
            // A debounced or batched run: every event, and the last one.
            ContextKind::Trigger if !trigger.events.is_empty() => {
                serde_json::json!({"events": trigger.events, "event": trigger.event})
            }
            ContextKind::Trigger => trigger.payload.clone(),
            ContextKind::Sql => {
                let connection = clients.connection_for(source, &path).map_err(|e| ContextError {
                    path: e.path,
                    message: e.message,
                    permanent: true,
                })?;
                connection.verify().await.map_err(|e| ContextError {
                    path: format!("{path}.connection"),
                    permanent: matches!(e, AccessError::Privileged(_)),
                    message: e.to_string(),
                })?;
                resolve_sql(
                    &connection.pool,
                    &clients.secrets,
                    &mut revealed,
                    source,
                    &templates,
                    &scope,
                    &path,
                    limits,
                )
                .await
                .map_err(|e| redact(&revealed, e))?
            }
            ContextKind::Http => resolve_http(clients, &mut revealed, source, &templates, &scope, &path, limits)
                .await
                .map_err(|e| redact(&revealed, e))?,
        };
        context.insert(source.name.clone(), revealed.redact_value(value));
    }
    let context = Value::Object(context);
    let size = serde_json::to_vec(&context).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > limits.max_bytes {
        return Err(ContextError {
            path: "context".into(),
            message: format!("resolved context is {size} bytes, over the limit of {} bytes", limits.max_bytes),
            permanent: true,
        });
    }
    Ok(context)
}

#[allow(clippy::too_many_arguments)]
async fn resolve_sql(
    pool: &PgPool,
    secrets: &SecretStore,
    revealed: &mut Revealed,
    source: &ContextSource,
    templates: &Templates,
    scope: &Value,
    path: &str,
    limits: ContextLimits,
) -> Result<Value, ContextError> {
    let query = source.query.as_deref().unwrap_or_default().trim().trim_end_matches(';');
    let mut params = Vec::with_capacity(source.params.len());
    for (i, template) in source.params.iter().enumerate() {
        let rendered = templates.render_value(template, scope).map_err(|message| ContextError {
            path: format!("{path}.params[{i}]"),
            message,
            permanent: true,
        })?;
        let reveal = |text: String, revealed: &mut Revealed| {
            revealed.reveal(secrets, &text).map_err(|message| ContextError {
                path: format!("{path}.params[{i}]"),
                message,
                permanent: true,
            })
        };
        params.push(match rendered {
            Value::Null => None,
            Value::String(s) => Some(reveal(s, revealed)?),
            other => Some(other.to_string()),
        });
    }
    let transient = |e: sqlx::Error| ContextError { path: path.to_owned(), message: e.to_string(), permanent: false };
    let mut tx = pool.begin().await.map_err(transient)?;
    sqlx::query("set transaction read only").execute(&mut *tx).await.map_err(transient)?;
    sqlx::query(&format!("set local statement_timeout = {}", limits.sql_statement_timeout.as_millis()))
        .execute(&mut *tx)
        .await
        .map_err(transient)?;
    // Wrapping the query makes Postgres build the JSON, whatever the column types.
    let wrapped = format!("select coalesce(json_agg(q), '[]'::json) from ({query}) as q");
    let mut statement = sqlx::query_scalar::<_, Value>(&wrapped);
    for p in &params {
        statement = statement.bind(p.as_deref());
    }
    let rows = statement.fetch_one(&mut *tx).await.map_err(|e| {
        // Errors the database reports about the query itself will not go away on retry.
        let permanent = matches!(e, sqlx::Error::Database(_));
        ContextError { path: format!("{path}.query"), message: e.to_string(), permanent }
    })?;
    tx.rollback().await.map_err(transient)?;
    Ok(rows)
}

async fn resolve_http(
    clients: &ContextClients,
    revealed: &mut Revealed,
    source: &ContextSource,
    templates: &Templates,
    scope: &Value,
    path: &str,
    limits: ContextLimits,
) -> Result<Value, ContextError> {
    let fail = |field: &str, message: String, permanent: bool| ContextError {
        path: format!("{path}{field}"),
        message,
        permanent,
    };
    let url =
        templates.render_text(source.url.as_deref().unwrap_or_default(), scope).map_err(|m| fail(".url", m, true))?;
    let url = revealed.reveal(&clients.secrets, &url).map_err(|m| fail(".url", m, true))?;
    let url = reqwest::Url::parse(&url).map_err(|e| fail(".url", format!("{url:?} is not a URL: {e}"), true))?;
    let post = source.method.as_deref().is_some_and(|m| m.eq_ignore_ascii_case("POST"));
    let mut headers = Vec::with_capacity(source.headers.len());
    for (name, value) in &source.headers {
        let rendered = templates.render_text(value, scope).map_err(|m| fail(&format!(".headers.{name}"), m, true))?;
        let rendered =
            revealed.reveal(&clients.secrets, &rendered).map_err(|m| fail(&format!(".headers.{name}"), m, true))?;
        headers.push((name, rendered));
    }
    let mut headers = crate::kinds::http::header_map(headers).map_err(|m| fail(".headers", m, true))?;
    if !headers.contains_key(reqwest::header::ACCEPT) {
        headers.insert(reqwest::header::ACCEPT, reqwest::header::HeaderValue::from_static("application/json"));
    }
    let body = match &source.body {
        Some(body) => {
            let rendered = templates.render_value(body, scope).map_err(|m| fail(".body", m, true))?;
            Some(revealed.reveal_value(&clients.secrets, &rendered).map_err(|m| fail(".body", m, true))?)
        }
        None => None,
    };
    let method = if post { reqwest::Method::POST } else { reqwest::Method::GET };
    let request = Outgoing { method, url: url.clone(), headers, body, timeout: limits.sql_statement_timeout };
    let response = egress::send(&clients.http, &clients.egress, request).await.map_err(|e| match e {
        EgressError::Refused(m) => fail(".url", m, true),
        EgressError::Transport(m) => fail("", m, false),
    })?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| fail("", format!("reading {url} failed: {e}"), false))?;
    if !status.is_success() {
        let excerpt: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
        return Err(fail("", format!("HTTP {status} from {url}: {excerpt}"), status.is_client_error()));
    }
    if bytes.len() > limits.max_bytes {
        return Err(fail(
            "",
            format!("the answer of {url} is {} bytes, over the limit of {}", bytes.len(), limits.max_bytes),
            true,
        ));
    }
    let document: Value =
        serde_json::from_slice(&bytes).map_err(|e| fail("", format!("the answer of {url} is not JSON: {e}"), true))?;
    match source.select.as_deref().filter(|p| !p.is_empty()) {
        None => Ok(document),
        Some(pointer) => document
            .pointer(pointer)
            .cloned()
            .ok_or_else(|| fail(".select", format!("{pointer:?} matches nothing in the answer of {url}"), true)),
    }
}
