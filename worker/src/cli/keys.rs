//! `taskfactory keys create|list|revoke`: talks to the database directly, so the first admin
//! key can be made before any key exists.

use anyhow::Context;
use taskfactory_activities::Store;
use taskfactory_activities::auth_store::NewKey;

use super::args::KeysCommand;
use crate::config::DatabaseArgs;

/// Runs a `keys` subcommand.
pub async fn run(command: KeysCommand, database: &DatabaseArgs) -> anyhow::Result<()> {
    let store = Store::connect(&database.database_url, 2).await.context("connecting to DATABASE_URL")?;
    match command {
        KeysCommand::Create { name, role, expires_in } => {
            let new = NewKey::check(Some(&name), Some(role.as_str()), expires_in.as_deref())?;
            let (info, key) = store.create_key(&new.name, new.role, new.expires_at).await?;
            println!("{key}");
            eprintln!("created key {} ({}, {}); it is shown only now", info.id, info.name, info.role);
        }
        KeysCommand::List => {
            for k in store.list_keys().await? {
                let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                println!("{:<14} {:<9} {:<8} {}", k.id, k.role, state, k.name);
            }
        }
        KeysCommand::Revoke { id } => {
            store.revoke_key(&id).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
