//! The trigger decision log and the schedule observer's bookkeeping.

use taskfactory_schemas::decisions::{DecisionEntry, DecisionOutcome, TriggerDecision};

use super::*;

/// A decision to record.
#[derive(Clone, Debug)]
pub struct NewDecision {
    /// What it says.
    pub entry: DecisionEntry,
    /// Idempotency key within the definition (see the migration); `None`: always a new row.
    pub key: Option<String>,
}

impl NewDecision {
    /// An unkeyed decision (each occurrence is an entry of its own) with nothing but its
    /// outcome and message set.
    pub fn unkeyed(definition_id: &str, source: RunTrigger, outcome: DecisionOutcome, message: String) -> Self {
        let entry = DecisionEntry {
            definition_id: definition_id.to_owned(),
            source,
            outcome,
            reason: None,
            message,
            slot: None,
            workflow_id: None,
            dedupe_key: None,
            detail: json!({}),
        };
        Self { entry, key: None }
    }

    /// A started run: keyed by its workflow id, so the API and the run itself can both write it.
    pub fn fired(definition_id: &str, trigger: &TriggerInfo, workflow_id: &str) -> Self {
        let source = trigger.kind;
        let message = match (source, trigger.scheduled_for) {
            (RunTrigger::Schedule, Some(slot)) => {
                format!("the schedule started {workflow_id} for the slot {}", slot.to_rfc3339())
            }
            _ => format!("started {workflow_id}"),
        };
        let mut fired = Self::unkeyed(definition_id, source, DecisionOutcome::Fired, message);
        fired.entry.slot = trigger.scheduled_for;
        fired.entry.workflow_id = Some(workflow_id.to_owned());
        fired.entry.dedupe_key = trigger.key.clone();
        fired.key = Some(format!("run:{workflow_id}"));
        fired
    }
}

/// What the schedule observer saw last time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleObservation {
    /// Every slot up to here has its decision.
    pub slots_through: DateTime<Utc>,
    /// Temporal's count of slots missed beyond the catch-up window.
    pub missed_catchup: i64,
    /// Temporal's count of slots skipped by the overlap policy.
    pub overlap_skipped: i64,
    /// Whether the schedule was paused.
    pub paused: bool,
}

/// Filters of [`Store::list_decisions`].
#[derive(Clone, Debug, Default)]
pub struct DecisionFilter {
    /// Only this outcome.
    pub outcome: Option<DecisionOutcome>,
    /// Only this source.
    pub source: Option<RunTrigger>,
    /// Only decisions with a smaller id (paging newest first).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// Records a decision in `db`; `true` when it is new (`false`: its key was recorded before).
pub(crate) async fn insert_decision<'e>(db: impl sqlx::PgExecutor<'e>, d: &NewDecision) -> Result<bool> {
    let e = &d.entry;
    let done = sqlx::query(
        "insert into trigger_decisions (definition_id, source, outcome, reason, message, slot, workflow_id, dedupe_key, detail, decision_key) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) on conflict (definition_id, decision_key) where decision_key is not null do nothing",
    )
    .bind(&e.definition_id)
    .bind(e.source.as_str())
    .bind(e.outcome.as_str())
    .bind(nul::text_opt(e.reason.as_deref()))
    .bind(nul::text(&e.message))
    .bind(e.slot)
    .bind(&e.workflow_id)
    .bind(nul::text_opt(e.dedupe_key.as_deref()))
    .bind(nul::encode(&e.detail).as_ref())
    .bind(&d.key)
    .execute(db)
    .await?;
    let new = done.rows_affected() == 1;
    if new {
        metrics()
            .trigger_decisions
            .with_label_values(&[e.definition_id.as_str(), e.source.as_str(), e.outcome.as_str()])
            .inc();
    }
    Ok(new)
}

