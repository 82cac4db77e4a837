//! Concurrency keys: which run of a key may run now.
//!
//! A run of a definition with `concurrency` asks [`Store::admit_run`] for a slot before it
//! does any work. Under a transaction-scoped advisory lock per (definition, key), so two
//! workers never grant the same slot, the store counts the key's runs holding a slot (rows
//! `admitted` whose run is still open) and the runs queued before this one; if a slot is
//! left for it, the run is admitted, otherwise `on_limit` decides: `queue` (the run is
//! `queued`, with a `queued` decision), `skip` (the run ends `skipped`) or `cancel_running`
//! (queued, and the oldest running run of the key is named for the workflow to cancel).
//! Slots free with the run's status, whoever records its end.

use taskfactory_schemas::decisions::DecisionOutcome;
use taskfactory_schemas::definition::OnLimit;
use taskfactory_schemas::run::Admission;

use super::*;

/// The open statuses of a run holding or waiting for a slot.
const OPEN: &str = "('running', 'queued')";

impl Store {
    /// Asks for a slot of `key` for `run` (idempotent: a run asking again gets its standing;
    /// an admitted run stays admitted).
    pub async fn admit_run(
        &self,
        run: &str,
        definition_id: &str,
        key: &str,
        limit: u32,
        on_limit: OnLimit,
    ) -> Result<Admission> {
        let began = Instant::now();
        let mut tx = self.pool.begin().await?;
        sqlx::query("select pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 18))")
            .bind(definition_id)
            .bind(nul::text(key))
            .execute(&mut *tx)
            .await?;
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        sqlx::query(
            "insert into run_admissions (run_workflow_id, definition_id, concurrency_key, slot_limit, state) \
             values ($1, $2, $3, $4, 'waiting') on conflict (run_workflow_id) do nothing",
        )
        .bind(run)
        .bind(definition_id)
        .bind(nul::text(key))
        .bind(limit)
        .execute(&mut *tx)
        .await?;
        let (state, seq, cancelled_run, trigger_kind): (String, i64, Option<String>, String) = sqlx::query_as(
            "select a.state, a.seq, a.cancelled_run, r.trigger_kind from run_admissions a \
             join activity_runs r on r.workflow_id = a.run_workflow_id where a.run_workflow_id = $1",
        )
        .bind(run)
        .fetch_one(&mut *tx)
        .await?;
        let key_owned = key.to_owned();
        match state.as_str() {
            "admitted" => {
                tx.commit().await?;
                return Ok(Admission::Admitted { key: key_owned });
            }
            "skipped" => {
                tx.commit().await?;
                return Ok(Admission::Skipped { key: key_owned, message: "skipped before".into() });
            }
            _ => {}
        }
        let (running, ahead): (i64, i64) = sqlx::query_as(&format!(
            "select count(*) filter (where a.state = 'admitted'), \
                    count(*) filter (where a.state = 'waiting' and a.seq < $3) \
             from run_admissions a join activity_runs r on r.workflow_id = a.run_workflow_id \
             where a.definition_id = $1 and a.concurrency_key = $2 and r.status in {OPEN}"
        ))
        .bind(definition_id)
        .bind(nul::text(key))
        .bind(seq)
        .fetch_one(&mut *tx)
        .await?;
        let standing = json!({"key": key, "running": running, "limit": limit, "position": ahead + 1});
        if running + ahead < i64::from(limit) {
            sqlx::query("update run_admissions set state = 'admitted', admitted_at = now() where run_workflow_id = $1")
                .bind(run)
                .execute(&mut *tx)
                .await?;
            let waited: Option<f64> = sqlx::query_scalar(
                "update activity_runs set status = 'running' where workflow_id = $1 and status = 'queued' \
                 returning extract(epoch from now() - (select queued_at from run_admissions where run_workflow_id = $1))::float8",
            )
            .bind(run)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(waited) = waited {
                let admitted = event(
                    "run:admitted",
                    EventType::WorkflowAdmitted,
                    None,
                    Level::Info,
                    format!(
                        "admitted after {waited:.1} s in the queue of key {key:?} ({}/{limit} running)",
                        running + 1
                    ),
                    standing,
                );
                Self::append_events(&mut tx, run, &[admitted]).await?;
            }
            commit_write(tx, "admit_run", began).await?;
            return Ok(Admission::Admitted { key: key_owned });
        }
        let message = format!("key {key:?}: {running}/{limit} running, position {}", ahead + 1);
        if on_limit == OnLimit::Skip {
            let message = format!("skipped: {message} (on_limit: skip)");
            sqlx::query("update run_admissions set state = 'skipped' where run_workflow_id = $1")
                .bind(run)
                .execute(&mut *tx)
                .await?;
            let resets: i32 = sqlx::query_scalar(
                "update activity_runs set status = 'skipped', finished_at = coalesce(finished_at, now()), error = $2 \
                 where workflow_id = $1 returning resets",
            )
            .bind(run)
            .bind(nul::text(&message))
            .fetch_one(&mut *tx)
            .await?;
            let skipped = event(
                super::closed::run_finished_key(resets),
                EventType::WorkflowSkipped,
                None,
                Level::Warn,
                message.clone(),
                standing.clone(),
            );
            Self::append_events(&mut tx, run, &[skipped]).await?;
            let mut decision = run_decision(definition_id, &trigger_kind, DecisionOutcome::Skipped, run, &message)?;
            decision.entry.reason = Some("concurrency".into());
            decision.entry.detail = standing;
            super::decisions::insert_decision(&mut *tx, &decision).await?;
            commit_write(tx, "admit_run", began).await?;
            metrics().runs_finished.with_label_values(&[definition_id, Status::Skipped.as_str()]).inc();
            return Ok(Admission::Skipped { key: key_owned, message });
        }
        // Queued; `cancel_running` also names the oldest running run of the key (once).
        let mut cancel = None;
        if on_limit == OnLimit::CancelRunning && cancelled_run.is_none() {
            let victim: Option<String> = sqlx::query_scalar(&format!(
                "select a.run_workflow_id from run_admissions a join activity_runs r on r.workflow_id = a.run_workflow_id \
                 where a.definition_id = $1 and a.concurrency_key = $2 and a.state = 'admitted' and r.status in {OPEN} \
                 and r.cancel_requested_by is null order by a.admitted_at, a.seq limit 1"
            ))
            .bind(definition_id)
            .bind(nul::text(key))
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(victim) = victim {
                sqlx::query(
                    "update activity_runs set cancel_requested_by = 'concurrency', \
                     cancel_reason = $2 where workflow_id = $1 and cancel_requested_by is null",
                )
                .bind(&victim)
                .bind(nul::text(&format!("{run} takes its slot of key {key:?} (on_limit: cancel_running)")))
                .execute(&mut *tx)
                .await?;
                sqlx::query("update run_admissions set cancelled_run = $2 where run_workflow_id = $1")
                    .bind(run)
                    .bind(&victim)
                    .execute(&mut *tx)
                    .await?;
                cancel = Some(victim);
            }
        }
        let newly_queued =
            sqlx::query("update activity_runs set status = 'queued' where workflow_id = $1 and status = 'running'")
                .bind(run)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
        if newly_queued {
            let message = match &cancel {
                Some(victim) => format!("queued: {message}; cancelling {victim} for it (on_limit: cancel_running)"),
                None => format!("queued: {message}"),
            };
            let queued =
                event("run:queued", EventType::WorkflowQueued, None, Level::Info, message.clone(), standing.clone());
            Self::append_events(&mut tx, run, &[queued]).await?;
            let mut decision = run_decision(definition_id, &trigger_kind, DecisionOutcome::Queued, run, &message)?;
            decision.key = Some(format!("queued:{run}"));
            decision.entry.reason = Some("concurrency".into());
            decision.entry.detail = standing;
            super::decisions::insert_decision(&mut *tx, &decision).await?;
        }
        commit_write(tx, "admit_run", began).await?;
        Ok(Admission::Queued { key: key_owned, cancel })
    }

