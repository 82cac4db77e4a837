//! Resolving a definition's context sources, in order; later sources see earlier ones.
//!
//! - `static`: the literal value;
//! - `trigger`: the trigger's payload;
//! - `sql`: the query's rows as a list of objects, run in a read-only transaction with a
//!   statement timeout. Parameters are rendered from templates and *bound* (as text), never
//!   spliced into the SQL; the extended protocol also refuses multi-statement strings.

use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::PgPool;
use taskfactory_schemas::definition::{ContextKind, ContextSource};
use taskfactory_schemas::run::{LoadedDefinition, TriggerInfo};
use taskfactory_schemas::template::Templates;

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
    sql_pool: &PgPool,
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
        let value = match source.kind {
            ContextKind::Static => source.value.clone().unwrap_or(Value::Null),
            ContextKind::Trigger => trigger.payload.clone(),
            ContextKind::Sql => resolve_sql(sql_pool, source, &templates, &scope, &path, limits).await?,
            ContextKind::Http => {
                return Err(ContextError { path: format!("{path}.kind"), message: "kind \"http\" is not supported yet".into(), permanent: true });
            }
        };
        context.insert(source.name.clone(), value);
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

async fn resolve_sql(
    pool: &PgPool,
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
        params.push(match rendered {
            Value::Null => None,
            Value::String(s) => Some(s),
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
