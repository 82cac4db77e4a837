//! Run archives: finished runs exported as JSON Lines, and imported into a run log again
//! (`taskfactory runs export` / `runs import`), e.g. to keep runs retention would prune.
//!
//! The format (version 1) is a header line, then per run its `run` line followed by one line
//! per row keyed by it, table by table: `task`, `event` (by seq), `human_task`, `artifact`,
//! `retry`, `notification`. A row travels as Postgres's `to_jsonb` of it and comes back
//! through `jsonb_populate_recordset`, so every column goes along and a new column needs no
//! code here; what a schema change does touch is one statement per table (the `insert_*`
//! functions). `run_admissions` stays behind: an admission only matters while a run is open.
//!
//! Memory stays bounded whatever a run's size: rows are read in keyset pages and written as
//! they come, and an import inserts batches of at most [`BATCH_ROWS`] rows. An import takes
//! one transaction per run, and skips a run whose workflow id the target already has (with
//! every line of it), so importing a file twice changes nothing.

use std::io::{BufRead, Write};

use super::retention::FINISHED;
use super::*;

/// The header's `format`.
pub const FORMAT: &str = "taskfactory-runs";
/// The header's `version`: the only one [`Store::import_runs`] reads.
pub const VERSION: u64 = 1;
/// Most rows one insert of an import carries.
pub const BATCH_ROWS: usize = 1000;
/// Most bytes of JSON one insert carries (artifacts hold up to 1 MiB each).
const BATCH_BYTES: usize = 16 << 20;
/// Runs listed per page of an export.
const RUN_PAGE: i64 = 100;

/// Which runs [`Store::export_runs`] writes: finished ones, of every definition unless told.
#[derive(Clone, Debug, Default)]
pub struct ExportFilter {
    /// Only runs of this definition.
    pub definition_id: Option<String>,
    /// Only runs that finished before this instant.
    pub finished_before: Option<DateTime<Utc>>,
}

/// How far an export has come.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportProgress {
    /// Runs written.
    pub runs: u64,
    /// Runs the filter matched when the export began.
    pub total: u64,
    /// Trace events written.
    pub events: u64,
}

/// How far an import has come (committed runs only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportProgress {
    /// Runs inserted.
    pub imported: u64,
    /// Runs the target already had, skipped whole.
    pub skipped: u64,
    /// Trace events inserted.
    pub events: u64,
}

/// An export that failed: the database, or writing out.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Postgres failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output could not be written.
    #[error("writing the export: {0}")]
    Write(#[from] std::io::Error),
}

impl From<sqlx::Error> for ExportError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// An import that stopped at a line. The runs committed before it stay imported; the run
/// being imported is rolled back whole.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {reason}; {} run(s) imported before it ({} skipped){}", .progress.imported, .progress.skipped,
    .rolled_back.as_ref().map(|run| format!(", nothing of the run {run} (rolled back)")).unwrap_or_default())]
pub struct ImportError {
    /// The line (1-based); for a batch the database refused, its first line.
    pub line: u64,
    /// What is wrong there.
    pub reason: String,
    /// What was committed before it.
    pub progress: ImportProgress,
    /// The run being imported when it stopped, rolled back.
    pub rolled_back: Option<String>,
}

/// A table of rows keyed by a run (`run_workflow_id`), in the order an export writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Child {
    Task,
    Event,
    HumanTask,
    Artifact,
    Retry,
    Notification,
}

impl Child {
    const ALL: [Self; 6] = [Self::Task, Self::Event, Self::HumanTask, Self::Artifact, Self::Retry, Self::Notification];

