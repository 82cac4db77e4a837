//! The run log's reads: runs, events and graphs.

use super::*;

/// The first statement of an events page ([`Store::list_events`]): the run's `fired_at` (`$1`
/// the run), which names the one partition holding its events.
pub const RUN_FIRED_AT: &str = "select fired_at from activity_runs where workflow_id = $1";

/// The second: `$3` events of run `$1` after seq `$2`, from the partition of `$4`, its
/// `fired_at`. Bound as a value (not joined from `activity_runs` in one statement), the
/// planner prunes to that partition as it plans; a join would plan every partition on each
/// call and prune only as it runs, which measured slower (ADR-027).
pub const EVENTS_PAGE: &str = "select seq, ts, type, node_id, level, message, payload from run_events \
     where run_workflow_id = $1 and run_fired_at = $4 and seq > $2 order by seq limit $3";

impl Store {
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

    /// When the run's first task started and its last task finished (`None` before either).
    pub async fn task_time_span(
        &self,
        workflow_id: &str,
    ) -> Result<(Option<chrono::DateTime<chrono::Utc>>, Option<chrono::DateTime<chrono::Utc>>)> {
        let span = sqlx::query_as("select min(started_at), max(finished_at) from task_runs where run_workflow_id = $1")
            .bind(workflow_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(span)
    }

    /// How many event receipts (distinct dedupe keys accepted) a definition has.
    pub async fn count_receipts(&self, definition_id: &str) -> Result<i64> {
        let count = sqlx::query_scalar("select count(*) from event_receipts where definition_id = $1")
            .bind(definition_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(count)
    }

    /// One run with its plan and tasks.
    pub async fn get_run(&self, workflow_id: &str) -> Result<RunDetail> {
        self.get_run_with(workflow_id, true).await
    }

    /// [`Self::get_run`], without the plan unless `with_plan` (a fan-out's plan lists every
    /// task and decision: megabytes the run page does not read).
    pub async fn get_run_with(&self, workflow_id: &str, with_plan: bool) -> Result<RunDetail> {
        let sql = format!(
            "select {}, r.trigger, r.scheduled_for, r.context_snapshot, case when $2 then r.plan end as plan, \
             r.retry_of, r.resets from activity_runs r where r.workflow_id = $1",
            Self::RUN_COLUMNS
        );
        let row = sqlx::query(&sql)
            .bind(workflow_id)
            .bind(with_plan)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("run {workflow_id:?}")))?;
        let tasks = sqlx::query(
            "select id, template_id, item_key, kind, execution, status, attempt, params, output, error, reused_from, \
             started_at, finished_at, coalesce(temporal_workflow_id, id) as temporal_workflow_id \
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
                execution: r.try_get("execution")?,
                temporal_workflow_id: r.try_get("temporal_workflow_id")?,
                status: r.try_get("status")?,
                attempt: r.try_get("attempt")?,
                params: nul::decode(r.try_get("params")?),
                output: nul::decode_opt(r.try_get("output")?),
                error: r.try_get("error")?,
                reused_from: r.try_get("reused_from")?,
                started_at: r.try_get("started_at")?,
                finished_at: r.try_get("finished_at")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(RunDetail {
            summary: Self::run_summary(&row)?,
            trigger: nul::decode(row.try_get("trigger")?),
            scheduled_for: row.try_get("scheduled_for")?,
            context_snapshot: nul::decode_opt(row.try_get("context_snapshot")?),
            plan: nul::decode_opt(row.try_get("plan")?),
            tasks,
            retry_of: row.try_get("retry_of")?,
            retries: self.retries_of(workflow_id).await?,
            resets: row.try_get("resets")?,
            artifacts: self.run_artifacts(workflow_id).await?,
        })
    }

    /// The run as a graph: template groups with per-status counts and dependency edges, the
    /// tasks of groups up to `expand_up_to` tasks (others collapsed, failed tasks listed first),
    /// and jobs reported from outside Temporal (`external-events`).
    pub async fn graph(&self, workflow_id: &str, expand_up_to: i64) -> Result<Value> {
        // Only the plan's templates: a fan-out's plan holds every task and decision too.
        let row: Option<(String, Option<Value>)> =
            sqlx::query_as("select status, plan->'templates' from activity_runs where workflow_id = $1")
                .bind(workflow_id)
                .fetch_optional(&self.pool)
                .await?;
        let (status, templates) = row.ok_or_else(|| StoreError::NotFound(format!("run {workflow_id:?}")))?;
        let templates: Vec<taskfactory_schemas::plan::TemplatePlan> =
            templates.and_then(|t| serde_json::from_value(nul::decode(t)).ok()).unwrap_or_default();
        let plan = Plan { templates, ..Plan::default() };
        let counts: Vec<(String, String, i64)> = sqlx::query_as(
            "select template_id, status, count(*) from task_runs where run_workflow_id = $1 group by 1, 2",
        )
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
            if is_collapsed {
                collapsed.push(t.id.clone())
            } else {
                expanded.push(t.id.clone())
            }
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
        let edges: Vec<Value> = plan
            .templates
            .iter()
            .flat_map(|t| t.depends_on.iter().map(move |d| json!({"from": d, "to": t.id})))
            .collect();
        let jobs: Vec<(String, String, Option<String>, DateTime<Utc>)> = sqlx::query_as(
            "select distinct on (node_id) node_id, type, message, ts from run_events \
             where run_workflow_id = $1 and run_fired_at = (select fired_at from activity_runs where workflow_id = $1) \
               and node_id like 'job:%' and type <> 'NODE_LOG' order by node_id, seq desc",
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
        Ok(
            json!({"workflow_id": workflow_id, "status": status, "groups": groups, "nodes": nodes, "edges": edges, "external": external}),
        )
    }

    /// Appends events reported from outside Temporal to a run's log (idempotent by key).
    pub async fn append_external(&self, run: &str, events: &[NewTraceEvent]) -> Result<usize> {
        let began = Instant::now();
        let mut tx = self.pool.begin().await?;
        let written = Self::append_events(&mut tx, run, events).await?;
        commit_write(tx, "append_external", began).await?;
        Ok(written)
    }

    /// A page of a run's events with `seq > after`, in seq order (at most 10,000).
    pub async fn list_events(&self, workflow_id: &str, after: i64, limit: i64) -> Result<Vec<TraceEvent>> {
        let fired_at: DateTime<Utc> = sqlx::query_scalar(RUN_FIRED_AT)
            .bind(workflow_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("run {workflow_id:?}")))?;
        let rows = sqlx::query(EVENTS_PAGE)
            .bind(workflow_id)
            .bind(after)
            .bind(limit.clamp(1, 10_000))
            .bind(fired_at)
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
                    payload: nul::decode(r.try_get("payload")?),
                })
            })
            .collect()
    }

    /// The last `limit` runs of a definition that resolved their context: what a behavioural
    /// diff replays, newest first.
    pub async fn recorded_triggers(&self, definition_id: &str, limit: i64) -> Result<Vec<RecordedTrigger>> {
        let rows = sqlx::query(
            "select workflow_id, trigger, context_snapshot, fired_at from activity_runs \
             where definition_id = $1 and context_snapshot is not null order by fired_at desc limit $2",
        )
        .bind(definition_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let workflow_id: String = r.try_get("workflow_id")?;
                let trigger = serde_json::from_value(nul::decode(r.try_get("trigger")?))
                    .map_err(|e| StoreError::Corrupt(format!("trigger of run {workflow_id:?}: {e}")))?;
                Ok(RecordedTrigger {
                    trigger,
                    context: nul::decode(r.try_get("context_snapshot")?),
                    fired_at: r.try_get("fired_at")?,
                    workflow_id,
                })
            })
            .collect()
    }
}
