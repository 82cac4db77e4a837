//! The Postgres store: definitions (versioned) and the run log.
//!
//! Every write that changes a run's state appends its trace event in the same transaction, so
//! the log and the rows never disagree. Appends are idempotent by event key and take the run
//! row's lock to hand out `seq`, so seq is gapless and commits happen in seq order: readers
//! never see a gap, even transiently (ADR-003).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Row, Transaction};
use taskfactory_schemas::events::NewTraceEvent;
use taskfactory_schemas::plan::{Outcome, PlannedTask};
use taskfactory_schemas::run::{LoadedDefinition, RunOutcome, RunTrigger, Status, TriggerInfo};
use taskfactory_schemas::{ActivityDefinition, DefinitionId, EventType, Level, Plan, TraceEvent};

/// Postgres channel notified (payload: the run's workflow id) when a run's log grows.
pub const RUN_EVENTS_CHANNEL: &str = "tf_run_events";
/// Postgres channel notified (payload: JSON `{workflow_id, seq, types}`) on run-level events.
pub const RUNS_CHANNEL: &str = "tf_runs";

/// Errors at the store's boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A stored document no longer parses (e.g. written by an incompatible version).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Postgres failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

type Result<T> = std::result::Result<T, StoreError>;

/// Handle to the run log and definition store.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

/// A definition's current version.
#[derive(Clone, Debug, Serialize)]
pub struct DefinitionRecord {
    /// The document.
    pub definition: ActivityDefinition,
    /// Its version number.
    pub version: i32,
    /// When the definition was first created.
    pub created_at: DateTime<Utc>,
    /// When the current version was saved.
    pub updated_at: DateTime<Utc>,
}

/// A row of the definitions list.
#[derive(Clone, Debug, Serialize)]
pub struct DefinitionSummary {
    /// Slug.
    pub id: String,
    /// Name.
    pub name: String,
    /// Current version.
    pub version: i32,
    /// Whether triggers fire.
    pub enabled: bool,
    /// `cron`, `event` or `manual`.
    pub trigger_kind: String,
    /// Last save.
    pub updated_at: DateTime<Utc>,
}

/// One stored version.
#[derive(Clone, Debug, Serialize)]
pub struct VersionRecord {
    /// Version number.
    pub version: i32,
    /// When it was saved.
    pub created_at: DateTime<Utc>,
    /// The document.
    pub document: Value,
}

/// What a PUT of a definition did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PutOutcome {
    /// The current version after the call.
    pub version: i32,
    /// `false` when the document equals the current version (no new version was made).
    pub changed: bool,
}

/// A run as listed.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// The run's workflow id.
    pub workflow_id: String,
    /// Temporal's run id.
    pub run_id: String,
    /// The definition.
    pub definition_id: String,
    /// The version the run used (known once loaded).
    pub version_used: Option<i32>,
    /// `schedule`, `event` or `manual`.
    pub trigger_kind: String,
    /// `running`, `completed` or `failed`.
    pub status: String,
    /// When it started.
    pub fired_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Tasks started (running or finished).
    pub tasks_spawned: i64,
    /// Tasks completed.
    pub tasks_completed: i64,
    /// Tasks failed.
    pub tasks_failed: i64,
    /// Tasks skipped because a dependency failed.
    pub tasks_skipped: i64,
    /// Tasks planned.
    pub tasks_planned: i64,
    /// Why the run failed.
    pub error: Option<String>,
}

/// A run in full.
#[derive(Clone, Debug, Serialize)]
pub struct RunDetail {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: RunSummary,
    /// What started it.
    pub trigger: Value,
    /// The slot of a scheduled run.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The resolved context.
    pub context_snapshot: Option<Value>,
    /// The plan with its explanation (why each task was or was not created).
    pub plan: Option<Value>,
    /// The tasks (first 1,000 by id).
    pub tasks: Vec<TaskRow>,
}

/// A task as stored.
#[derive(Clone, Debug, Serialize)]
pub struct TaskRow {
    /// The task's workflow id.
    pub id: String,
    /// Template.
    pub template_id: String,
    /// Item key.
    pub item_key: String,
    /// Kind.
    pub kind: String,
    /// Status.
    pub status: String,
    /// Attempt number (0 before it starts).
    pub attempt: i32,
    /// Rendered params.
    pub params: Value,
    /// Output.
    pub output: Option<Value>,
    /// Error.
    pub error: Option<String>,
    /// Start.
    pub started_at: Option<DateTime<Utc>>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Filters for [`Store::list_runs`].
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    /// Only runs of this definition.
    pub definition_id: Option<String>,
    /// Only runs with this status.
    pub status: Option<String>,
    /// Only runs started by this trigger kind (`schedule`, `event`, `manual`).
    pub trigger: Option<String>,
    /// Only runs fired at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only runs fired before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Keyset cursor: only runs after this `(fired_at, workflow_id)` in newest-first order.
    pub after: Option<(DateTime<Utc>, String)>,
    /// At most this many (capped at 500).
    pub limit: i64,
}

fn event(key: impl Into<String>, event_type: EventType, node_id: Option<&str>, level: Level, message: impl Into<String>, payload: Value) -> NewTraceEvent {
    NewTraceEvent {
        key: key.into(),
        event_type,
        node_id: node_id.map(str::to_owned),
        level,
        message: Some(message.into()),
        payload,
    }
}