    /// Its `kind` in the file.
    fn kind(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Event => "event",
            Self::HumanTask => "human_task",
            Self::Artifact => "artifact",
            Self::Retry => "retry",
            Self::Notification => "notification",
        }
    }

    fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.kind() == kind)
    }

    /// A page of a run's rows as JSON text with their key: `$1` the run, `$2` the previous
    /// page's last key (as text; null for the first page), `$3` the page size.
    fn select(self) -> &'static str {
        match self {
            Self::Task => {
                "select to_jsonb(t)::text, t.id from task_runs t where t.run_workflow_id = $1 \
                 and ($2::text is null or t.id > $2) order by t.id limit $3"
            }
            Self::Event => {
                "select to_jsonb(t)::text, t.seq::text from run_events t where t.run_workflow_id = $1 \
                 and t.run_fired_at = (select fired_at from activity_runs where workflow_id = $1) \
                 and ($2::text is null or t.seq > $2::bigint) order by t.seq limit $3"
            }
            Self::HumanTask => {
                "select to_jsonb(t)::text, t.id from human_tasks t where t.run_workflow_id = $1 \
                 and ($2::text is null or t.id > $2) order by t.id limit $3"
            }
            Self::Artifact => {
                "select to_jsonb(t)::text, t.id from task_artifacts t where t.run_workflow_id = $1 \
                 and ($2::text is null or t.id > $2) order by t.id limit $3"
            }
            Self::Retry => {
                "select to_jsonb(t)::text, t.n::text from run_retries t where t.run_workflow_id = $1 \
                 and ($2::text is null or t.n > $2::int) order by t.n limit $3"
            }
            Self::Notification => {
                "select to_jsonb(t)::text, t.id::text from notifications t where t.run_workflow_id = $1 \
                 and ($2::text is null or t.id > $2::bigint) order by t.id limit $3"
            }
        }
    }

    /// Rows per page of an export (artifacts carry their content).
    fn page(self) -> i64 {
        match self {
            Self::Artifact => 50,
            _ => 5000,
        }
    }

    /// Inserts `rows`, a JSON array of this table's rows.
    async fn insert(self, tx: &mut Transaction<'_, Postgres>, rows: &Value) -> Result<u64> {
        match self {
            Self::Task => insert_task_runs(tx, rows).await,
            Self::Event => insert_run_events(tx, rows).await,
            Self::HumanTask => insert_human_tasks(tx, rows).await,
            Self::Artifact => insert_task_artifacts(tx, rows).await,
            Self::Retry => insert_run_retries(tx, rows).await,
            Self::Notification => insert_notifications(tx, rows).await,
        }
    }
}

/// Runs `statement` with `rows` as `$1`; answers the rows inserted.
async fn insert_rows(tx: &mut Transaction<'_, Postgres>, statement: &'static str, rows: &Value) -> Result<u64> {
    Ok(sqlx::query(statement).bind(rows).execute(&mut **tx).await?.rows_affected())
}

/// Inserts `activity_runs` rows unless their workflow id is there already.
async fn insert_activity_runs(tx: &mut Transaction<'_, Postgres>, rows: &Value) -> Result<u64> {
    insert_rows(
        tx,
        "insert into activity_runs select * from jsonb_populate_recordset(null::activity_runs, $1::jsonb) \
         on conflict (workflow_id) do nothing",
        rows,
    )
    .await
}

/// Inserts `task_runs` rows.
async fn insert_task_runs(tx: &mut Transaction<'_, Postgres>, rows: &Value) -> Result<u64> {
    insert_rows(tx, "insert into task_runs select * from jsonb_populate_recordset(null::task_runs, $1::jsonb)", rows)
        .await
}

/// Inserts `run_events` rows, in the partition of their run's start (`run_fired_at` is the
/// run's `fired_at` whatever the file says: files exported before the column have none).
async fn insert_run_events(tx: &mut Transaction<'_, Postgres>, rows: &Value) -> Result<u64> {
    insert_rows(
        tx,
        "insert into run_events (run_workflow_id, run_fired_at, seq, event_key, ts, type, node_id, level, message, payload) \
         select e.run_workflow_id, r.fired_at, e.seq, e.event_key, e.ts, e.type, e.node_id, e.level, e.message, e.payload \
         from jsonb_populate_recordset(null::run_events, $1::jsonb) e join activity_runs r on r.workflow_id = e.run_workflow_id",
        rows,
    )
    .await
}

/// Inserts `human_tasks` rows.
async fn insert_human_tasks(tx: &mut Transaction<'_, Postgres>, rows: &Value) -> Result<u64> {
    insert_rows(
        tx,
        "insert into human_tasks select * from jsonb_populate_recordset(null::human_tasks, $1::jsonb)",
        rows,
    )
    .await
}

