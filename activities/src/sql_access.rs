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
    "run_retries",
    "leases",
    "task_artifacts",
    "run_admissions",
    "event_groups",
    "notifications",
    "definition_generation",
    "_sqlx_migrations",
];

/// Predefined roles that reach beyond the tables granted: server files, programs, all data.
const POWERFUL_ROLES: &[&str] = &[
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_read_all_data",
    "pg_write_all_data",
];

/// Functions that read the server's files (superuser-only unless granted).
const FILE_FUNCTIONS: &[&str] =
    &["pg_read_file(text)", "pg_read_binary_file(text)", "pg_ls_dir(text)", "pg_stat_file(text)", "lo_import(text)"];

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
                let problems = match privileges(&self.pool).await {
                    Ok(problems) => problems,
                    // The database answered but the check failed: refuse rather than guess.
                    Err(sqlx::Error::Database(e)) => Some(format!("its privileges could not be checked ({e})")),
                    Err(source) => return Err(AccessError::Unreachable { name: self.name.clone(), source }),
                };
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

/// What makes the pool's role too powerful for context queries, or `None`. Every role the
/// connection's role is a member of counts as its own: a query may switch to one of them
/// (`set_config('role', ...)`) for the rest of its session.
pub async fn privileges(pool: &PgPool) -> Result<Option<String>, sqlx::Error> {
    let role: String = sqlx::query_scalar("select current_user::text").fetch_one(pool).await?;
    // The role itself and every role it may become.
    let members = "select oid, rolname from pg_roles where pg_has_role(current_user, oid, 'MEMBER')";
    let via = |other: &str| {
        if other == role {
            format!("role {role:?}")
        } else {
            format!("role {role:?} (through its membership in {other:?})")
        }
    };
    let superuser: Option<String> = sqlx::query_scalar(&format!(
        "select m.rolname::text from ({members}) m join pg_roles r on r.oid = m.oid where r.rolsuper order by 1 limit 1"
    ))
    .fetch_optional(pool)
    .await?;
    if let Some(other) = superuser {
        return Ok(Some(format!("{} is a superuser", via(&other))));
    }
    let powerful: Vec<String> =
        sqlx::query_scalar(&format!("select rolname::text from ({members}) m where rolname = any($1) order by 1"))
            .bind(POWERFUL_ROLES)
            .fetch_all(pool)
            .await?;
    if !powerful.is_empty() {
        return Ok(Some(format!("role {role:?} is a member of {}", powerful.join(", "))));
    }
    let functions: Vec<(String, String)> = sqlx::query_as(&format!(
        "select f, m.rolname::text from unnest($1::text[]) f cross join ({members}) m \
         where to_regprocedure(f) is not null and has_function_privilege(m.oid, to_regprocedure(f), 'EXECUTE') order by 1, 2"
    ))
    .bind(FILE_FUNCTIONS)
    .fetch_all(pool)
    .await?;
    if let Some((function, other)) = functions.first() {
        return Ok(Some(format!("{} may run {function}", via(other))));
    }
    // Taskfactory's schema: one that holds both its runs and its keys.
    let tables: Vec<(String, String)> = sqlx::query_as(&format!(
        "select format('%I.%I', n.nspname, c.relname), m.rolname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         cross join ({members}) m \
         where c.relkind in ('r', 'p') \
           and (c.relname = any($1) or exists (select 1 from pg_inherits i join pg_class parent on parent.oid = i.inhparent \
                where i.inhrelid = c.oid and parent.relname = any($1))) \
           and exists (select 1 from pg_class r where r.relnamespace = n.oid and r.relname = 'activity_runs') \
           and exists (select 1 from pg_class k where k.relnamespace = n.oid and k.relname = 'api_keys') \
           and (has_table_privilege(m.oid, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') \
                or has_any_column_privilege(m.oid, c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')) \
         order by 1, 2"
    ))
    .bind(STORE_TABLES)
    .fetch_all(pool)
    .await?;
    if let Some((_, other)) = tables.first() {
        let mut shown: Vec<&str> = tables.iter().map(|(t, _)| t.as_str()).collect();
        shown.dedup();
        let more = if shown.len() > 3 { format!(" and {} more", shown.len() - 3) } else { String::new() };
        shown.truncate(3);
        return Ok(Some(format!("{} can read taskfactory's own tables ({}{more})", via(other), shown.join(", "))));
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
                let name = name.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap();
                // `create table %I partition of run_events` in a function: partitions, checked
                // through their parent.
                if !name.is_empty() {
                    created.push(name.to_owned());
                }
            }
        }
        for table in &created {
            assert!(STORE_TABLES.contains(&table.as_str()), "{table} is missing from STORE_TABLES");
        }
    }
}