    /// The queued runs of `run`'s key that a slot freed by its end may admit, first in first
    /// out (at most its limit of them): the ended run signals them to ask again.
    pub async fn next_admissions(&self, run: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(&format!(
            "select w.run_workflow_id from run_admissions e \
             join run_admissions w on w.definition_id = e.definition_id and w.concurrency_key = e.concurrency_key \
             join activity_runs r on r.workflow_id = w.run_workflow_id \
             where e.run_workflow_id = $1 and w.state = 'waiting' and r.status in {OPEN} \
             order by w.seq limit (select slot_limit from run_admissions where run_workflow_id = $1)"
        ))
        .bind(run)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// A decision about a run of `definition_id` triggered by `trigger_kind`, keyed by `key`.
fn run_decision(
    definition_id: &str,
    trigger_kind: &str,
    outcome: DecisionOutcome,
    run: &str,
    message: &str,
) -> Result<NewDecision> {
    let source: RunTrigger = serde_json::from_value(Value::String(trigger_kind.to_owned()))
        .map_err(|e| StoreError::Corrupt(format!("trigger kind {trigger_kind:?}: {e}")))?;
    let mut decision = NewDecision::unkeyed(definition_id, source, outcome, message.to_owned());
    decision.entry.workflow_id = Some(run.to_owned());
    decision.key = Some(format!("concurrency:{run}"));
    Ok(decision)
}