/// Inserts `task_artifacts` rows (`content`, a bytea, travels as `\x…` hex text).
async fn insert_task_artifacts(tx: &mut Transaction<'_, Postgres>, rows: &Value) -> Result<u64> {
    insert_rows(
        tx,
        "insert into task_artifacts select * from jsonb_populate_recordset(null::task_artifacts, $1::jsonb)",
        rows,
    )
    .await
}

/// Inserts `run_retries` rows.
async fn insert_run_retries(tx: &mut Transaction<'_, Postgres>, rows: &Value) -> Result<u64> {
    insert_rows(
        tx,
        "insert into run_retries select * from jsonb_populate_recordset(null::run_retries, $1::jsonb)",
        rows,
    )
    .await
}

/// Inserts `notifications` rows with their ids, then moves the id sequence past them so
/// that notifications made later in this database never collide with them.
async fn insert_notifications(tx: &mut Transaction<'_, Postgres>, rows: &Value) -> Result<u64> {
    let inserted = insert_rows(
        tx,
        "insert into notifications select * from jsonb_populate_recordset(null::notifications, $1::jsonb)",
        rows,
    )
    .await?;
    sqlx::query(
        "select setval(pg_get_serial_sequence('notifications', 'id'), max(id)) from notifications \
         having max(id) >= nextval(pg_get_serial_sequence('notifications', 'id'))",
    )
    .execute(&mut **tx)
    .await?;
    Ok(inserted)
}

/// Writes one line `{"kind":KIND,"row":ROW}`, `row` being JSON text as Postgres wrote it.
fn write_row(out: &mut dyn Write, kind: &str, row: &str) -> std::io::Result<()> {
    writeln!(out, "{{\"kind\":\"{kind}\",\"row\":{row}}}")
}

impl Store {
    /// How many runs [`Self::export_runs`] with `filter` would write now.
    pub async fn count_exportable_runs(&self, filter: &ExportFilter) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(&format!(
            "select count(*) from activity_runs where {FINISHED} \
             and ($1::text is null or definition_id = $1) and ($2::timestamptz is null or finished_at < $2)"
        ))
        .bind(&filter.definition_id)
        .bind(filter.finished_before)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// Writes the finished runs `filter` matches to `out`, oldest finish first (ties by
    /// workflow id), each with its rows; `progress` hears after every page written. Answers
    /// what was written; a run pruned meanwhile is left out.
    pub async fn export_runs(
        &self,
        filter: &ExportFilter,
        out: &mut (dyn Write + Send),
        progress: &mut (dyn FnMut(&ExportProgress) + Send),
    ) -> std::result::Result<ExportProgress, ExportError> {
        let mut done = ExportProgress { total: self.count_exportable_runs(filter).await?, ..Default::default() };
        let header = json!({
            "kind": "header", "format": FORMAT, "version": VERSION, "exported_at": Utc::now(),
            "definition": filter.definition_id, "before": filter.finished_before,
        });
        writeln!(out, "{header}")?;
        let page_sql = format!(
            "select workflow_id, finished_at from activity_runs where {FINISHED} \
             and ($1::text is null or definition_id = $1) and ($2::timestamptz is null or finished_at < $2) \
             and ($3::timestamptz is null or (finished_at, workflow_id) > ($3, $4)) \
             order by finished_at, workflow_id limit $5"
        );
        let mut after: Option<(DateTime<Utc>, String)> = None;
        loop {
            let page: Vec<(String, DateTime<Utc>)> = sqlx::query_as(&page_sql)
                .bind(&filter.definition_id)
                .bind(filter.finished_before)
                .bind(after.as_ref().map(|a| a.0))
                .bind(after.as_ref().map(|a| a.1.as_str()))
                .bind(RUN_PAGE)
                .fetch_all(&self.pool)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some((last.1, last.0.clone()));
            for (workflow_id, _) in &page {
                if self.export_run(workflow_id, out, &mut done, progress).await? {
                    done.runs += 1;
                    progress(&done);
                }
            }
        }
        out.flush()?;
        Ok(done)
    }

