//! Human tasks: the inbox rows a `human` task creates, and the decisions people take on them.

use super::*;

impl Store {
    /// Records a human task (idempotent) with `NODE_WAITING`; returns its short id.
    pub async fn human_task_created(
        &self,
        run: &str,
        task_id: &str,
        title: &str,
        assignee: Option<&str>,
        form: &Value,
    ) -> Result<String> {
        use sha2::{Digest, Sha256};
        let id = hex::encode(Sha256::digest(task_id.as_bytes()))[..20].to_owned();
        let began = Instant::now();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "insert into human_tasks (id, task_id, run_workflow_id, title, assignee, form) values ($1, $2, $3, $4, $5, $6) \
             on conflict (id) do nothing",
        )
        .bind(&id)
        .bind(task_id)
        .bind(run)
        .bind(nul::text(title))
        .bind(nul::text_opt(assignee))
        .bind(nul::encode(form).as_ref())
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
        commit_write(tx, "human_task_created", began).await?;
        Ok(id)
    }

    /// Human tasks, newest first, optionally only those in `status` or for `assignee`.
    pub async fn list_human_tasks(
        &self,
        status: Option<&str>,
        assignee: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Value>> {
        let rows: Vec<(Value,)> = sqlx::query_as(
            "select to_jsonb(h) from human_tasks h where ($1::text is null or status = $1) and ($2::text is null or assignee = $2) \
             order by created_at desc limit $3",
        )
        .bind(status)
        .bind(assignee)
        .bind(limit.clamp(1, 500))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(v,)| nul::decode(v)).collect())
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
        .bind(nul::text_opt(by))
        .bind(nul::encode(response).as_ref())
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
}
