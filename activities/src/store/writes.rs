//! The run log's writes: every state change with its trace event, in one transaction.

use super::*;

impl Store {
    /// Appends events (idempotent by key) in `tx`; returns how many were new.
    pub async fn append_events(
        tx: &mut Transaction<'_, Postgres>,
        run: &str,
        events: &[NewTraceEvent],
    ) -> Result<usize> {
        Ok(Self::append_new_events(tx, run, events).await?.len())
    }

    /// Appends events (idempotent by key) in `tx`; returns the keys of those that were new.
    async fn append_new_events(
        tx: &mut Transaction<'_, Postgres>,
        run: &str,
        events: &[NewTraceEvent],
    ) -> Result<std::collections::HashSet<String>> {
        // The run's row lock orders appends; its fired_at names the partition of its events.
        let (last_seq, fired_at): (i64, DateTime<Utc>) =
            sqlx::query_as("select last_seq, fired_at from activity_runs where workflow_id = $1 for update")
                .bind(run)
                .fetch_optional(&mut **tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("run {run:?}")))?;
        let keys: Vec<&str> = events.iter().map(|e| e.key.as_str()).collect();
        let existing: Vec<String> = sqlx::query_scalar(
            "select event_key from run_events where run_workflow_id = $1 and run_fired_at = $2 and event_key = any($3)",
        )
        .bind(run)
        .bind(fired_at)
        .bind(&keys)
        .fetch_all(&mut **tx)
        .await?;
        let mut seen: std::collections::HashSet<&str> = existing.iter().map(String::as_str).collect();
        let fresh: Vec<&NewTraceEvent> = events.iter().filter(|e| seen.insert(e.key.as_str())).collect();
        if fresh.is_empty() {
            return Ok(std::collections::HashSet::new());
        }
        let keys: Vec<&str> = fresh.iter().map(|e| e.key.as_str()).collect();
        let types: Vec<&str> = fresh.iter().map(|e| e.event_type.as_str()).collect();
        let nodes: Vec<Option<&str>> = fresh.iter().map(|e| e.node_id.as_deref()).collect();
        let levels: Vec<&str> = fresh.iter().map(|e| e.level.as_str()).collect();
        let messages: Vec<Option<std::borrow::Cow<'_, str>>> =
            fresh.iter().map(|e| nul::text_opt(e.message.as_deref())).collect();
        let payloads: Vec<Value> = fresh.iter().map(|e| nul::encode(&e.payload).into_owned()).collect();
        sqlx::query(
            "insert into run_events (run_workflow_id, run_fired_at, seq, event_key, type, node_id, level, message, payload) \
             select $1, $9, $2 + u.ord, u.k, u.t, u.n, u.l, u.m, u.p \
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
        .bind(fired_at)
        .execute(&mut **tx)
        .await?;
        let new_last = last_seq + fresh.len() as i64;
        sqlx::query("update activity_runs set last_seq = $2 where workflow_id = $1")
            .bind(run)
            .bind(new_last)
            .execute(&mut **tx)
            .await?;
        // Delivered at commit, to every API process: live streams wake up and read the new rows.
        sqlx::query("select pg_notify($1, $2)").bind(RUN_EVENTS_CHANNEL).bind(run).execute(&mut **tx).await?;
        let run_level: Vec<&str> =
            fresh.iter().filter(|e| e.node_id.is_none()).map(|e| e.event_type.as_str()).collect();
        if !run_level.is_empty() {
            let change = json!({"workflow_id": run, "seq": new_last, "types": run_level}).to_string();
            sqlx::query("select pg_notify($1, $2)").bind(RUNS_CHANNEL).bind(change).execute(&mut **tx).await?;
        }
        Ok(fresh.iter().map(|e| e.key.clone()).collect())
    }