    /// Writes one run and its rows, read in one snapshot; `false` if it is no longer a
    /// finished run (pruned, or reopened by a reset).
    async fn export_run(
        &self,
        workflow_id: &str,
        out: &mut (dyn Write + Send),
        done: &mut ExportProgress,
        progress: &mut (dyn FnMut(&ExportProgress) + Send),
    ) -> std::result::Result<bool, ExportError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
        let row: Option<String> = sqlx::query_scalar(&format!(
            "select to_jsonb(r)::text from activity_runs r where workflow_id = $1 and {FINISHED}"
        ))
        .bind(workflow_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(false) };
        write_row(out, "run", &row)?;
        for child in Child::ALL {
            let mut after: Option<String> = None;
            loop {
                let page: Vec<(String, String)> = sqlx::query_as(child.select())
                    .bind(workflow_id)
                    .bind(after.as_deref())
                    .bind(child.page())
                    .fetch_all(&mut *tx)
                    .await?;
                for (row, _) in &page {
                    write_row(out, child.kind(), row)?;
                }
                if child == Child::Event {
                    done.events += page.len() as u64;
                    progress(done);
                }
                if page.len() < usize::try_from(child.page()).unwrap_or(usize::MAX) {
                    break;
                }
                after = page.last().map(|(_, key)| key.clone());
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Imports an export read from `input` into this run log, one transaction per run;
    /// `progress` hears after every run. A run whose workflow id is here already is skipped
    /// with its rows. Stops at the first bad line (or a batch the database refuses), rolling
    /// back the run it belongs to; the runs before it stay imported.
    pub async fn import_runs(
        &self,
        input: &mut (dyn BufRead + Send),
        progress: &mut (dyn FnMut(&ImportProgress) + Send),
    ) -> std::result::Result<ImportProgress, ImportError> {
        let mut import = Import { store: self, done: ImportProgress::default(), run: None, line: 0 };
        let mut text = String::new();
        loop {
            text.clear();
            import.line += 1;
            match input.read_line(&mut text) {
                Ok(0) => {
                    import.line -= 1;
                    break;
                }
                Ok(_) => {}
                Err(e) => return Err(import.fail(format!("reading: {e}").into())),
            }
            let line = text.trim_end_matches(['\n', '\r']);
            if import.line > 1 && line.trim().is_empty() {
                continue;
            }
            let before = import.done;
            if let Err(bad) = import.take(line).await {
                return Err(import.fail(bad));
            }
            if import.done != before {
                progress(&import.done);
            }
        }
        if import.line == 0 {
            return Err(import.fail("empty input: no header line".to_owned().into()));
        }
        if let Err(bad) = import.finish_run().await {
            return Err(import.fail(bad));
        }
        progress(&import.done);
        Ok(import.done)
    }
}

/// What is wrong with a line: at the current line unless `line` says otherwise.
struct Bad {
    line: Option<u64>,
    reason: String,
}

impl From<String> for Bad {
    fn from(reason: String) -> Self {
        Self { line: None, reason }
    }
}

impl From<&str> for Bad {
    fn from(reason: &str) -> Self {
        reason.to_owned().into()
    }
}

/// The state of an import between lines.
struct Import<'s> {
    store: &'s Store,
    /// What is committed.
    done: ImportProgress,
    /// The run whose lines are being read.
    run: Option<OpenRun>,
    /// The current line (1-based).
    line: u64,
}

/// A run being imported: its transaction (`None` when the run is skipped) and the batch of
/// its rows not inserted yet.
struct OpenRun {
    workflow_id: String,
    tx: Option<Transaction<'static, Postgres>>,
    /// The table of the rows in `batch`.
    kind: Option<Child>,
    batch: Vec<Value>,
    batch_bytes: usize,
    /// The line of `batch[0]`.
    batch_line: u64,
    /// Events inserted so far.
    events: u64,
}

impl Import<'_> {
    fn fail(&self, bad: Bad) -> ImportError {
        let rolled_back = self.run.as_ref().filter(|run| run.tx.is_some()).map(|run| run.workflow_id.clone());
        ImportError { line: bad.line.unwrap_or(self.line), reason: bad.reason, progress: self.done, rolled_back }
    }

