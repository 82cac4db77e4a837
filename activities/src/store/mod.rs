//! The Postgres store: definitions (versioned) and the run log.
//!
//! Every write that changes a run's state appends its trace event in the same transaction, so
//! the log and the rows never disagree. Appends are idempotent by event key and take the run
//! row's lock to hand out `seq`, so seq is gapless and commits happen in seq order: readers
//! never see a gap, even transiently (ADR-003).
//!
//! - [`admissions`]: concurrency keys: which run of a key may run now;
//! - [`archive`]: finished runs exported as JSON Lines and imported again;
//! - [`closed`]: runs closed in Temporal that no workflow code recorded (the run reconciler's);
//! - [`decisions`]: the trigger decision log and the schedule observer's state;
//! - [`definitions`]: versioned definitions, event-definition lookup, event receipts;
//! - [`growth`]: the receipts' horizon, and rows and bytes per table for the growth gauges;
//! - [`ingress`]: accepted events and the starts of their runs;
//! - [`writes`]: the run log's writes (run lifecycle, plans, tasks);
//! - [`notifications`]: webhook deliveries, claimed once per dedupe key, and their attempts;
//! - [`human_tasks`]: the inbox of `human` tasks and the decisions taken on them;
//! - [`reads`]: runs, events and graphs for the read API;
//! - [`retention`]: pruning finished runs past their retention, with their rows;
//! - [`retries`]: retries of finished runs, and the tasks they reuse;
//! - [`reports`]: progress, log lines and artifacts task code reports from outside;
//! - [`task_log`]: group commit of the task writes concurrent activities make;
//! - [`nul`]: how U+0000 in JSON and text is stored (Postgres cannot hold it).

mod admissions;
mod archive;
mod closed;
mod decisions;
mod definitions;
mod growth;
mod human_tasks;
mod ingress;
mod notifications;
pub mod nul;
mod partitions;
mod reads;
mod reports;
mod retention;
mod retries;
mod task_log;
mod writes;

pub use archive::{ExportError, ExportFilter, ExportProgress, ImportError, ImportProgress};
pub use closed::CancelRequest;
pub use decisions::{DecisionFilter, NewDecision, ScheduleObservation};
pub use definitions::Listening;
pub use growth::{Growth, RECEIPT_BATCH, TableGrowth};
pub use ingress::{Accept, Acceptance, DueGroup, GroupAcceptance, GroupMode, Grouped, PendingStart};
pub use notifications::{Attempted, Claim, NotificationRow};
pub use partitions::EventPartition;
pub use reads::{EVENTS_PAGE, RUN_FIRED_AT};
pub use reports::{ArtifactBody, ArtifactRow, NewArtifact, StoredArtifact};
pub use retention::{PruneReport, RunPrune};
pub use retries::{Retried, RetriedTask, Retry, RetrySource};
pub use task_log::{TaskLog, TaskWrite};

use std::time::Instant;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Row, Transaction};
use taskfactory_schemas::events::NewTraceEvent;
use taskfactory_schemas::plan::{Outcome, PlannedTask};
use taskfactory_schemas::run::{LoadedDefinition, RunOutcome, RunTrigger, Status, TriggerInfo};
use taskfactory_schemas::{ActivityDefinition, DefinitionId, EventType, Execution, Level, Plan, TraceEvent};

use crate::metrics::metrics;

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
    Db(sqlx::Error),
    /// Postgres cannot store a value given (a character outside its encoding, such as U+0000
    /// in a text parameter): the input is at fault, and trying again cannot help.
    #[error("a value cannot be stored: {0}")]
    Unstorable(String),
    /// This process cannot write right now (e.g. it is shutting down); retrying may help.
    #[error("{0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // 22021 character_not_in_repertoire (U+0000 in text), 22P05 untranslatable_character
        // (U+0000 in jsonb): raised for the value, never for the database's state.
        match e.as_database_error().and_then(|d| d.code()) {
            Some(code) if code == "22021" || code == "22P05" => {
                Self::Unstorable(e.as_database_error().map(|d| d.message().to_owned()).unwrap_or_default())
            }
            _ => Self::Db(e),
        }
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// Handle to the run log and definition store.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    /// The day (days from the common era, UTC) this handle last made sure of the `run_events`
    /// partitions ahead ([`Store::ensure_event_partitions`]).
    partitions_ensured_on: std::sync::Arc<std::sync::atomic::AtomicI64>,
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
#[derive(Clone, Debug, Serialize, JsonSchema)]
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
    /// The current version's tags.
    pub tags: Vec<String>,
    /// Last save.
    pub updated_at: DateTime<Utc>,
}

/// Which definitions [`Store::list_definitions`] returns (deleted ones never).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefinitionFilter {
    /// Only definitions carrying every one of these tags (none: no condition).
    pub tags: Vec<String>,
    /// Only definitions whose id or name contains this text, ignoring case.
    pub search: Option<String>,
}

