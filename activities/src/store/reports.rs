//! What task code reports into the run log from outside (`POST /api/v1/task-events`):
//! progress, log lines and artifacts, on the node of the task that Temporal identity runs.

use super::*;

/// An artifact to attach to a task: a link, or inline content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArtifactBody {
    /// Where it lives.
    Url(String),
    /// The content itself.
    Inline(Vec<u8>),
}

/// An artifact a report attaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewArtifact {
    /// Its id (derived from the report's key, so a resent report stores it once).
    pub id: String,
    /// The task it belongs to.
    pub task_id: String,
    /// Its name.
    pub name: String,
    /// Its media type.
    pub media_type: Option<String>,
    /// A link, or the content.
    pub body: ArtifactBody,
}

/// A stored artifact, as `GET /api/v1/artifacts/{id}` serves it.
#[derive(Clone, Debug)]
pub struct StoredArtifact {
    /// Its name.
    pub name: String,
    /// Its media type, if given.
    pub media_type: Option<String>,
    /// A link, or the content.
    pub body: ArtifactBody,
}

/// One artifact of a task, as listed with the run.
#[derive(Clone, Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct ArtifactRow {
    /// Its id (`GET /api/v1/artifacts/{id}` serves inline content; links point elsewhere).
    pub id: String,
    /// The task.
    pub task_id: String,
    /// Its name.
    pub name: String,
    /// Its media type.
    pub media_type: Option<String>,
    /// The link, for an artifact that lives elsewhere.
    pub url: Option<String>,
    /// Bytes of inline content (0 for a link).
    pub size: i64,
    /// When it was attached.
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// The run and task a Temporal identity belongs to: an activity-mode task is the activity
    /// (its activity id is the task id) of its batch; a workflow-mode task is its own workflow
    /// (the task id), and the `workflow` kind's workflow is `{task id}/work`.
    pub async fn task_of(&self, workflow_id: &str, activity_id: Option<&str>) -> Result<Option<(String, String)>> {
        let mut candidates: Vec<&str> = Vec::with_capacity(3);
        candidates.extend(activity_id);
        candidates.push(workflow_id);
        candidates.extend(workflow_id.strip_suffix("/work"));
        // The first candidate that is a task, in the order above.
        Ok(sqlx::query_as(
            "select run_workflow_id, id from task_runs where id = any($1) order by array_position($1, id) limit 1",
        )
        .bind(&candidates)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Appends task-reported events to a run's log, storing their artifacts with them, in one
    /// transaction (idempotent by event key: a resent artifact is stored once). Answers how
    /// many events were new.
    pub async fn append_task_reports(
        &self,
        run: &str,
        events: &[NewTraceEvent],
        artifacts: &[NewArtifact],
    ) -> Result<usize> {
        let began = Instant::now();
        let mut tx = self.pool.begin().await?;
        for NewArtifact { id, task_id, name, media_type, body } in artifacts {
            let (url, content, size) = match body {
                ArtifactBody::Url(url) => (Some(url.as_str()), None, 0),
                ArtifactBody::Inline(bytes) => {
                    (None, Some(bytes.as_slice()), i64::try_from(bytes.len()).unwrap_or(i64::MAX))
                }
            };
            sqlx::query(
                "insert into task_artifacts (id, run_workflow_id, task_id, name, media_type, url, content, size) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (id) do nothing",
            )
            .bind(id)
            .bind(run)
            .bind(task_id)
            .bind(nul::text(name))
            .bind(media_type.as_deref().map(nul::text))
            .bind(url.map(nul::text))
            .bind(content)
            .bind(size)
            .execute(&mut *tx)
            .await?;
        }
        let written = Self::append_events(&mut tx, run, events).await?;
        commit_write(tx, "append_task_reports", began).await?;
        Ok(written)
    }

    /// One artifact.
    pub async fn artifact(&self, id: &str) -> Result<StoredArtifact> {
        let row = sqlx::query("select name, media_type, url, content from task_artifacts where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("artifact {id:?}")))?;
        let (name, media_type): (String, Option<String>) = (row.try_get("name")?, row.try_get("media_type")?);
        let (url, content): (Option<String>, Option<Vec<u8>>) = (row.try_get("url")?, row.try_get("content")?);
        let body = match (url, content) {
            (Some(url), _) => ArtifactBody::Url(url),
            (None, content) => ArtifactBody::Inline(content.unwrap_or_default()),
        };
        Ok(StoredArtifact { name, media_type, body })
    }

    /// A run's artifacts, oldest first (at most 1,000).
    pub async fn run_artifacts(&self, run: &str) -> Result<Vec<ArtifactRow>> {
        Ok(sqlx::query_as(
            "select id, task_id, name, media_type, url, size, created_at from task_artifacts \
             where run_workflow_id = $1 order by created_at, id limit 1000",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?)
    }
}