    /// Takes one line.
    async fn take(&mut self, text: &str) -> std::result::Result<(), Bad> {
        let mut value: Value = serde_json::from_str(text).map_err(|e| format!("not a JSON line: {e}"))?;
        let kind = value.get("kind").and_then(Value::as_str).ok_or("no \"kind\"")?.to_owned();
        if self.line == 1 {
            if kind != "header" {
                return Err(format!("the first line is a {kind:?} line, not the header").into());
            }
            let (format, version) = (&value["format"], &value["version"]);
            if format.as_str() != Some(FORMAT) || version.as_u64() != Some(VERSION) {
                return Err(
                    format!("not a {FORMAT} version {VERSION} export (format {format}, version {version})").into()
                );
            }
            return Ok(());
        }
        let row = match value.get_mut("row").map(Value::take) {
            Some(row @ Value::Object(_)) => row,
            _ => return Err(format!("a {kind:?} line without a \"row\" object").into()),
        };
        if kind == "run" {
            self.finish_run().await?;
            return self.begin_run(row).await;
        }
        let child = Child::from_kind(&kind).ok_or_else(|| format!("unknown kind {kind:?}"))?;
        let Some(run) = &mut self.run else { return Err(format!("a {kind:?} line before any run line").into()) };
        if row.get("run_workflow_id").and_then(Value::as_str) != Some(run.workflow_id.as_str()) {
            return Err(format!("a {kind:?} row of another run than {:?}, the run above it", run.workflow_id).into());
        }
        if run.tx.is_none() {
            return Ok(()); // a run skipped
        }
        if run.kind != Some(child) || run.batch.len() >= BATCH_ROWS || run.batch_bytes >= BATCH_BYTES {
            run.flush().await?;
            run.kind = Some(child);
            run.batch_line = self.line;
        }
        run.batch.push(row);
        run.batch_bytes += text.len();
        Ok(())
    }

    /// Opens the run of this line: inserts its row, or skips it when it is here already.
    async fn begin_run(&mut self, row: Value) -> std::result::Result<(), Bad> {
        let workflow_id =
            row.get("workflow_id").and_then(Value::as_str).ok_or("a run row without a \"workflow_id\"")?.to_owned();
        // Its events go into the partition of its start, made first (in a transaction of its
        // own: making a partition locks run_events, which must not last the whole import).
        let fired_at: DateTime<Utc> = row
            .get("fired_at")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or("a run row without a valid \"fired_at\"")?;
        self.store
            .ensure_event_partition_for(fired_at)
            .await
            .map_err(|e| format!("making the run_events partition of {fired_at}: {e}"))?;
        let mut tx = self.store.pool.begin().await.map_err(|e| format!("beginning a transaction: {e}"))?;
        let inserted = insert_activity_runs(&mut tx, &Value::Array(vec![row]))
            .await
            .map_err(|e| format!("inserting the run {workflow_id:?}: {e}"))?;
        // Present already: nothing of it is written (dropping `tx` rolls back nothing).
        let tx = (inserted > 0).then_some(tx);
        if tx.is_none() {
            self.done.skipped += 1;
        }
        self.run = Some(OpenRun {
            workflow_id,
            tx,
            kind: None,
            batch: Vec::new(),
            batch_bytes: 0,
            batch_line: self.line,
            events: 0,
        });
        Ok(())
    }

    /// Inserts what is left of the run being read and commits it.
    async fn finish_run(&mut self) -> std::result::Result<(), Bad> {
        match &mut self.run {
            Some(run) if run.tx.is_some() => run.flush().await?,
            _ => {
                self.run = None;
                return Ok(());
            }
        }
        let Some(OpenRun { tx: Some(tx), workflow_id, events, .. }) = self.run.take() else { return Ok(()) };
        tx.commit().await.map_err(|e| format!("committing the run {workflow_id:?}: {e}"))?;
        self.done.imported += 1;
        self.done.events += events;
        Ok(())
    }
}

impl OpenRun {
    /// Inserts the batch in one statement.
    async fn flush(&mut self) -> std::result::Result<(), Bad> {
        let (Some(kind), Some(tx)) = (self.kind, self.tx.as_mut()) else { return Ok(()) };
        if self.batch.is_empty() {
            return Ok(());
        }
        let count = self.batch.len();
        let rows = Value::Array(std::mem::take(&mut self.batch));
        self.batch_bytes = 0;
        kind.insert(tx, &rows).await.map_err(|e| Bad {
            line: Some(self.batch_line),
            reason: format!("inserting {count} {} row(s) from this line on: {e}", kind.kind()),
        })?;
        if kind == Child::Event {
            self.events += count as u64;
        }
        Ok(())
    }
}