    /// Records a run's start (idempotent) with `WORKFLOW_STARTED`.
    pub async fn start_run(
        &self,
        run: &str,
        temporal_run_id: &str,
        definition_id: &DefinitionId,
        trigger: &TriggerInfo,
        retry_of: Option<&str>,
    ) -> Result<()> {
        let trigger_json = serde_json::to_value(trigger).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // The partition of this run's events exists before the run does (once a day, per handle).
        self.ensure_event_partitions().await?;
        let began = Instant::now();
        let mut tx = self.pool.begin().await?;
        // A new Temporal run id for a run already recorded is a reset done in Temporal: the run
        // record continues (running again, its end to be recorded anew), nothing is duplicated.
        let (inserted, resets): (bool, i32) = sqlx::query_as(
            "insert into activity_runs (workflow_id, run_id, definition_id, trigger_kind, trigger, scheduled_for, retry_of) \
             values ($1, $2, $3, $4, $5, $6, $7) on conflict (workflow_id) do update \
             set run_id = excluded.run_id, status = 'running', finished_at = null, error = null, \
             resets = activity_runs.resets + 1 where activity_runs.run_id <> excluded.run_id \
             returning (xmax = 0), resets",
        )
        .bind(run)
        .bind(temporal_run_id)
        .bind(definition_id.as_str())
        .bind(trigger.kind.as_str())
        .bind(nul::encode(&trigger_json).as_ref())
        .bind(trigger.scheduled_for)
        .bind(retry_of)
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or((false, 0));
        if !inserted && resets > 0 {
            let reset = event(
                format!("run:reset:{resets}"),
                EventType::WorkflowReset,
                None,
                Level::Warn,
                format!("run reset in Temporal: it continues as Temporal run {temporal_run_id}"),
                json!({"temporal_run_id": temporal_run_id, "resets": resets}),
            );
            Self::append_events(&mut tx, run, &[reset]).await?;
        }
        if let (RunTrigger::Event, Some(key), Some(received)) = (trigger.kind, &trigger.key, &trigger.event) {
            // The API writes the receipt after starting the workflow; the run writes it too, so a
            // crash between the two never forgets an accepted event.
            let event_json = serde_json::to_value(received).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            write_receipt(&mut *tx, definition_id.as_str(), key, run, Some(temporal_run_id), &event_json).await?;
            // The run may record its start before the API's starter records that it started it.
            sqlx::query(
                "update event_receipts set state = 'started', run_id = coalesce(run_id, $3), started_at = now() \
                 where definition_id = $1 and dedupe_key = $2 and state = 'pending'",
            )
            .bind(definition_id.as_str())
            .bind(nul::text(key))
            .bind(temporal_run_id)
            .execute(&mut *tx)
            .await?;
        }
        // The decision log's entry for this trigger (the API may have written it already, as
        // `accepted` for an event: it is `fired` now).
        super::decisions::insert_decision(&mut *tx, &super::NewDecision::fired(definition_id.as_str(), trigger, run))
            .await?;
        super::ingress::fire_accepted(&mut tx, definition_id.as_str(), run).await?;
        let started = event(
            "run:started",
            EventType::WorkflowStarted,
            None,
            Level::Info,
            format!("run of {definition_id} started ({})", trigger.kind.as_str()),
            json!({"definition_id": definition_id, "trigger": trigger_json, "temporal_run_id": temporal_run_id}),
        );
        Self::append_events(&mut tx, run, &[started]).await?;
        commit_write(tx, "start_run", began).await?;
        // Counted once per run: a retried activity finds the row and inserts nothing.
        if inserted {
            metrics().runs_started.with_label_values(&[definition_id.as_str(), trigger.kind.as_str()]).inc();
        }
        Ok(())
    }