/// Marks a run's `fired` decision `fired_zero_tasks` (its plan holds no task and no deferred
/// template), with the planner's reasons.
pub(crate) async fn mark_zero_tasks(tx: &mut Transaction<'_, Postgres>, run: &str, plan: &Plan) -> Result<()> {
    let mut reasons: Vec<&str> = Vec::new();
    for d in plan.decisions.iter().filter(|d| d.outcome == Outcome::Skip) {
        if !reasons.contains(&d.reason.as_str()) {
            reasons.push(&d.reason);
        }
    }
    let reason = if plan.templates.is_empty() {
        "no templates".to_owned()
    } else {
        reasons.iter().take(3).copied().collect::<Vec<_>>().join("; ")
    };
    let message = format!("the run started but planned no task: {reason}");
    let updated: Option<(String, String)> = sqlx::query_as(
        "update trigger_decisions set outcome = 'fired_zero_tasks', reason = $2, message = $3, \
         detail = detail || jsonb_build_object('skipped', $4::jsonb) \
         where workflow_id = $1 and decision_key = 'run:' || $1 and outcome = 'fired' returning definition_id, source",
    )
    .bind(run)
    .bind(nul::text(&reason))
    .bind(nul::text(&message))
    .bind(
        nul::encode(&json!(
            plan.decisions
                .iter()
                .take(20)
                .map(|d| json!({"template_id": d.template_id, "item_key": d.item_key, "reason": d.reason}))
                .collect::<Vec<_>>()
        ))
        .into_owned(),
    )
    .fetch_optional(&mut **tx)
    .await?;
    if let Some((definition, source)) = updated {
        metrics()
            .trigger_decisions
            .with_label_values(&[definition.as_str(), source.as_str(), "fired_zero_tasks"])
            .inc();
    }
    Ok(())
}

impl Store {
    /// Records a decision; `true` when it is new.
    pub async fn record_decision(&self, decision: &NewDecision) -> Result<bool> {
        insert_decision(&self.pool, decision).await
    }