/// Inserts an event receipt; the first writer of a (definition, dedupe key) wins.
async fn write_receipt<'e>(
    db: impl sqlx::PgExecutor<'e>,
    definition_id: &str,
    dedupe_key: &str,
    workflow_id: &str,
    run_id: Option<&str>,
    event: &Value,
) -> Result<()> {
    sqlx::query(
        "insert into event_receipts (definition_id, dedupe_key, workflow_id, run_id, event) values ($1, $2, $3, $4, $5) \
         on conflict (definition_id, dedupe_key) do nothing",
    )
    .bind(definition_id)
    .bind(dedupe_key)
    .bind(workflow_id)
    .bind(run_id)
    .bind(event)
    .execute(db)
    .await?;
    Ok(())
}

/// Inserts pending task rows (idempotent), numbering them from `first_position`.
async fn insert_tasks(tx: &mut Transaction<'_, Postgres>, run: &str, tasks: &[PlannedTask], first_position: i32) -> Result<()> {
    for (chunk_index, chunk) in tasks.chunks(1000).enumerate() {
        let base = first_position + i32::try_from(chunk_index * 1000).unwrap_or(i32::MAX);
        let ids: Vec<&str> = chunk.iter().map(|t| t.task_id.as_str()).collect();
        let templates: Vec<&str> = chunk.iter().map(|t| t.template_id.as_str()).collect();
        let keys: Vec<&str> = chunk.iter().map(|t| t.item_key.as_str()).collect();
        let kinds: Vec<String> = chunk
            .iter()
            .map(|t| serde_json::to_value(&t.spec).ok().and_then(|v| v["kind"].as_str().map(str::to_owned)).unwrap_or_default())
            .collect();
        let params: Vec<Value> = chunk.iter().map(|t| t.params.clone()).collect();
        let specs: Vec<Value> = chunk.iter().map(|t| serde_json::to_value(&t.spec).unwrap_or_default()).collect();
        sqlx::query(
            "insert into task_runs (id, run_workflow_id, template_id, item_key, kind, params, position, spec) \
             select u.id, $1, u.t, u.k, u.kind, u.p, $7 + u.ord::int - 1, u.s \
             from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $8::jsonb[]) \
             with ordinality as u(id, t, k, kind, p, s, ord) \
             on conflict (id) do nothing",
        )
        .bind(run)
        .bind(&ids)
        .bind(&templates)
        .bind(&keys)
        .bind(&kinds)
        .bind(&params)
        .bind(base)
        .bind(&specs)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn parse_wire<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T> {
    serde_json::from_value(Value::String(raw.to_owned())).map_err(|e| StoreError::Corrupt(format!("{raw:?}: {e}")))
}

impl Store {
    /// Connects a pool.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let pool = PgPoolOptions::new().max_connections(max_connections).connect(url).await?;
        Ok(Self { pool })
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool, for health checks.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Checks that Postgres answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Applies the embedded migrations.
    pub async fn migrate(&self) -> std::result::Result<(), sqlx::migrate::MigrateError> {
        sqlx::migrate!("../migrations").run(&self.pool).await
    }

    // ---- definitions ----

    /// Saves a definition: a new immutable version unless it equals the current one.
    pub async fn put_definition(&self, def: &ActivityDefinition) -> Result<PutOutcome> {
        let document = serde_json::to_value(def).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let trigger_kind = serde_json::to_value(def.trigger.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let mut tx = self.pool.begin().await?;
        // Serialises concurrent PUTs of one id, including the very first one.
        sqlx::query("select pg_advisory_xact_lock(hashtext($1))").bind(def.id.as_str()).execute(&mut *tx).await?;
        let current: Option<(i32, Option<DateTime<Utc>>)> =
            sqlx::query_as("select current_version, deleted_at from activity_definitions where id = $1")
                .bind(def.id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let version = match current {
            Some((version, deleted_at)) => {
                if deleted_at.is_none() {
                    let stored: Value = sqlx::query_scalar(
                        "select document from activity_definition_versions where definition_id = $1 and version = $2",
                    )
                    .bind(def.id.as_str())
                    .bind(version)
                    .fetch_one(&mut *tx)
                    .await?;
                    if stored == document {
                        return Ok(PutOutcome { version, changed: false });
                    }
                }
                let next: i32 = sqlx::query_scalar("select coalesce(max(version), 0) + 1 from activity_definition_versions where definition_id = $1")
                    .bind(def.id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query(
                    "update activity_definitions set current_version = $2, name = $3, enabled = $4, trigger_kind = $5, \
                     updated_at = now(), deleted_at = null where id = $1",
                )
                .bind(def.id.as_str())
                .bind(next)
                .bind(&def.name)
                .bind(def.enabled)
                .bind(&trigger_kind)
                .execute(&mut *tx)
                .await?;
                next
            }
            None => {
                sqlx::query("insert into activity_definitions (id, current_version, name, enabled, trigger_kind) values ($1, 1, $2, $3, $4)")
                    .bind(def.id.as_str())
                    .bind(&def.name)
                    .bind(def.enabled)
                    .bind(&trigger_kind)
                    .execute(&mut *tx)
                    .await?;
                1
            }
        };
        sqlx::query("insert into activity_definition_versions (definition_id, version, document) values ($1, $2, $3)")
            .bind(def.id.as_str())
            .bind(version)
            .bind(&document)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(PutOutcome { version, changed: true })
    }

    /// The current version of a (not deleted) definition.
    pub async fn get_definition(&self, id: &str) -> Result<DefinitionRecord> {
        let row = sqlx::query(
            "select v.document, d.current_version, d.created_at, d.updated_at from activity_definitions d \
             join activity_definition_versions v on v.definition_id = d.id and v.version = d.current_version \
             where d.id = $1 and d.deleted_at is null",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("definition {id:?}")))?;
        let document: Value = row.try_get("document")?;
        Ok(DefinitionRecord {
            definition: serde_json::from_value(document).map_err(|e| StoreError::Corrupt(format!("definition {id:?}: {e}")))?,
            version: row.try_get("current_version")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// Every (not deleted) definition.
    pub async fn list_definitions(&self) -> Result<Vec<DefinitionSummary>> {
        let rows = sqlx::query(
            "select id, name, current_version, enabled, trigger_kind, updated_at from activity_definitions \
             where deleted_at is null order by id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DefinitionSummary {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    version: r.try_get("current_version")?,
                    enabled: r.try_get("enabled")?,
                    trigger_kind: r.try_get("trigger_kind")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// The current document of every (not deleted) definition.
    pub async fn current_definitions(&self) -> Result<Vec<ActivityDefinition>> {
        let rows: Vec<(String, Value)> = sqlx::query_as(
            "select d.id, v.document from activity_definitions d join activity_definition_versions v \
             on v.definition_id = d.id and v.version = d.current_version where d.deleted_at is null order by d.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, document)| serde_json::from_value(document).map_err(|e| StoreError::Corrupt(format!("definition {id:?}: {e}"))))
            .collect()
    }

    /// Every version of a definition, newest first (deleted definitions included).
    pub async fn list_versions(&self, id: &str) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query("select version, created_at, document from activity_definition_versions where definition_id = $1 order by version desc")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        if rows.is_empty() {
            return Err(StoreError::NotFound(format!("definition {id:?}")));
        }
        rows.iter()
            .map(|r| Ok(VersionRecord { version: r.try_get("version")?, created_at: r.try_get("created_at")?, document: r.try_get("document")? }))
            .collect()
    }

    /// One version of a definition (deleted definitions included).
    pub async fn get_version(&self, id: &str, version: i32) -> Result<VersionRecord> {
        let row: Option<(i32, DateTime<Utc>, Value)> =
            sqlx::query_as("select version, created_at, document from activity_definition_versions where definition_id = $1 and version = $2")
                .bind(id)
                .bind(version)
                .fetch_optional(&self.pool)
                .await?;
        let (version, created_at, document) = row.ok_or_else(|| StoreError::NotFound(format!("definition {id:?} version {version}")))?;
        Ok(VersionRecord { version, created_at, document })
    }

    /// Soft-deletes a definition; its versions stay for the runs that used them.
    pub async fn delete_definition(&self, id: &str) -> Result<()> {
        let done = sqlx::query("update activity_definitions set deleted_at = now() where id = $1 and deleted_at is null")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("definition {id:?}")));
        }
        Ok(())
    }

    /// Loads the version a run uses: the pinned one, or the current one.
    pub async fn load_for_run(&self, id: &DefinitionId, version: Option<i32>) -> Result<LoadedDefinition> {
        let row: Option<(i32, Value)> = match version {
            Some(v) => {
                sqlx::query_as("select version, document from activity_definition_versions where definition_id = $1 and version = $2")
                    .bind(id.as_str())
                    .bind(v)
                    .fetch_optional(&self.pool)
                    .await?
            }
            None => {
                sqlx::query_as(
                    "select v.version, v.document from activity_definitions d join activity_definition_versions v \
                     on v.definition_id = d.id and v.version = d.current_version where d.id = $1 and d.deleted_at is null",
                )
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?
            }
        };
        let (version, document) = row.ok_or_else(|| match version {
            Some(v) => StoreError::NotFound(format!("definition {id:?} version {v}")),
            None => StoreError::NotFound(format!("definition {id:?}")),
        })?;
        let definition = serde_json::from_value(document).map_err(|e| StoreError::Corrupt(format!("definition {id:?} v{version}: {e}")))?;
        Ok(LoadedDefinition { version, definition })
    }

    /// The current versions of enabled, not deleted `kind: event` definitions for `event_type`.
    pub async fn event_definitions(&self, event_type: &str) -> Result<Vec<LoadedDefinition>> {
        let rows: Vec<(i32, Value)> = sqlx::query_as(
            "select v.version, v.document from activity_definitions d join activity_definition_versions v \
             on v.definition_id = d.id and v.version = d.current_version \
             where d.deleted_at is null and d.enabled and d.trigger_kind = 'event' \
             and v.document -> 'trigger' ->> 'event_type' = $1 order by d.id",
        )
        .bind(event_type)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(version, document)| {
                let definition = serde_json::from_value(document).map_err(|e| StoreError::Corrupt(format!("event definition v{version}: {e}")))?;
                Ok(LoadedDefinition { version, definition })
            })
            .collect()
    }

    /// The receipt of an accepted event: the workflow it started (id, Temporal run id).
    pub async fn find_receipt(&self, definition_id: &str, dedupe_key: &str) -> Result<Option<(String, Option<String>)>> {
        Ok(sqlx::query_as("select workflow_id, run_id from event_receipts where definition_id = $1 and dedupe_key = $2")
            .bind(definition_id)
            .bind(dedupe_key)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Records that an event with this dedupe key started `workflow_id` (first writer wins).
    pub async fn insert_receipt(&self, definition_id: &str, dedupe_key: &str, workflow_id: &str, run_id: Option<&str>, event: &Value) -> Result<()> {
        write_receipt(&self.pool, definition_id, dedupe_key, workflow_id, run_id, event).await
    }

    // ---- the run log: writes ----

    /// Appends events (idempotent by key) in `tx`; returns how many were new.
    pub async fn append_events(tx: &mut Transaction<'_, Postgres>, run: &str, events: &[NewTraceEvent]) -> Result<usize> {
        let last_seq: i64 = sqlx::query_scalar("select last_seq from activity_runs where workflow_id = $1 for update")
            .bind(run)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("run {run:?}")))?;
        let keys: Vec<&str> = events.iter().map(|e| e.key.as_str()).collect();
        let existing: Vec<String> = sqlx::query_scalar("select event_key from run_events where run_workflow_id = $1 and event_key = any($2)")
            .bind(run)
            .bind(&keys)
            .fetch_all(&mut **tx)
            .await?;
        let mut seen: std::collections::HashSet<&str> = existing.iter().map(String::as_str).collect();
        let fresh: Vec<&NewTraceEvent> = events.iter().filter(|e| seen.insert(e.key.as_str())).collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        let keys: Vec<&str> = fresh.iter().map(|e| e.key.as_str()).collect();
        let types: Vec<&str> = fresh.iter().map(|e| e.event_type.as_str()).collect();
        let nodes: Vec<Option<&str>> = fresh.iter().map(|e| e.node_id.as_deref()).collect();
        let levels: Vec<&str> = fresh.iter().map(|e| e.level.as_str()).collect();
        let messages: Vec<Option<&str>> = fresh.iter().map(|e| e.message.as_deref()).collect();
        let payloads: Vec<Value> = fresh.iter().map(|e| e.payload.clone()).collect();
        sqlx::query(
            "insert into run_events (run_workflow_id, seq, event_key, type, node_id, level, message, payload) \
             select $1, $2 + u.ord, u.k, u.t, u.n, u.l, u.m, u.p \
             from unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::jsonb[]) with ordinality as u(k, t, n, l, m, p, ord)",
        )
        .bind(run)
        .bind(last_seq)
        .bind(&keys)
        .bind(&types)
        .bind(&nodes)
        .bind(&levels)
        .bind(&messages)
        .bind(&payloads)
        .execute(&mut **tx)
        .await?;
        let new_last = last_seq + fresh.len() as i64;
        sqlx::query("update activity_runs set last_seq = $2 where workflow_id = $1").bind(run).bind(new_last).execute(&mut **tx).await?;
        // Delivered at commit, to every API process: live streams wake up and read the new rows.
        sqlx::query("select pg_notify($1, $2)").bind(RUN_EVENTS_CHANNEL).bind(run).execute(&mut **tx).await?;
        let run_level: Vec<&str> = fresh.iter().filter(|e| e.node_id.is_none()).map(|e| e.event_type.as_str()).collect();
        if !run_level.is_empty() {
            let change = json!({"workflow_id": run, "seq": new_last, "types": run_level}).to_string();
            sqlx::query("select pg_notify($1, $2)").bind(RUNS_CHANNEL).bind(change).execute(&mut **tx).await?;
        }
        Ok(fresh.len())
    }

    /// Records a run's start (idempotent) with `WORKFLOW_STARTED`.
    pub async fn start_run(&self, run: &str, temporal_run_id: &str, definition_id: &DefinitionId, trigger: &TriggerInfo) -> Result<()> {
        let trigger_json = serde_json::to_value(trigger).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "insert into activity_runs (workflow_id, run_id, definition_id, trigger_kind, trigger, scheduled_for) \
             values ($1, $2, $3, $4, $5, $6) on conflict (workflow_id) do nothing",
        )
        .bind(run)
        .bind(temporal_run_id)
        .bind(definition_id.as_str())
        .bind(trigger.kind.as_str())
        .bind(&trigger_json)
        .bind(trigger.scheduled_for)
        .execute(&mut *tx)
        .await?;
        if let (RunTrigger::Event, Some(key), Some(received)) = (trigger.kind, &trigger.key, &trigger.event) {
            // The API writes the receipt after starting the workflow; the run writes it too, so a
            // crash between the two never forgets an accepted event.
            let event_json = serde_json::to_value(received).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            write_receipt(&mut *tx, definition_id.as_str(), key, run, Some(temporal_run_id), &event_json).await?;
        }
        let started = event(
            "run:started",
            EventType::WorkflowStarted,
            None,
            Level::Info,
            format!("run of {definition_id} started ({})", trigger.kind.as_str()),
            json!({"definition_id": definition_id, "trigger": trigger_json, "temporal_run_id": temporal_run_id}),
        );
        Self::append_events(&mut tx, run, &[started]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records which definition version the run uses.
    pub async fn set_version_used(&self, run: &str, version: i32) -> Result<()> {
        sqlx::query("update activity_runs set version_used = $2 where workflow_id = $1").bind(run).bind(version).execute(&self.pool).await?;
        Ok(())
    }

    /// Stores the context snapshot with `CONTEXT_RESOLVED`.
    pub async fn record_context(&self, run: &str, context: &Value) -> Result<()> {
        let summary: serde_json::Map<String, Value> = context
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), json!({"items": v.as_array().map(Vec::len)}))).collect())
            .unwrap_or_default();
        let mut tx = self.pool.begin().await?;
        sqlx::query("update activity_runs set context_snapshot = $2 where workflow_id = $1").bind(run).bind(context).execute(&mut *tx).await?;
        let resolved = event(
            "run:context",
            EventType::ContextResolved,
            None,
            Level::Info,
            format!("resolved {} context source(s)", summary.len()),
            json!({"sources": summary}),
        );
        Self::append_events(&mut tx, run, &[resolved]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores the plan, one pending row per task, and `PLAN_CREATED`.
    pub async fn record_plan(&self, run: &str, plan: &Plan) -> Result<()> {
        let plan_json = serde_json::to_value(plan).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let skipped = plan.decisions.iter().filter(|d| d.outcome == Outcome::Skip).count();
        let mut tx = self.pool.begin().await?;
        sqlx::query("update activity_runs set plan = $2 where workflow_id = $1").bind(run).bind(&plan_json).execute(&mut *tx).await?;
        insert_tasks(&mut tx, run, &plan.tasks, 0).await?;
        let created = event(
            "run:plan",
            EventType::PlanCreated,
            None,
            Level::Info,
            format!("planned {} task(s), skipped {skipped}", plan.tasks.len()),
            json!({"tasks": plan.tasks.len(), "skipped": skipped, "templates": plan.templates}),
        );
        Self::append_events(&mut tx, run, &[created]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A slice of a template's tasks in plan order.
    pub async fn load_tasks(&self, run: &str, template_id: &str, offset: i64, limit: i64) -> Result<Vec<PlannedTask>> {
        let rows: Vec<(String, String, Value, Value)> = sqlx::query_as(
            "select id, item_key, spec, params from task_runs where run_workflow_id = $1 and template_id = $2 \
             order by position offset $3 limit $4",
        )
        .bind(run)
        .bind(template_id)
        .bind(offset)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(task_id, item_key, spec, params)| {
                let spec = serde_json::from_value(spec).map_err(|e| StoreError::Corrupt(format!("task {task_id:?}: {e}")))?;
                Ok(PlannedTask { task_id, template_id: template_id.to_owned(), item_key, spec, params })
            })
            .collect()
    }

    /// How many tasks a run has planned so far.
    pub async fn count_tasks(&self, run: &str) -> Result<i64> {
        Ok(sqlx::query_scalar("select count(*) from task_runs where run_workflow_id = $1").bind(run).fetch_one(&self.pool).await?)
    }

    /// The context snapshot a run resolved.
    pub async fn context_snapshot(&self, run: &str) -> Result<Value> {
        let snapshot: Option<Option<Value>> = sqlx::query_scalar("select context_snapshot from activity_runs where workflow_id = $1")
            .bind(run)
            .fetch_optional(&self.pool)
            .await?;
        snapshot.flatten().ok_or_else(|| StoreError::NotFound(format!("context of run {run:?}")))
    }

    /// The `tasks` template variable for a deferred template: for each dependency, its tasks'
    /// outputs in plan order (`outputs`), the first one (`output`) and how many (`count`).
    pub async fn task_outputs(&self, run: &str, templates: &[String]) -> Result<Value> {
        let rows: Vec<(String, Option<Value>)> = sqlx::query_as(
            "select template_id, output from task_runs where run_workflow_id = $1 and template_id = any($2) order by position",
        )
        .bind(run)
        .bind(templates)
        .fetch_all(&self.pool)
        .await?;
        let mut scope = serde_json::Map::new();
        for template in templates {
            let outputs: Vec<Value> = rows.iter().filter(|(t, _)| t == template).map(|(_, o)| o.clone().unwrap_or(Value::Null)).collect();
            let first = outputs.first().cloned().unwrap_or(Value::Null);
            scope.insert(template.clone(), json!({"outputs": outputs, "output": first, "count": outputs.len()}));
        }
        Ok(Value::Object(scope))
    }

    /// Stores the tasks and decisions of a deferred template (idempotent) with `PLAN_EXTENDED`.
    pub async fn record_template_plan(&self, run: &str, template_id: &str, chunk: &Plan) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let stored: Option<Value> = sqlx::query_scalar("select plan from activity_runs where workflow_id = $1 for update")
            .bind(run)
            .fetch_optional(&mut *tx)
            .await?
            .flatten();
        let mut plan: Plan = match stored {
            Some(v) => serde_json::from_value(v).map_err(|e| StoreError::Corrupt(format!("plan of {run:?}: {e}")))?,
            None => return Err(StoreError::NotFound(format!("plan of run {run:?}"))),
        };
        let already = plan.decisions.iter().any(|d| d.template_id == template_id && d.outcome != Outcome::Deferred);
        if !already {
            let at = plan.decisions.iter().position(|d| d.template_id == template_id).unwrap_or(plan.decisions.len());
            plan.decisions.retain(|d| d.template_id != template_id);
            for (offset, decision) in chunk.decisions.iter().cloned().enumerate() {
                plan.decisions.insert(at + offset, decision);
            }
            let position = i32::try_from(plan.tasks.len()).unwrap_or(i32::MAX);
            plan.tasks.extend(chunk.tasks.iter().cloned());
            if let Some(t) = plan.templates.iter_mut().find(|t| t.id == template_id) {
                t.tasks = chunk.tasks.len();
            }
            let plan_json = serde_json::to_value(&plan).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            sqlx::query("update activity_runs set plan = $2 where workflow_id = $1").bind(run).bind(&plan_json).execute(&mut *tx).await?;
            insert_tasks(&mut tx, run, &chunk.tasks, position).await?;
        }
        let extended = event(
            format!("template:{template_id}:planned"),
            EventType::PlanExtended,
            None,
            Level::Info,
            format!("planned {} task(s) of {template_id:?} from its dependencies' outputs", chunk.tasks.len()),
            json!({"template_id": template_id, "tasks": chunk.tasks.len()}),
        );
        Self::append_events(&mut tx, run, &[extended]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a task running with `NODE_STARTED`.
    pub async fn task_started(&self, run: &str, task_id: &str, temporal_run_id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "update task_runs set status = 'running', attempt = greatest(attempt, 1), temporal_run_id = $2, \
             started_at = coalesce(started_at, now()) where id = $1 and status in ('pending', 'running')",
        )
        .bind(task_id)
        .bind(temporal_run_id)
        .execute(&mut *tx)
        .await?;
        let started = event(format!("task:{task_id}:started"), EventType::NodeStarted, Some(task_id), Level::Info, "task started", json!({}));
        Self::append_events(&mut tx, run, &[started]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a task's end with `NODE_COMPLETED` or `NODE_FAILED`.
    pub async fn task_finished(&self, run: &str, task_id: &str, status: Status, output: &Value, error: Option<&str>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("update task_runs set status = $2, output = $3, error = $4, finished_at = coalesce(finished_at, now()) where id = $1")
            .bind(task_id)
            .bind(status.as_str())
            .bind(output)
            .bind(error)
            .execute(&mut *tx)
            .await?;
        // A human task that ends while still waiting ran out of time.
        sqlx::query("update human_tasks set status = 'timed_out', decided_at = now() where task_id = $1 and status = 'waiting'")
            .bind(task_id)
            .execute(&mut *tx)
            .await?;
        let finished = match (status, error) {
            (Status::Failed, _) => event(
                format!("task:{task_id}:finished"),
                EventType::NodeFailed,
                Some(task_id),
                Level::Error,
                format!("task failed: {}", error.unwrap_or("unknown error")),
                json!({"error": error}),
            ),
            _ => event(format!("task:{task_id}:finished"), EventType::NodeCompleted, Some(task_id), Level::Info, "task completed", json!({"output": output})),
        };
        Self::append_events(&mut tx, run, &[finished]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a human task (idempotent) with `NODE_WAITING`; returns its short id.
    pub async fn human_task_created(&self, run: &str, task_id: &str, title: &str, assignee: Option<&str>, form: &Value) -> Result<String> {
        use sha2::{Digest, Sha256};
        let id = hex::encode(Sha256::digest(task_id.as_bytes()))[..20].to_owned();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "insert into human_tasks (id, task_id, run_workflow_id, title, assignee, form) values ($1, $2, $3, $4, $5, $6) \
             on conflict (id) do nothing",
        )
        .bind(&id)
        .bind(task_id)
        .bind(run)
        .bind(title)
        .bind(assignee)
        .bind(form)
        .execute(&mut *tx)
        .await?;
        let waiting = event(
            format!("task:{task_id}:waiting"),
            EventType::NodeWaiting,
            Some(task_id),
            Level::Info,
            format!("waiting for {}: {title}", assignee.unwrap_or("someone")),
            json!({"human_task_id": id, "assignee": assignee}),
        );
        Self::append_events(&mut tx, run, &[waiting]).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Human tasks, newest first, optionally only those in `status` or for `assignee`.
    pub async fn list_human_tasks(&self, status: Option<&str>, assignee: Option<&str>, limit: i64) -> Result<Vec<Value>> {
        let rows: Vec<(Value,)> = sqlx::query_as(
            "select to_jsonb(h) from human_tasks h where ($1::text is null or status = $1) and ($2::text is null or assignee = $2) \
             order by created_at desc limit $3",
        )
        .bind(status)
        .bind(assignee)
        .bind(limit.clamp(1, 500))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }

    /// The task workflow id and status of a human task.
    pub async fn human_task(&self, id: &str) -> Result<(String, String)> {
        sqlx::query_as("select task_id, status from human_tasks where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("human task {id:?}")))
    }

    /// Records a person's decision; `false` when the task was no longer waiting.
    pub async fn decide_human_task(&self, id: &str, status: &str, by: Option<&str>, response: &Value) -> Result<bool> {
        let done = sqlx::query(
            "update human_tasks set status = $2, decided_by = $3, response = $4, decided_at = now() where id = $1 and status = 'waiting'",
        )
        .bind(id)
        .bind(status)
        .bind(by)
        .bind(response)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Reopens a decision whose signal could not be delivered.
    pub async fn undecide_human_task(&self, id: &str) -> Result<()> {
        sqlx::query("update human_tasks set status = 'waiting', decided_by = null, response = null, decided_at = null where id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks a template's pending tasks skipped with one `NODE_SKIPPED`.
    pub async fn tasks_skipped(&self, run: &str, template_id: &str, reason: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "update task_runs set status = 'skipped', error = $3, finished_at = now() \
             where run_workflow_id = $1 and template_id = $2 and status = 'pending'",
        )
        .bind(run)
        .bind(template_id)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        // A deferred template never planned: its explanation says why instead.
        let stored: Option<Value> = sqlx::query_scalar("select plan from activity_runs where workflow_id = $1 for update")
            .bind(run)
            .fetch_optional(&mut *tx)
            .await?
            .flatten();
        if let Some(mut plan) = stored.and_then(|v| serde_json::from_value::<Plan>(v).ok()) {
            let mut changed = false;
            for d in plan.decisions.iter_mut().filter(|d| d.template_id == template_id && d.outcome == Outcome::Deferred) {
                d.outcome = Outcome::Skip;
                d.reason = reason.to_owned();
                changed = true;
            }
            if changed {
                let plan_json = serde_json::to_value(&plan).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                sqlx::query("update activity_runs set plan = $2 where workflow_id = $1").bind(run).bind(&plan_json).execute(&mut *tx).await?;
            }
        }
        let skipped = event(
            format!("template:{template_id}:skipped"),
            EventType::NodeSkipped,
            None,
            Level::Warn,
            format!("template {template_id:?} skipped: {reason}"),
            json!({"template_id": template_id, "tasks": done.rows_affected(), "reason": reason}),
        );
        Self::append_events(&mut tx, run, &[skipped]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the run's end with `WORKFLOW_COMPLETED` or `WORKFLOW_FAILED`.
    pub async fn finish_run(&self, run: &str, status: Status, outcome: &RunOutcome, error: Option<&str>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "update activity_runs set status = $2, tasks_spawned = $3, error = $4, finished_at = coalesce(finished_at, now()) where workflow_id = $1",
        )
        .bind(run)
        .bind(status.as_str())
        .bind(i32::try_from(outcome.tasks_spawned).unwrap_or(i32::MAX))
        .bind(error)
        .execute(&mut *tx)
        .await?;
        let payload = json!({"outcome": outcome, "error": error});
        let finished = if status == Status::Failed {
            event("run:finished", EventType::WorkflowFailed, None, Level::Error, format!("run failed: {}", error.unwrap_or("unknown error")), payload)
        } else {
            let message = format!("run completed: {} task(s)", outcome.tasks_completed);
            event("run:finished", EventType::WorkflowCompleted, None, Level::Info, message, payload)
        };
        Self::append_events(&mut tx, run, &[finished]).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- the run log: reads ----

    const RUN_COLUMNS: &'static str = "r.workflow_id, r.run_id, r.definition_id, r.version_used, r.trigger_kind, r.status, r.fired_at, \
         r.finished_at, r.error, \
         (select count(*) from task_runs t where t.run_workflow_id = r.workflow_id) as planned, \
         (select count(*) from task_runs t where t.run_workflow_id = r.workflow_id and t.status in ('running', 'completed', 'failed')) as spawned, \
         (select count(*) from task_runs t where t.run_workflow_id = r.workflow_id and t.status = 'completed') as completed, \
         (select count(*) from task_runs t where t.run_workflow_id = r.workflow_id and t.status = 'failed') as failed, \
         (select count(*) from task_runs t where t.run_workflow_id = r.workflow_id and t.status = 'skipped') as skipped";

    fn run_summary(row: &sqlx::postgres::PgRow) -> Result<RunSummary> {
        Ok(RunSummary {
            workflow_id: row.try_get("workflow_id")?,
            run_id: row.try_get("run_id")?,
            definition_id: row.try_get("definition_id")?,
            version_used: row.try_get("version_used")?,
            trigger_kind: row.try_get("trigger_kind")?,
            status: row.try_get("status")?,
            fired_at: row.try_get("fired_at")?,
            finished_at: row.try_get("finished_at")?,
            error: row.try_get("error")?,
            tasks_planned: row.try_get("planned")?,
            tasks_spawned: row.try_get("spawned")?,
            tasks_completed: row.try_get("completed")?,
            tasks_failed: row.try_get("failed")?,
            tasks_skipped: row.try_get("skipped")?,
        })
    }

    /// Runs, newest first.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        let sql = format!(
            "select {} from activity_runs r where ($1::text is null or r.definition_id = $1) and ($2::text is null or r.status = $2) \
             and ($4::text is null or r.trigger_kind = $4) and ($5::timestamptz is null or r.fired_at >= $5) \
             and ($6::timestamptz is null or r.fired_at < $6) \
             and ($7::timestamptz is null or (r.fired_at, r.workflow_id) < ($7, $8::text)) \
             order by r.fired_at desc, r.workflow_id desc limit $3",
            Self::RUN_COLUMNS
        );
        let rows = sqlx::query(&sql)
            .bind(filter.definition_id.as_deref())
            .bind(filter.status.as_deref())
            .bind(filter.limit.clamp(1, 500))
            .bind(filter.trigger.as_deref())
            .bind(filter.since)
            .bind(filter.until)
            .bind(filter.after.as_ref().map(|(t, _)| *t))
            .bind(filter.after.as_ref().map(|(_, id)| id.as_str()))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::run_summary).collect()
    }

    /// One run with its plan and tasks.
    pub async fn get_run(&self, workflow_id: &str) -> Result<RunDetail> {
        let sql = format!("select {}, r.trigger, r.scheduled_for, r.context_snapshot, r.plan from activity_runs r where r.workflow_id = $1", Self::RUN_COLUMNS);
        let row = sqlx::query(&sql)
            .bind(workflow_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("run {workflow_id:?}")))?;
        let tasks = sqlx::query(
            "select id, template_id, item_key, kind, status, attempt, params, output, error, started_at, finished_at \
             from task_runs where run_workflow_id = $1 order by id limit 1000",
        )
        .bind(workflow_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(TaskRow {
                id: r.try_get("id")?,
                template_id: r.try_get("template_id")?,
                item_key: r.try_get("item_key")?,
                kind: r.try_get("kind")?,
                status: r.try_get("status")?,
                attempt: r.try_get("attempt")?,
                params: r.try_get("params")?,
                output: r.try_get("output")?,
                error: r.try_get("error")?,
                started_at: r.try_get("started_at")?,
                finished_at: r.try_get("finished_at")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(RunDetail {
            summary: Self::run_summary(&row)?,
            trigger: row.try_get("trigger")?,
            scheduled_for: row.try_get("scheduled_for")?,
            context_snapshot: row.try_get("context_snapshot")?,
            plan: row.try_get("plan")?,
            tasks,
        })
    }

    /// The run as a graph: template groups with per-status counts and dependency edges, the
    /// tasks of groups up to `expand_up_to` tasks (others collapsed, failed tasks listed first),
    /// and jobs reported from outside Temporal (`external-events`).
    pub async fn graph(&self, workflow_id: &str, expand_up_to: i64) -> Result<Value> {
        let row: Option<(String, Option<Value>)> = sqlx::query_as("select status, plan from activity_runs where workflow_id = $1")
            .bind(workflow_id)
            .fetch_optional(&self.pool)
            .await?;
        let (status, plan) = row.ok_or_else(|| StoreError::NotFound(format!("run {workflow_id:?}")))?;
        let plan: Plan = plan.and_then(|p| serde_json::from_value(p).ok()).unwrap_or_default();
        let counts: Vec<(String, String, i64)> =
            sqlx::query_as("select template_id, status, count(*) from task_runs where run_workflow_id = $1 group by 1, 2")
                .bind(workflow_id)
                .fetch_all(&self.pool)
                .await?;
        let mut groups = Vec::new();
        let mut expanded = Vec::new();
        let mut collapsed = Vec::new();
        for t in &plan.templates {
            let mut by_status = serde_json::Map::new();
            let mut total = 0;
            for (_, st, n) in counts.iter().filter(|(tid, _, _)| *tid == t.id) {
                by_status.insert(st.clone(), json!(n));
                total += n;
            }
            let is_collapsed = total > expand_up_to;
            if is_collapsed { collapsed.push(t.id.clone()) } else { expanded.push(t.id.clone()) }
            groups.push(json!({"id": t.id, "depends_on": t.depends_on, "deferred": t.deferred, "total": total,
                               "counts": by_status, "collapsed": is_collapsed}));
        }
        let nodes: Vec<Value> = sqlx::query_as::<_, (Value,)>(
            "select jsonb_build_object('id', id, 'group', template_id, 'key', item_key, 'kind', kind, 'status', status, \
             'attempt', attempt, 'started_at', started_at, 'finished_at', finished_at, 'error', error) from task_runs t \
             where run_workflow_id = $1 and (template_id = any($2) or id in ( \
               select id from (select id, row_number() over (partition by template_id order by position) as n from task_runs \
                 where run_workflow_id = $1 and template_id = any($3) and status = 'failed') f where n <= 20)) \
             order by (status = 'failed') desc, position",
        )
        .bind(workflow_id)
        .bind(&expanded)
        .bind(&collapsed)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(v,)| v)
        .collect();
        let edges: Vec<Value> = plan.templates.iter().flat_map(|t| t.depends_on.iter().map(move |d| json!({"from": d, "to": t.id}))).collect();
        let jobs: Vec<(String, String, Option<String>, DateTime<Utc>)> = sqlx::query_as(
            "select distinct on (node_id) node_id, type, message, ts from run_events \
             where run_workflow_id = $1 and node_id like 'job:%' and type <> 'NODE_LOG' order by node_id, seq desc",
        )
        .bind(workflow_id)
        .fetch_all(&self.pool)
        .await?;
        let external: Vec<Value> = jobs
            .into_iter()
            .map(|(id, kind, message, ts)| {
                let status = match kind.as_str() {
                    "NODE_COMPLETED" => "completed",
                    "NODE_FAILED" => "failed",
                    _ => "running",
                };
                json!({"id": id, "kind": "external", "status": status, "message": message, "updated_at": ts})
            })
            .collect();
        Ok(json!({"workflow_id": workflow_id, "status": status, "groups": groups, "nodes": nodes, "edges": edges, "external": external}))
    }

    /// Appends events reported from outside Temporal to a run's log (idempotent by key).
    pub async fn append_external(&self, run: &str, events: &[NewTraceEvent]) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let written = Self::append_events(&mut tx, run, events).await?;
        tx.commit().await?;
        Ok(written)
    }

    /// A page of a run's events with `seq > after`, in seq order.
    pub async fn list_events(&self, workflow_id: &str, after: i64, limit: i64) -> Result<Vec<TraceEvent>> {
        let exists: Option<i64> = sqlx::query_scalar("select last_seq from activity_runs where workflow_id = $1")
            .bind(workflow_id)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("run {workflow_id:?}")));
        }
        let rows = sqlx::query(
            "select seq, ts, type, node_id, level, message, payload from run_events \
             where run_workflow_id = $1 and seq > $2 order by seq limit $3",
        )
        .bind(workflow_id)
        .bind(after)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TraceEvent {
                    run_id: workflow_id.to_owned(),
                    seq: r.try_get("seq")?,
                    ts: r.try_get("ts")?,
                    event_type: parse_wire(r.try_get::<&str, _>("type")?)?,
                    node_id: r.try_get("node_id")?,
                    level: parse_wire(r.try_get::<&str, _>("level")?)?,
                    message: r.try_get("message")?,
                    payload: r.try_get("payload")?,
                })
            })
            .collect()
    }
}
