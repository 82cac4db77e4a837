//! Definitions: versioned documents, lookups for runs and events, event receipts.

use super::*;

/// The definitions an event type reaches: see [`Store::event_definitions`].
#[derive(Clone, Debug, Default)]
pub struct Listening {
    /// Enabled: each takes the event.
    pub enabled: Vec<LoadedDefinition>,
    /// Disabled: ids only.
    pub disabled: Vec<String>,
    /// The definitions' change counter this was read at: writes of an event's outcome made
    /// with it commit only while it is current ([`Store::accept_event`]).
    pub generation: i64,
}

impl Store {
    /// Saves a definition: a new immutable version unless it equals the current one.
    pub async fn put_definition(&self, def: &ActivityDefinition) -> Result<PutOutcome> {
        let document = serde_json::to_value(def).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        // Serialises concurrent PUTs of one id, including the very first one.
        sqlx::query("select pg_advisory_xact_lock(hashtext($1))").bind(def.id.as_str()).execute(&mut *tx).await?;
        let current: Option<(i32, Option<DateTime<Utc>>)> =
            sqlx::query_as("select current_version, deleted_at from activity_definitions where id = $1")
                .bind(def.id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let version: i32 = match current {
            Some((version, deleted_at)) => {
                if deleted_at.is_none() {
                    let stored: Value = sqlx::query_scalar(
                        "select document from activity_definition_versions where definition_id = $1 and version = $2",
                    )
                    .bind(def.id.as_str())
                    .bind(version)
                    .fetch_one(&mut *tx)
                    .await?;
                    if stored == document {
                        return Ok(PutOutcome { version, changed: false });
                    }
                }
                sqlx::query_scalar(
                    "select coalesce(max(version), 0) + 1 from activity_definition_versions where definition_id = $1",
                )
                .bind(def.id.as_str())
                .fetch_one(&mut *tx)
                .await?
            }
            None => 1,
        };
        // The current pointer, created or moved (a deleted definition saved again comes back).
        sqlx::query(
            "insert into activity_definitions (id, current_version, name, enabled, trigger_kind, tags) values ($1, $2, $3, $4, $5, $6) \
             on conflict (id) do update set current_version = excluded.current_version, name = excluded.name, enabled = excluded.enabled, \
             trigger_kind = excluded.trigger_kind, tags = excluded.tags, updated_at = now(), deleted_at = null",
        )
        .bind(def.id.as_str())
        .bind(version)
        .bind(&def.name)
        .bind(def.enabled)
        .bind(def.trigger.kind.as_str())
        .bind(&def.tags)
        .execute(&mut *tx)
        .await?;
        sqlx::query("insert into activity_definition_versions (definition_id, version, document) values ($1, $2, $3)")
            .bind(def.id.as_str())
            .bind(version)
            .bind(&document)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(PutOutcome { version, changed: true })
    }

    /// The current version of a (not deleted) definition.
    pub async fn get_definition(&self, id: &str) -> Result<DefinitionRecord> {
        let row = sqlx::query(
            "select v.document, d.current_version, d.created_at, d.updated_at from activity_definitions d \
             join activity_definition_versions v on v.definition_id = d.id and v.version = d.current_version \
             where d.id = $1 and d.deleted_at is null",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("definition {id:?}")))?;
        let document: Value = row.try_get("document")?;
        Ok(DefinitionRecord {
            definition: serde_json::from_value(document)
                .map_err(|e| StoreError::Corrupt(format!("definition {id:?}: {e}")))?,
            version: row.try_get("current_version")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// The (not deleted) definitions that pass `filter`, by id.
    pub async fn list_definitions(&self, filter: &DefinitionFilter) -> Result<Vec<DefinitionSummary>> {
        // `tags @> '{}'` holds for every row, so no tags means no condition (and the GIN
        // index serves the containment when there are some).
        let rows = sqlx::query(
            "select id, name, current_version, enabled, trigger_kind, tags, updated_at from activity_definitions \
             where deleted_at is null and tags @> $1::text[] \
             and ($2::text is null or strpos(lower(id), lower($2)) > 0 or strpos(lower(name), lower($2)) > 0) \
             order by id",
        )
        .bind(&filter.tags)
        .bind(filter.search.as_deref())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DefinitionSummary {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    version: r.try_get("current_version")?,
                    enabled: r.try_get("enabled")?,
                    trigger_kind: r.try_get("trigger_kind")?,
                    tags: r.try_get("tags")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// The current document of every (not deleted) definition.
    pub async fn current_definitions(&self) -> Result<Vec<ActivityDefinition>> {
        let rows: Vec<(String, Value)> = sqlx::query_as(
            "select d.id, v.document from activity_definitions d join activity_definition_versions v \
             on v.definition_id = d.id and v.version = d.current_version where d.deleted_at is null order by d.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, document)| {
                serde_json::from_value(document).map_err(|e| StoreError::Corrupt(format!("definition {id:?}: {e}")))
            })
            .collect()
    }

    /// Every version of a definition, newest first (deleted definitions included).
    pub async fn list_versions(&self, id: &str) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query("select version, created_at, document from activity_definition_versions where definition_id = $1 order by version desc")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        if rows.is_empty() {
            return Err(StoreError::NotFound(format!("definition {id:?}")));
        }
        rows.iter()
            .map(|r| {
                Ok(VersionRecord {
                    version: r.try_get("version")?,
                    created_at: r.try_get("created_at")?,
                    document: r.try_get("document")?,
                })
            })
            .collect()
    }

    /// One version of a definition (deleted definitions included).
    pub async fn get_version(&self, id: &str, version: i32) -> Result<VersionRecord> {
        let row: Option<(i32, DateTime<Utc>, Value)> =
            sqlx::query_as("select version, created_at, document from activity_definition_versions where definition_id = $1 and version = $2")
                .bind(id)
                .bind(version)
                .fetch_optional(&self.pool)
                .await?;
        let (version, created_at, document) =
            row.ok_or_else(|| StoreError::NotFound(format!("definition {id:?} version {version}")))?;
        Ok(VersionRecord { version, created_at, document })
    }

    /// Soft-deletes a definition; its versions stay for the runs that used them.
    pub async fn delete_definition(&self, id: &str) -> Result<()> {
        let done =
            sqlx::query("update activity_definitions set deleted_at = now() where id = $1 and deleted_at is null")
                .bind(id)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("definition {id:?}")));
        }
        Ok(())
    }