    /// A definition's decisions, newest first.
    pub async fn list_decisions(&self, definition_id: &str, filter: &DecisionFilter) -> Result<Vec<TriggerDecision>> {
        let rows = sqlx::query(
            "select id, definition_id, source, outcome, reason, message, slot, workflow_id, dedupe_key, detail, recorded_at \
             from trigger_decisions where definition_id = $1 and ($2::text is null or outcome = $2) \
             and ($3::text is null or source = $3) and ($4::bigint is null or id < $4) order by id desc limit $5",
        )
        .bind(definition_id)
        .bind(filter.outcome.map(DecisionOutcome::as_str))
        .bind(filter.source.map(RunTrigger::as_str))
        .bind(filter.before)
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let entry = DecisionEntry {
                    definition_id: r.try_get("definition_id")?,
                    source: parse_wire(r.try_get("source")?)?,
                    outcome: parse_wire(r.try_get("outcome")?)?,
                    reason: r.try_get("reason")?,
                    message: r.try_get("message")?,
                    slot: r.try_get("slot")?,
                    workflow_id: r.try_get("workflow_id")?,
                    dedupe_key: r.try_get("dedupe_key")?,
                    detail: nul::decode(r.try_get("detail")?),
                };
                Ok(TriggerDecision { id: r.try_get("id")?, entry, recorded_at: r.try_get("recorded_at")? })
            })
            .collect()
    }

    /// Deletes decisions recorded before `before`, `batch` rows per statement so a large
    /// backlog never holds long locks; returns how many went.
    pub async fn prune_decisions(&self, before: DateTime<Utc>, batch: i64) -> Result<u64> {
        let mut total = 0;
        loop {
            let done = sqlx::query("delete from trigger_decisions where id in (select id from trigger_decisions where recorded_at < $1 limit $2)")
                .bind(before)
                .bind(batch)
                .execute(&self.pool)
                .await?
                .rows_affected();
            total += done;
            if done < u64::try_from(batch).unwrap_or(0) {
                return Ok(total);
            }
        }
    }

    /// The events a definition's filter turned away, newest first: `(when, event)`.
    pub async fn filtered_events(&self, definition_id: &str, limit: i64) -> Result<Vec<(DateTime<Utc>, Value)>> {
        let rows: Vec<(DateTime<Utc>, Value)> = sqlx::query_as(
            "select recorded_at, detail -> 'event' from trigger_decisions where definition_id = $1 and outcome = 'filtered' \
             and detail ? 'event' order by id desc limit $2",
        )
        .bind(definition_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(at, event)| (at, nul::decode(event))).collect())
    }

    /// How many decisions of each outcome a definition has.
    pub async fn decision_counts(&self, definition_id: &str) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as("select outcome, count(*) from trigger_decisions where definition_id = $1 group by outcome order by outcome")
            .bind(definition_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// How many of a definition's runs ended in each status (`running` for the open ones):
    /// what became of the runs its triggers started, cancellations, terminations and timeouts
    /// in Temporal included.
    pub async fn run_outcome_counts(&self, definition_id: &str) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "select status, count(*) from activity_runs where definition_id = $1 group by status order by status",
        )
        .bind(definition_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Whether a schedule slot started a run: a fired decision or a run recorded for a time in
    /// `[slot, slot + jitter]`.
    pub async fn slot_fired(&self, definition_id: &str, slot: DateTime<Utc>, jitter: chrono::Duration) -> Result<bool> {
        let last = slot + jitter;
        Ok(sqlx::query_scalar(
            "select exists (select 1 from trigger_decisions where definition_id = $1 and slot between $2 and $3 \
             and outcome in ('fired', 'fired_zero_tasks')) \
             or exists (select 1 from activity_runs where definition_id = $1 and trigger_kind = 'schedule' and scheduled_for between $2 and $3)",
        )
        .bind(definition_id)
        .bind(slot)
        .bind(last)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Starts a schedule observation: locks the definition's observation row (other API
    /// processes wait) and returns it, `None` the first time.
    pub async fn begin_observation(
        &self,
        definition_id: &str,
    ) -> Result<(Transaction<'static, Postgres>, Option<ScheduleObservation>)> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("select pg_advisory_xact_lock(hashtext('tf_observe:' || $1))")
            .bind(definition_id)
            .execute(&mut *tx)
            .await?;
        let row: Option<(DateTime<Utc>, i64, i64, bool)> =
            sqlx::query_as("select slots_through, missed_catchup, overlap_skipped, paused from schedule_observations where definition_id = $1")
                .bind(definition_id)
                .fetch_optional(&mut *tx)
                .await?;
        let seen = row.map(|(slots_through, missed_catchup, overlap_skipped, paused)| ScheduleObservation {
            slots_through,
            missed_catchup,
            overlap_skipped,
            paused,
        });
        Ok((tx, seen))
    }

    /// Ends an observation: its decisions and the new state commit together.
    pub async fn finish_observation(
        mut tx: Transaction<'static, Postgres>,
        definition_id: &str,
        decisions: &[NewDecision],
        seen: &ScheduleObservation,
    ) -> Result<usize> {
        let mut new = 0;
        for d in decisions {
            new += usize::from(insert_decision(&mut *tx, d).await?);
        }
        sqlx::query(
            "insert into schedule_observations (definition_id, slots_through, missed_catchup, overlap_skipped, paused, observed_at) \
             values ($1, $2, $3, $4, $5, now()) on conflict (definition_id) do update set slots_through = excluded.slots_through, \
             missed_catchup = excluded.missed_catchup, overlap_skipped = excluded.overlap_skipped, paused = excluded.paused, observed_at = now()",
        )
        .bind(definition_id)
        .bind(seen.slots_through)
        .bind(seen.missed_catchup)
        .bind(seen.overlap_skipped)
        .bind(seen.paused)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(new)
    }
}