impl DefinitionFilter {
    /// Whether the filter lets every definition through.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.search.is_none()
    }
}

/// One stored version.
#[derive(Clone, Debug, Serialize, JsonSchema)]
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
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
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
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct RunDetail {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: RunSummary,
    /// What started it.
    pub trigger: Value,
    /// The slot of a scheduled run.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The resolved context, by source name; the values of `sensitive` sources are shown to
    /// admin keys only (others read `⟦sensitive⟧`).
    pub context_snapshot: Option<Value>,
    /// The plan with its explanation (why each task was or was not created).
    pub plan: Option<Value>,
    /// The tasks (first 1,000 by id).
    pub tasks: Vec<TaskRow>,
    /// The run this one retries.
    pub retry_of: Option<String>,
    /// The retries made of this run, oldest first.
    pub retries: Vec<String>,
    /// How many times the run was reset in Temporal (each reset continued this record).
    pub resets: i32,
    /// Artifacts its tasks attached (first 1,000).
    pub artifacts: Vec<ArtifactRow>,
}

/// A task as stored.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct TaskRow {
    /// The task's workflow id.
    pub id: String,
    /// Template.
    pub template_id: String,
    /// Item key.
    pub item_key: String,
    /// Kind.
    pub kind: String,
    /// How it runs: `workflow` (its own TaskWorkflow) or `activity` (an activity of its batch).
    pub execution: String,
    /// The Temporal workflow to open for it: its own (the task id) or, in activity mode, its
    /// batch's, whose history holds the task's activity under the task id.
    pub temporal_workflow_id: String,
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
    /// In a retry: the task of the retried run whose outcome this one carries over (it did
    /// not run).
    pub reused_from: Option<String>,
    /// Start.
    pub started_at: Option<DateTime<Utc>>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A run as a behavioural diff replays it: its trigger and the context it resolved.
#[derive(Clone, Debug)]
pub struct RecordedTrigger {
    /// The run's workflow id (task ids derive from it).
    pub workflow_id: String,
    /// What started it.
    pub trigger: TriggerInfo,
    /// Its context snapshot.
    pub context: Value,
    /// When it fired.
    pub fired_at: DateTime<Utc>,
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

fn event(
    key: impl Into<String>,
    event_type: EventType,
    node_id: Option<&str>,
    level: Level,
    message: impl Into<String>,
    payload: Value,
) -> NewTraceEvent {
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
    .bind(nul::encode(event).as_ref())
    .execute(db)
    .await?;
    Ok(())
}

/// Inserts pending task rows (idempotent), numbering them from `first_position`.
async fn insert_tasks(
    tx: &mut Transaction<'_, Postgres>,
    run: &str,
    tasks: &[PlannedTask],
    first_position: i32,
) -> Result<()> {
    for (chunk_index, chunk) in tasks.chunks(1000).enumerate() {
        let base = first_position + i32::try_from(chunk_index * 1000).unwrap_or(i32::MAX);
        let ids: Vec<&str> = chunk.iter().map(|t| t.task_id.as_str()).collect();
        let templates: Vec<&str> = chunk.iter().map(|t| t.template_id.as_str()).collect();
        let keys: Vec<&str> = chunk.iter().map(|t| t.item_key.as_str()).collect();
        let kinds: Vec<&str> = chunk.iter().map(|t| t.spec.kind_name()).collect();
        let params: Vec<Value> = chunk.iter().map(|t| nul::encode(&t.params).into_owned()).collect();
        let specs: Vec<Value> = chunk
            .iter()
            .map(|t| nul::encode(&serde_json::to_value(&t.spec).unwrap_or_default()).into_owned())
            .collect();
        let executions: Vec<&str> = chunk.iter().map(|t| t.execution.as_str()).collect();
        sqlx::query(
            "insert into task_runs (id, run_workflow_id, template_id, item_key, kind, params, position, spec, execution) \
             select u.id, $1, u.t, u.k, u.kind, u.p, $7 + u.ord::int - 1, u.s, u.e \
             from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $8::jsonb[], $9::text[]) \
             with ordinality as u(id, t, k, kind, p, s, e, ord) \
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
        .bind(&executions)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Commits a run-log write that began at `began` and records its latency
/// (`taskfactory_trace_write_seconds{op}`); failed writes are not measured.
async fn commit_write(tx: Transaction<'_, Postgres>, op: &str, began: Instant) -> Result<()> {
    tx.commit().await?;
    metrics().observe_write(op, began);
    Ok(())
}

fn parse_wire<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T> {
    serde_json::from_value(Value::String(raw.to_owned())).map_err(|e| StoreError::Corrupt(format!("{raw:?}: {e}")))
}

impl Store {
    /// Connects a pool.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let pool = PgPoolOptions::new().max_connections(max_connections).connect(url).await?;
        Ok(Self::from_pool(pool))
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool, partitions_ensured_on: Default::default() }
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
}
