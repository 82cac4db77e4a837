//! Notification deliveries (`notifications`): what a run's end and a silent cron slot ask to
//! send, claimed once per dedupe key, and what became of each attempt.

use super::*;

/// One delivery, as `GET /api/v1/definitions/{id}/notifications` lists it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, sqlx::FromRow)]
pub struct NotificationRow {
    /// Its id (pass as `before` for older ones).
    pub id: i64,
    /// The definition.
    pub definition_id: String,
    /// The run it is about (`null` for `schedule_silent`).
    pub run_workflow_id: Option<String>,
    /// `run_failed`, `run_recovered`, `task_failed` or `schedule_silent`.
    pub kind: String,
    /// Index of the definition's `notify` entry it was sent for.
    pub entry: i32,
    /// What makes it happen once (per run or slot, kind and entry).
    pub dedupe_key: String,
    /// `pending` (being sent, or retries left), `delivered` or `failed` (no retry left).
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// The webhook's last HTTP status.
    pub http_status: Option<i32>,
    /// The last attempt's error.
    pub error: Option<String>,
    /// The body sent (secrets as placeholders).
    pub payload: Value,
    /// When it was first attempted.
    pub created_at: DateTime<Utc>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A claimed delivery: the row is locked until [`Claim::finish`], so a concurrent attempt for
/// the same key waits, then finds it delivered.
pub struct Claim {
    tx: Transaction<'static, Postgres>,
    /// The row.
    pub id: i64,
    /// Whether it was delivered already (then there is nothing to send).
    pub delivered: bool,
}

/// What one attempt came to.
#[derive(Clone, Debug)]
pub struct Attempted {
    /// The webhook's HTTP status, if it answered.
    pub http_status: Option<u16>,
    /// Why it failed (`None`: delivered).
    pub error: Option<String>,
    /// No attempt follows (the last one, or a failure retrying cannot fix).
    pub last: bool,
}

impl Claim {
    /// Records the attempt and releases the row.
    pub async fn finish(mut self, attempt: &Attempted) -> Result<()> {
        let status = match (&attempt.error, attempt.last) {
            (None, _) => "delivered",
            (Some(_), true) => "failed",
            (Some(_), false) => "pending",
        };
        sqlx::query(
            "update notifications set attempts = attempts + 1, status = $2, http_status = coalesce($3, http_status), \
             error = $4, delivered_at = case when $2 = 'delivered' then now() else delivered_at end where id = $1",
        )
        .bind(self.id)
        .bind(status)
        .bind(attempt.http_status.map(i32::from))
        .bind(attempt.error.as_deref().map(nul::text))
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Claims the delivery `key` (creating its row with `payload`): waits for a concurrent
    /// claim of the same key to finish, and says whether it was delivered already.
    pub async fn claim_notification(
        &self,
        notification: &taskfactory_schemas::notify::Notification,
        payload: &Value,
    ) -> Result<Claim> {
        let event = &notification.event;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "insert into notifications (definition_id, run_workflow_id, kind, entry, dedupe_key, payload) \
             values ($1, $2, $3, $4, $5, $6) on conflict (dedupe_key) do nothing",
        )
        .bind(&event.definition_id)
        .bind(&event.run_workflow_id)
        .bind(event.kind.as_str())
        .bind(i32::try_from(notification.entry).unwrap_or(i32::MAX))
        .bind(&notification.dedupe_key)
        .bind(nul::encode(payload).as_ref())
        .execute(&mut *tx)
        .await?;
        let (id, status): (i64, String) =
            sqlx::query_as("select id, status from notifications where dedupe_key = $1 for update")
                .bind(&notification.dedupe_key)
                .fetch_one(&mut *tx)
                .await?;
        Ok(Claim { tx, id, delivered: status == "delivered" })
    }

    /// A definition's deliveries, newest first: `limit` of them with ids below `before`.
    pub async fn list_notifications(
        &self,
        definition_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<NotificationRow>> {
        let mut rows: Vec<NotificationRow> = sqlx::query_as(
            "select id, definition_id, run_workflow_id, kind, entry, dedupe_key, status, attempts, http_status, \
             error, payload, created_at, delivered_at from notifications \
             where definition_id = $1 and ($2::bigint is null or id < $2) order by id desc limit $3",
        )
        .bind(definition_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        for row in &mut rows {
            row.payload = nul::decode(std::mem::take(&mut row.payload));
        }
        Ok(rows)
    }

    /// Whether the definition's run that started last before `run_workflow_id` with a verdict
    /// (`completed`, `failed` or `timed_out`) failed or timed out: what `run_failed` is sent
    /// for, so `run_recovered` follows it. Runs an operator or a concurrency limit ended
    /// (`cancelled`, `terminated`, `skipped`) say nothing of whether the definition works, and
    /// are passed over. `false` when there is none.
    pub async fn previous_verdict_failed(&self, definition_id: &str, run_workflow_id: &str) -> Result<bool> {
        let failed: Option<bool> = sqlx::query_scalar(
            "select status in ('failed', 'timed_out') from activity_runs where definition_id = $1 and workflow_id <> $2 \
             and finished_at is not null and status in ('completed', 'failed', 'timed_out') \
             and fired_at < (select fired_at from activity_runs where workflow_id = $2) \
             order by fired_at desc, workflow_id desc limit 1",
        )
        .bind(definition_id)
        .bind(run_workflow_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(failed.unwrap_or(false))
    }

    /// A run's failed tasks: the first `limit` ids (in id order) and how many there are.
    pub async fn failed_tasks(&self, run_workflow_id: &str, limit: i64) -> Result<(Vec<String>, u64)> {
        let ids: Vec<String> = sqlx::query_scalar(
            "select id from task_runs where run_workflow_id = $1 and status = 'failed' order by id limit $2",
        )
        .bind(run_workflow_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let count: i64 =
            sqlx::query_scalar("select count(*) from task_runs where run_workflow_id = $1 and status = 'failed'")
                .bind(run_workflow_id)
                .fetch_one(&self.pool)
                .await?;
        Ok((ids, u64::try_from(count).unwrap_or(0)))
    }
}