    /// Loads the version a run uses: the pinned one, or the current one.
    pub async fn load_for_run(&self, id: &DefinitionId, version: Option<i32>) -> Result<LoadedDefinition> {
        let row: Option<(i32, Value)> = match version {
            Some(v) => {
                sqlx::query_as("select version, document from activity_definition_versions where definition_id = $1 and version = $2")
                    .bind(id.as_str())
                    .bind(v)
                    .fetch_optional(&self.pool)
                    .await?
            }
            None => {
                sqlx::query_as(
                    "select v.version, v.document from activity_definitions d join activity_definition_versions v \
                     on v.definition_id = d.id and v.version = d.current_version where d.id = $1 and d.deleted_at is null",
                )
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?
            }
        };
        let (version, document) = row.ok_or_else(|| match version {
            Some(v) => StoreError::NotFound(format!("definition {id:?} version {v}")),
            None => StoreError::NotFound(format!("definition {id:?}")),
        })?;
        let definition = serde_json::from_value(document)
            .map_err(|e| StoreError::Corrupt(format!("definition {id:?} v{version}: {e}")))?;
        Ok(LoadedDefinition { version, definition })
    }

    /// The `kind: event` definitions (current versions, not deleted) listening to
    /// `event_type`, in one query: the enabled ones, loaded, and the ids of the disabled ones
    /// (their decision logs record that an event came and started nothing).
    pub async fn event_definitions(&self, event_type: &str) -> Result<Listening> {
        // The counter and the definitions from one snapshot (one statement).
        // The counter, then a definition's id, enabled, version and document (none if no row).
        type Row = (i64, Option<String>, Option<bool>, Option<i32>, Option<Value>);
        let rows: Vec<Row> = sqlx::query_as(
            "select g.n, l.id, l.enabled, l.version, l.document from definition_generation g left join ( \
               select d.id, d.enabled, v.version, case when d.enabled then v.document else 'null'::jsonb end as document \
               from activity_definitions d join activity_definition_versions v \
               on v.definition_id = d.id and v.version = d.current_version \
               where d.deleted_at is null and d.trigger_kind = 'event' \
               and v.document -> 'trigger' ->> 'event_type' = $1) l on true order by l.id",
        )
        .bind(event_type)
        .fetch_all(&self.pool)
        .await?;
        let mut listening = Listening::default();
        for (generation, id, enabled, version, document) in rows {
            listening.generation = generation;
            let (Some(id), Some(enabled), Some(version), Some(document)) = (id, enabled, version, document) else {
                continue;
            };
            if !enabled {
                listening.disabled.push(id);
                continue;
            }
            let definition = serde_json::from_value(document)
                .map_err(|e| StoreError::Corrupt(format!("event definition {id} v{version}: {e}")))?;
            listening.enabled.push(LoadedDefinition { version, definition });
        }
        Ok(listening)
    }
}
