//! Runs closed in Temporal: cancelled (the run workflow records its own cancellation here), or
//! closed without their workflow code recording it (an operator's terminate, an execution
//! timeout; the API's run reconciler finds them and records them here). Also the cancel
//! requests taskfactory's API makes, and resets done in Temporal.

use super::*;

impl Store {
    /// Runs the log says are running, oldest first, at most `limit`.
    pub async fn open_runs(&self, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "select workflow_id from activity_runs where status in ('running', 'queued') order by fired_at limit $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Takes or renews the lease `name` for `holder` for `ttl`; answers whether `holder` has
    /// it (another holder's lease that has not expired is left alone).
    pub async fn take_lease(&self, name: &str, holder: &str, ttl: std::time::Duration) -> Result<bool> {
        let taken: Option<i32> = sqlx::query_scalar(
            "insert into leases (name, holder, until) values ($1, $2, now() + make_interval(secs => $3)) \
             on conflict (name) do update set holder = excluded.holder, until = excluded.until \
             where leases.until < now() or leases.holder = excluded.holder returning 1",
        )
        .bind(name)
        .bind(holder)
        .bind(ttl.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        Ok(taken.is_some())
    }

    /// Records who asked to cancel a running run and why (`POST /runs/{id}/cancel`, before it
    /// asks Temporal); the run workflow's record of its cancellation names them.
    pub async fn request_cancel(&self, run: &str, by: &str, reason: Option<&str>) -> Result<CancelRequest> {
        let updated = sqlx::query(
            "update activity_runs set cancel_requested_by = coalesce(cancel_requested_by, $2), \
             cancel_reason = coalesce(cancel_reason, $3) where workflow_id = $1 and status in ('running', 'queued')",
        )
        .bind(run)
        .bind(nul::text(by))
        .bind(nul::text_opt(reason))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 1 {
            return Ok(CancelRequest::Recorded);
        }
        let status: Option<String> = sqlx::query_scalar("select status from activity_runs where workflow_id = $1")
            .bind(run)
            .fetch_optional(&self.pool)
            .await?;
        match status {
            Some(status) => Ok(CancelRequest::NotRunning(status)),
            None => Err(StoreError::NotFound(format!("run {run:?}"))),
        }
    }

    /// Records that Temporal closed `run` with `status` because of `reason`: the run row (only
    /// while it still says running), its unfinished tasks (`cancelled`, one `NODE_CANCELLED`
    /// each) and its waiting human tasks (`cancelled`), and the run's end event, in one
    /// transaction. A cancellation names who asked and why when taskfactory's API asked
    /// ([`Self::request_cancel`]); otherwise "Temporal" asked, for `reason`. The events share
    /// the keys of the ends the workflow would have written, so a late write of the workflow's
    /// own is a no-op. Answers whether the run was still open.
    pub async fn close_run_in_temporal(&self, run: &str, status: Status, reason: &str) -> Result<bool> {
        let began = Instant::now();
        let mut tx = self.pool.begin().await?;
        let closed: Option<(String, i32, Option<String>, Option<String>)> = sqlx::query_as(
            "update activity_runs set status = $2, finished_at = coalesce(finished_at, now()), \
             error = case when $2 = 'cancelled' then coalesce(cancel_reason, $3) else $3 end \
             where workflow_id = $1 and status in ('running', 'queued') \
             returning definition_id, resets, cancel_requested_by, cancel_reason",
        )
        .bind(run)
        .bind(status.as_str())
        .bind(nul::text(reason))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((definition_id, resets, requested_by, requested_reason)) = closed else {
            return Ok(false);
        };
        let (by, reason) = match status {
            Status::Cancelled => (
                requested_by.unwrap_or_else(|| "Temporal".to_owned()),
                requested_reason.unwrap_or_else(|| reason.to_owned()),
            ),
            _ => ("Temporal".to_owned(), reason.to_owned()),
        };
        let reason = reason.as_str();
        let mut events = close_open_tasks(&mut tx, run, reason).await?;
        let tasks_cancelled = events.len();
        let event_type = match status {
            Status::Cancelled => EventType::WorkflowCancelled,
            Status::Terminated => EventType::WorkflowTerminated,
            Status::TimedOut => EventType::WorkflowTimedOut,
            _ => EventType::WorkflowFailed,
        };
        let message = match status {
            Status::Cancelled => format!("run cancelled by {by}: {reason}"),
            _ => format!("run {}: {reason}", status.as_str()),
        };
        events.push(event(
            run_finished_key(resets),
            event_type,
            None,
            Level::Warn,
            message,
            json!({"reason": reason, "by": by, "tasks_cancelled": tasks_cancelled}),
        ));
        Self::append_events(&mut tx, run, &events).await?;
        commit_write(tx, "close_run_in_temporal", began).await?;
        metrics().runs_finished.with_label_values(&[definition_id.as_str(), status.as_str()]).inc();
        Ok(true)
    }
}

/// What [`Store::request_cancel`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelRequest {
    /// The run is running: the request is recorded.
    Recorded,
    /// The run has ended with this status: there is nothing to cancel.
    NotRunning(String),
}

/// The key of a run's end event: each reset in Temporal continues the run record and ends it
/// anew.
pub(crate) fn run_finished_key(resets: i32) -> String {
    if resets == 0 { "run:finished".to_owned() } else { format!("run:finished:{resets}") }
}

/// Closes a run's tasks that have no outcome yet (`cancelled`, with `reason`) and its waiting
/// human tasks (`cancelled`); answers one `NODE_CANCELLED` per task, for the caller to append.
pub(crate) async fn close_open_tasks(
    tx: &mut Transaction<'_, Postgres>,
    run: &str,
    reason: &str,
) -> Result<Vec<NewTraceEvent>> {
    let tasks: Vec<String> = sqlx::query_scalar(
        "update task_runs set status = 'cancelled', error = $2, finished_at = now() \
         where run_workflow_id = $1 and status in ('pending', 'running') returning id",
    )
    .bind(run)
    .bind(nul::text(reason))
    .fetch_all(&mut **tx)
    .await?;
    sqlx::query("update human_tasks set status = 'cancelled', decided_at = now() where run_workflow_id = $1 and status = 'waiting'")
        .bind(run)
        .execute(&mut **tx)
        .await?;
    Ok(tasks
        .iter()
        .map(|task| {
            event(
                format!("task:{task}:finished"),
                EventType::NodeCancelled,
                Some(task),
                Level::Warn,
                format!("task cancelled: {reason}"),
                json!({"reason": reason}),
            )
        })
        .collect())
}
