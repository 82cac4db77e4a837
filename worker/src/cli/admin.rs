//! Operator commands that talk to Temporal or Postgres directly: `setup` (search attributes),
//! `migrate`, `history` (a workflow's history for a replay test).

use std::path::Path;

use anyhow::Context;
use taskfactory_activities::Store;

use crate::config::{DatabaseArgs, TemporalArgs};

/// `taskfactory setup`: registers the search attributes (idempotent).
pub async fn setup(temporal: &TemporalArgs) -> anyhow::Result<()> {
    let client = crate::temporal::connect(&temporal.temporal_address, &temporal.namespace).await?;
    let added = crate::temporal::register_search_attributes(&client, &temporal.namespace).await?;
    if added.is_empty() {
        println!("search attributes already registered in {}", temporal.namespace);
    } else {
        println!("registered {} in {}", added.join(", "), temporal.namespace);
    }
    Ok(())
}

/// `taskfactory migrate`.
pub async fn migrate(database: &DatabaseArgs) -> anyhow::Result<()> {
    let store = Store::connect(&database.database_url, 2).await.context("connecting to DATABASE_URL")?;
    store.migrate().await?;
    println!("migrations applied");
    Ok(())
}

/// `taskfactory history WF -o FILE`.
pub async fn history(temporal: &TemporalArgs, workflow_id: &str, out: &Path) -> anyhow::Result<()> {
    let client = crate::temporal::connect(&temporal.temporal_address, &temporal.namespace).await?;
    let json = crate::temporal::history_json(&client, workflow_id).await?;
    std::fs::write(out, json).with_context(|| format!("writing {}", out.display()))?;
    println!("saved the history of {workflow_id} to {}", out.display());
    Ok(())
}