    /// Records which definition version the run uses.
    pub async fn set_version_used(&self, run: &str, version: i32) -> Result<()> {
        sqlx::query("update activity_runs set version_used = $2 where workflow_id = $1")
            .bind(run)
            .bind(version)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores the context snapshot with `CONTEXT_RESOLVED`.
    pub async fn record_context(&self, run: &str, context: &Value) -> Result<()> {
        let summary: serde_json::Map<String, Value> = context
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), json!({"items": v.as_array().map(Vec::len)}))).collect())
            .unwrap_or_default();
        let began = Instant::now();
        let mut tx = self.pool.begin().await?;
        sqlx::query("update activity_runs set context_snapshot = $2 where workflow_id = $1")
            .bind(run)
            .bind(nul::encode(context).as_ref())
            .execute(&mut *tx)
            .await?;
        let resolved = event(
            "run:context",
            EventType::ContextResolved,
            None,
            Level::Info,
            format!("resolved {} context source(s)", summary.len()),
            json!({"sources": summary}),
        );
        Self::append_events(&mut tx, run, &[resolved]).await?;
        commit_write(tx, "record_context", began).await?;
        Ok(())
    }

    /// Stores the plan, one pending row per task, and `PLAN_CREATED`.
    pub async fn record_plan(&self, run: &str, plan: &Plan) -> Result<()> {
        let plan_json = serde_json::to_value(plan).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let skipped = plan.decisions.iter().filter(|d| d.outcome == Outcome::Skip).count();
        let began = Instant::now();
        let mut tx = self.pool.begin().await?;
        sqlx::query("update activity_runs set plan = $2 where workflow_id = $1")
            .bind(run)
            .bind(nul::encode(&plan_json).as_ref())
            .execute(&mut *tx)
            .await?;
        insert_tasks(&mut tx, run, &plan.tasks, 0).await?;
        let reused = super::retries::reuse_tasks(&mut tx, run).await?;
        if plan.tasks.is_empty() && !plan.templates.iter().any(|t| t.deferred) {
            super::decisions::mark_zero_tasks(&mut tx, run, plan).await?;
        }
        let created = event(
            "run:plan",
            EventType::PlanCreated,
            None,
            Level::Info,
            format!("planned {} task(s), skipped {skipped}", plan.tasks.len()),
            json!({"tasks": plan.tasks.len(), "skipped": skipped, "templates": plan.templates}),
        );
        Self::append_events(&mut tx, run, &[created]).await?;
        Self::append_events(&mut tx, run, &reused).await?;
        commit_write(tx, "record_plan", began).await?;
        Ok(())
    }

    /// A slice of a template's tasks in plan order.
    pub async fn load_tasks(&self, run: &str, template_id: &str, offset: i64, limit: i64) -> Result<Vec<PlannedTask>> {
        let rows: Vec<(String, String, Value, Value, String, Option<String>)> = sqlx::query_as(
            "select id, item_key, spec, params, execution, reused_from from task_runs where run_workflow_id = $1 and template_id = $2 \
             order by position offset $3 limit $4",
        )
        .bind(run)
        .bind(template_id)
        .bind(offset)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(task_id, item_key, spec, params, execution, reused_from)| {
                let spec = serde_json::from_value(nul::decode(spec))
                    .map_err(|e| StoreError::Corrupt(format!("task {task_id:?}: {e}")))?;
                Ok(PlannedTask {
                    task_id,
                    template_id: template_id.to_owned(),
                    item_key,
                    spec,
                    params: nul::decode(params),
                    execution: Execution::parse(&execution),
                    reused_from,
                })
            })
            .collect()
    }

    /// How many tasks a run has planned so far.
    pub async fn count_tasks(&self, run: &str) -> Result<i64> {
        Ok(sqlx::query_scalar("select count(*) from task_runs where run_workflow_id = $1")
            .bind(run)
            .fetch_one(&self.pool)
            .await?)
    }

    /// The context snapshot a run resolved.
    pub async fn context_snapshot(&self, run: &str) -> Result<Value> {
        let snapshot: Option<Option<Value>> =
            sqlx::query_scalar("select context_snapshot from activity_runs where workflow_id = $1")
                .bind(run)
                .fetch_optional(&self.pool)
                .await?;
        snapshot.flatten().map(nul::decode).ok_or_else(|| StoreError::NotFound(format!("context of run {run:?}")))
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
            let outputs: Vec<Value> = rows
                .iter()
                .filter(|(t, _)| t == template)
                .map(|(_, o)| nul::decode(o.clone().unwrap_or(Value::Null)))
                .collect();
            let first = outputs.first().cloned().unwrap_or(Value::Null);
            scope.insert(template.clone(), json!({"outputs": outputs, "output": first, "count": outputs.len()}));
        }
        Ok(Value::Object(scope))
    }

    /// Stores the tasks and decisions of a deferred template (idempotent) with `PLAN_EXTENDED`.
    pub async fn record_template_plan(&self, run: &str, template_id: &str, chunk: &Plan) -> Result<()> {
        let began = Instant::now();
        let mut tx = self.pool.begin().await?;
        let stored: Option<Value> =
            sqlx::query_scalar("select plan from activity_runs where workflow_id = $1 for update")
                .bind(run)
                .fetch_optional(&mut *tx)
                .await?
                .flatten();
        let mut plan: Plan = match stored {
            Some(v) => serde_json::from_value(nul::decode(v))
                .map_err(|e| StoreError::Corrupt(format!("plan of {run:?}: {e}")))?,
            None => return Err(StoreError::NotFound(format!("plan of run {run:?}"))),
        };
        let already = plan.decisions.iter().any(|d| d.template_id == template_id && d.outcome != Outcome::Deferred);
        let mut reused = Vec::new();
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
            sqlx::query("update activity_runs set plan = $2 where workflow_id = $1")
                .bind(run)
                .bind(nul::encode(&plan_json).as_ref())
                .execute(&mut *tx)
                .await?;
            insert_tasks(&mut tx, run, &chunk.tasks, position).await?;
            reused = super::retries::reuse_tasks(&mut tx, run).await?;
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
        Self::append_events(&mut tx, run, &reused).await?;
        commit_write(tx, "record_template_plan", began).await?;
        Ok(())
    }

    /// Applies task state changes of one run, in order, and appends their events, all in one
    /// transaction (one lock of the run row, one commit). [`super::TaskLog`] groups concurrent
    /// writes through here. Finished tasks are counted (metrics) once, when their event is new.
    pub async fn task_writes(&self, run: &str, writes: &[&TaskWrite]) -> Result<()> {
        let began = Instant::now();
        let mut tx = self.pool.begin().await?;
        // The run row first, then task rows: every writer of a run takes its locks in this
        // order, so concurrent writers (other processes, a retried attempt still running)
        // queue on the run row instead of deadlocking on each other's task rows.
        sqlx::query("select 1 from activity_runs where workflow_id = $1 for update")
            .bind(run)
            .execute(&mut *tx)
            .await?;
        let mut events = Vec::with_capacity(writes.len());
        let mut finished = Vec::new();
        for write in writes {
            let (event, labels) = Self::apply_task_write(&mut tx, write).await?;
            if let (TaskWrite::Finished { status, .. }, Some((kind, definition_id))) = (write, labels) {
                finished.push((event.key.clone(), kind, definition_id, *status));
            }
            events.push(event);
        }
        let fresh = Self::append_new_events(&mut tx, run, &events).await?;
        let op = if writes.iter().all(|w| matches!(w, TaskWrite::Started { .. })) {
            "task_started"
        } else {
            "task_finished"
        };
        commit_write(tx, op, began).await?;
        for (key, kind, definition_id, status) in finished {
            if fresh.contains(&key) {
                metrics()
                    .tasks_finished
                    .with_label_values(&[definition_id.as_str(), kind.as_str(), status.as_str()])
                    .inc();
            }
        }
        Ok(())
    }

    /// Applies one task write in `tx`; answers its event and, for a finished task, its kind
    /// and definition (metric labels).
    async fn apply_task_write(
        tx: &mut Transaction<'_, Postgres>,
        write: &TaskWrite,
    ) -> Result<(NewTraceEvent, Option<(String, String)>)> {
        Ok(match write {
            TaskWrite::Started { task_id, temporal_run_id, workflow_id, attempt } => {
                sqlx::query(
                    "update task_runs set status = 'running', attempt = greatest(attempt, $3), temporal_run_id = $2, \
                     temporal_workflow_id = $4, started_at = coalesce(started_at, now()) \
                     where id = $1 and status in ('pending', 'running')",
                )
                .bind(task_id)
                .bind(temporal_run_id)
                .bind(i32::try_from(*attempt).unwrap_or(i32::MAX).max(1))
                .bind(workflow_id.as_deref())
                .execute(&mut **tx)
                .await?;
                (
                    event(
                        format!("task:{task_id}:started"),
                        EventType::NodeStarted,
                        Some(task_id),
                        Level::Info,
                        "task started",
                        json!({}),
                    ),
                    None,
                )
            }
            TaskWrite::Finished { task_id, status, output, error } => {
                let labels: Option<(String, String)> = sqlx::query_as(
                    "update task_runs t set status = $2, output = $3, error = $4, finished_at = coalesce(t.finished_at, now()) \
                     from activity_runs r where t.id = $1 and r.workflow_id = t.run_workflow_id \
                     and t.status in ('pending', 'running') returning t.kind, r.definition_id",
                )
                .bind(task_id)
                .bind(status.as_str())
                .bind(nul::encode(output).as_ref())
                .bind(nul::text_opt(error.as_deref()))
                .fetch_optional(&mut **tx)
                .await?;
                // A human task that ends while still waiting ran out of time, or was cancelled.
                let human = if *status == Status::Cancelled { "cancelled" } else { "timed_out" };
                sqlx::query(
                    "update human_tasks set status = $2, decided_at = now() where task_id = $1 and status = 'waiting'",
                )
                .bind(task_id)
                .bind(human)
                .execute(&mut **tx)
                .await?;
                let event = match (status, error) {
                    (Status::Cancelled, _) => event(
                        format!("task:{task_id}:finished"),
                        EventType::NodeCancelled,
                        Some(task_id),
                        Level::Warn,
                        format!("task cancelled: {}", error.as_deref().unwrap_or("cancelled")),
                        json!({"reason": error}),
                    ),
                    (Status::Failed, _) => event(
                        format!("task:{task_id}:finished"),
                        EventType::NodeFailed,
                        Some(task_id),
                        Level::Error,
                        format!("task failed: {}", error.as_deref().unwrap_or("unknown error")),
                        json!({"error": error}),
                    ),
                    _ => event(
                        format!("task:{task_id}:finished"),
                        EventType::NodeCompleted,
                        Some(task_id),
                        Level::Info,
                        "task completed",
                        json!({"output": output}),
                    ),
                };
                (event, labels)
            }
        })
    }

    /// Marks a template's pending tasks skipped with one `NODE_SKIPPED`.
    pub async fn tasks_skipped(&self, run: &str, template_id: &str, reason: &str) -> Result<()> {
        let began = Instant::now();
        let mut tx = self.pool.begin().await?;
        let skipped_tasks: Vec<(String, String)> = sqlx::query_as(
            "update task_runs t set status = 'skipped', error = $3, finished_at = now() from activity_runs r \
             where t.run_workflow_id = $1 and t.template_id = $2 and t.status = 'pending' and r.workflow_id = t.run_workflow_id \
             returning t.kind, r.definition_id",
        )
        .bind(run)
        .bind(template_id)
        .bind(nul::text(reason))
        .fetch_all(&mut *tx)
        .await?;
        // A deferred template never planned: its explanation says why instead.
        let stored: Option<Value> =
            sqlx::query_scalar("select plan from activity_runs where workflow_id = $1 for update")
                .bind(run)
                .fetch_optional(&mut *tx)
                .await?
                .flatten();
        if let Some(mut plan) = stored.and_then(|v| serde_json::from_value::<Plan>(nul::decode(v)).ok()) {
            let mut changed = false;
            for d in
                plan.decisions.iter_mut().filter(|d| d.template_id == template_id && d.outcome == Outcome::Deferred)
            {
                d.outcome = Outcome::Skip;
                d.reason = reason.to_owned();
                changed = true;
            }
            if changed {
                let plan_json = serde_json::to_value(&plan).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                sqlx::query("update activity_runs set plan = $2 where workflow_id = $1")
                    .bind(run)
                    .bind(nul::encode(&plan_json).as_ref())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let skipped = event(
            format!("template:{template_id}:skipped"),
            EventType::NodeSkipped,
            None,
            Level::Warn,
            format!("template {template_id:?} skipped: {reason}"),
            json!({"template_id": template_id, "tasks": skipped_tasks.len(), "reason": reason}),
        );
        Self::append_events(&mut tx, run, &[skipped]).await?;
        commit_write(tx, "tasks_skipped", began).await?;
        // Only rows still pending were updated, so a retried write counts nothing twice.
        for (kind, definition_id) in &skipped_tasks {
            metrics()
                .tasks_finished
                .with_label_values(&[definition_id.as_str(), kind.as_str(), Status::Skipped.as_str()])
                .inc();
        }
        Ok(())
    }

    /// Records the run's end with `WORKFLOW_COMPLETED` or `WORKFLOW_FAILED`.
    pub async fn finish_run(&self, run: &str, status: Status, outcome: &RunOutcome, error: Option<&str>) -> Result<()> {
        let began = Instant::now();
        let mut tx = self.pool.begin().await?;
        let finished_row: Option<(String, i32)> = sqlx::query_as(
            "update activity_runs set status = $2, tasks_spawned = $3, error = $4, finished_at = coalesce(finished_at, now()) where workflow_id = $1 \
             returning definition_id, resets",
        )
        .bind(run)
        .bind(status.as_str())
        .bind(i32::try_from(outcome.tasks_spawned).unwrap_or(i32::MAX))
        .bind(nul::text_opt(error))
        .fetch_optional(&mut *tx)
        .await?;
        let (definition_id, key) = match finished_row {
            Some((definition_id, resets)) => (Some(definition_id), super::closed::run_finished_key(resets)),
            None => (None, super::closed::run_finished_key(0)),
        };
        // A task still open now had its own workflow or its batch closed in Temporal (an
        // operator terminated it): the run's end closes it, so no task stays open.
        let mut events = super::closed::close_open_tasks(
            &mut tx,
            run,
            "the run ended before the task recorded an outcome: its workflow or batch was closed in Temporal",
        )
        .await?;
        let payload = json!({"outcome": outcome, "error": error});
        let finished = if status == Status::Failed {
            event(
                key,
                EventType::WorkflowFailed,
                None,
                Level::Error,
                format!("run failed: {}", error.unwrap_or("unknown error")),
                payload,
            )
        } else {
            let message = format!("run completed: {} task(s)", outcome.tasks_completed);
            event(key, EventType::WorkflowCompleted, None, Level::Info, message, payload)
        };
        let finished_key = finished.key.clone();
        events.push(finished);
        let first_time = Self::append_new_events(&mut tx, run, &events).await?.contains(&finished_key);
        commit_write(tx, "finish_run", began).await?;
        if let (true, Some(definition_id)) = (first_time, definition_id) {
            metrics().runs_finished.with_label_values(&[definition_id.as_str(), status.as_str()]).inc();
        }
        Ok(())
    }
}
