//! The databases `sql` context sources read, and the check each one passes before it is used.
//!
//! A query of a definition runs with the privileges of its connection's role, and what it
//! returns lands in the run's context snapshot, which every `viewer` key can read. So a source
//! never runs on the store's own pool (the owner of every table taskfactory keeps, often a
//! superuser): it runs on a connection the operator configured by name
//! (`--sql-connection NAME=URL`; the context database `TASKFACTORY_CONTEXT_DATABASE_URL` is the
//! connection [`DEFAULT_CONNECTION`] that sources without `connection` use).
//!
//! Before a connection serves its first query (and at start-up, see
//! [`SqlConnection::verify`]) its role is checked: a superuser, a role that may read server
//! files or run programs (`pg_read_server_files`, `pg_execute_server_program`,
//! `pg_read_all_data`, ... or `EXECUTE` on `pg_read_file`), or a role with any privilege on
//! taskfactory's own tables is refused, unless the operator allowed that connection by name
//! (`--allow-privileged-sql NAME`).

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

/// The connection `sql` sources without `connection` use: the context database.
pub const DEFAULT_CONNECTION: &str = "default";

/// The tables taskfactory's migrations create; a context role must not be able to touch them.
pub const STORE_TABLES: &[&str] = &[
    "activity_definitions",
    "activity_definition_versions",
    "activity_runs",
    "task_runs",
    "run_events",
    "event_receipts",
    "human_tasks",
    "api_keys",
    "audit_log",
    "trigger_decisions",
    "schedule_observations",
    "_sqlx_migrations",
];

/// Predefined roles that reach beyond the tables granted: server files, programs, all data.
const POWERFUL_ROLES: &[&str] = &["pg_read_server_files", "pg_write_server_files", "pg_execute_server_program", "pg_read_all_data", "pg_write_all_data"];

/// Functions that read the server's files (superuser-only unless granted).
const FILE_FUNCTIONS: &[&str] = &["pg_read_file(text)", "pg_read_binary_file(text)", "pg_ls_dir(text)", "pg_stat_file(text)", "lo_import(text)"];

/// How long the start-up check waits for a database before deferring to the first query.
pub const STARTUP_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// One named database `sql` sources may query.
#[derive(Clone, Debug)]
pub struct SqlConnection {
    /// Its name (`connection: NAME`).
    pub name: String,
    /// The pool, connected with the connection's own role.
    pub pool: PgPool,
    /// The operator allowed a privileged role here (`--allow-privileged-sql NAME`).
    pub allow_privileged: bool,
    /// The outcome of the privilege check, once it ran (a refusal is final; a database that
    /// could not be reached is checked again on the next use).
    checked: Arc<tokio::sync::OnceCell<Result<(), String>>>,
}

/// Why a connection cannot serve a query.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// Its role has more privileges than a context query may have; the message says which
    /// and how to fix it.
    #[error("{0}")]
    Privileged(String),
    /// The database could not be asked (retrying may help).
    #[error("connection {name:?}: {source}")]
    Unreachable {
        /// The connection.
        name: String,
        /// What failed.
        source: sqlx::Error,
    },
}

impl SqlConnection {
    /// A connection named `name` over `pool`, checked before its first use.
    pub fn new(name: impl Into<String>, pool: PgPool, allow_privileged: bool) -> Self {
        Self { name: name.into(), pool, allow_privileged, checked: Arc::default() }
    }

    /// Checks the role once; later calls answer the kept outcome. A role allowed by the
    /// operator is not checked.
    pub async fn verify(&self) -> Result<(), AccessError> {
        if self.allow_privileged {
            return Ok(());
        }
        let outcome = self
            .checked
            .get_or_try_init(|| async {
                let problems = privileges(&self.pool).await.map_err(|source| AccessError::Unreachable { name: self.name.clone(), source })?;
                Ok::<_, AccessError>(match problems {
                    None => Ok(()),
                    Some(problem) => Err(format!(
                        "SQL connection {name:?} is refused: {problem}. Connect it as a read-only role (wiki/operations.md, \"SQL context sources\"), or allow it with --allow-privileged-sql {name}",
                        name = self.name
                    )),
                })
            })
            .await?;
        outcome.clone().map_err(AccessError::Privileged)
    }
}

/// What makes the pool's role too powerful for context queries, or `None`.
pub async fn privileges(pool: &PgPool) -> Result<Option<String>, sqlx::Error> {
    let (role, superuser): (String, bool) = sqlx::query_as("select current_user::text, rolsuper from pg_roles where rolname = current_user").fetch_one(pool).await?;
    if superuser {
        return Ok(Some(format!("role {role:?} is a superuser")));
    }
    let powerful: Vec<String> = sqlx::query_scalar("select rolname::text from pg_roles where rolname = any($1) and pg_has_role(current_user, oid, 'MEMBER') order by 1")
        .bind(POWERFUL_ROLES)
        .fetch_all(pool)
        .await?;
    if !powerful.is_empty() {
        return Ok(Some(format!("role {role:?} is a member of {}", powerful.join(", "))));
    }
    let functions: Vec<String> = sqlx::query_scalar(
        "select f from unnest($1::text[]) f where to_regprocedure(f) is not null and has_function_privilege(to_regprocedure(f), 'EXECUTE') order by 1",
    )
    .bind(FILE_FUNCTIONS)
    .fetch_all(pool)
    .await?;
    if !functions.is_empty() {
        return Ok(Some(format!("role {role:?} may run {}", functions.join(", "))));
    }
    // Taskfactory's schema: one that holds both its runs and its keys.
    let tables: Vec<String> = sqlx::query_scalar(
        "select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where c.relname = any($1) and c.relkind in ('r', 'p') \
           and exists (select 1 from pg_class r where r.relnamespace = n.oid and r.relname = 'activity_runs') \
           and exists (select 1 from pg_class k where k.relnamespace = n.oid and k.relname = 'api_keys') \
           and (has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') or has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')) \
         order by 1",
    )
    .bind(STORE_TABLES)
    .fetch_all(pool)
    .await?;
    if !tables.is_empty() {
        let shown: Vec<&str> = tables.iter().map(String::as_str).take(3).collect();
        let more = if tables.len() > shown.len() { format!(" and {} more", tables.len() - shown.len()) } else { String::new() };
        return Ok(Some(format!("role {role:?} can read taskfactory's own tables ({}{more})", shown.join(", "))));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_of_the_migrations_is_protected() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let mut created = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let sql = std::fs::read_to_string(entry.unwrap().path()).unwrap().to_lowercase();
            for part in sql.split("create table").skip(1) {
                let name = part.trim_start().trim_start_matches("if not exists").trim_start();
                created.push(name.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap().to_owned());
            }
        }
        for table in &created {
            assert!(STORE_TABLES.contains(&table.as_str()), "{table} is missing from STORE_TABLES");
        }
    }
}
