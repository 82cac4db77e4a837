//! Runs closed in Temporal without their workflow code recording it: an operator's cancel or
//! terminate, an execution timeout. The API's run reconciler finds them and records them here.

use super::*;

impl Store {
    /// Runs the log says are running, oldest first, at most `limit`.
    pub async fn open_runs(&self, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "select workflow_id from activity_runs where status = 'running' order by fired_at limit $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records that Temporal closed `run` with `status` because of `reason`: the run row (only
    /// while it still says running), its unfinished tasks (`cancelled`, one `NODE_CANCELLED`
    /// each) and its waiting human tasks (`cancelled`), and the run's end event, in one
    /// transaction. The events share the keys of the ends the workflow would have written, so
    /// a late write of the workflow's own is a no-op. Answers whether the run was still open.
    pub async fn close_run_in_temporal(&self, run: &str, status: Status, reason: &str) -> Result<bool> {
        let began = Instant::now();
        let mut tx = self.pool.begin().await?;
        let definition_id: Option<String> = sqlx::query_scalar(
            "update activity_runs set status = $2, error = $3, finished_at = coalesce(finished_at, now()) \
             where workflow_id = $1 and status = 'running' returning definition_id",
        )
        .bind(run)
        .bind(status.as_str())
        .bind(reason)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(definition_id) = definition_id else {
            return Ok(false);
        };
        let tasks: Vec<String> = sqlx::query_scalar(
            "update task_runs set status = 'cancelled', error = $2, finished_at = now() \
             where run_workflow_id = $1 and status in ('pending', 'running') returning id",
        )
        .bind(run)
        .bind(reason)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("update human_tasks set status = 'cancelled', decided_at = now() where run_workflow_id = $1 and status = 'waiting'")
            .bind(run)
            .execute(&mut *tx)
            .await?;
        let mut events: Vec<NewTraceEvent> = tasks
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
            .collect();
        let event_type = match status {
            Status::Cancelled => EventType::WorkflowCancelled,
            Status::Terminated => EventType::WorkflowTerminated,
            Status::TimedOut => EventType::WorkflowTimedOut,
            _ => EventType::WorkflowFailed,
        };
        events.push(event(
            "run:finished",
            event_type,
            None,
            Level::Warn,
            format!("run {}: {reason}", status.as_str()),
            json!({"reason": reason, "tasks_cancelled": tasks.len()}),
        ));
        Self::append_events(&mut tx, run, &events).await?;
        commit_write(tx, "close_run_in_temporal", began).await?;
        metrics().runs_finished.with_label_values(&[definition_id.as_str(), status.as_str()]).inc();
        Ok(true)
    }
}
