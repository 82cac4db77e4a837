//! A least-privilege database role for `sql` context sources, and the schema it may read.
//!
//! `taskfactory dev` creates the role `taskfactory_context` with read access to the schema
//! `demo` (the examples' data) and nothing else: not taskfactory's own tables, not the
//! server's files. Its `sql` sources run as that role. The test suite makes one such role per
//! test database, so every test with a `sql` source also exercises the rule. How to grant such
//! a role on a real database: wiki/operations.md, "SQL context sources".

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

/// The role `taskfactory dev` makes.
pub const DEV_ROLE: &str = "taskfactory_context";
/// The schema of the examples' data.
pub const DEMO_SCHEMA: &str = "demo";

/// A role that may read one schema and nothing else.
#[derive(Clone, Debug)]
pub struct ContextRole {
    /// The role's name.
    pub role: String,
    /// The schema it reads; also its `search_path` in the database.
    pub schema: String,
    /// Its password (a fresh random one on every [`ensure`]).
    pub password: String,
}

impl ContextRole {
    /// `role` reading `schema`, with a new random password.
    pub fn new(role: impl Into<String>, schema: impl Into<String>) -> Self {
        let password = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        Self { role: role.into(), schema: schema.into(), password }
    }

    /// How to connect as this role to the database `admin` points at.
    pub fn connect_options(&self, admin: &PgConnectOptions) -> PgConnectOptions {
        admin.clone().username(&self.role).password(&self.password)
    }
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the role (or resets it: login, no other attribute, a new password), the schema,
/// and grants: `USAGE` on the schema, `SELECT` on its tables and on those the admin creates
/// there later, and the schema as the role's `search_path` in this database. Idempotent.
pub async fn ensure(admin: &PgPool, role: &ContextRole) -> anyhow::Result<()> {
    let (r, s) = (ident(&role.role), ident(&role.schema));
    let database: String = sqlx::query_scalar("select current_database()::text").fetch_one(admin).await?;
    let exists: Option<i32> =
        sqlx::query_scalar("select 1 from pg_roles where rolname = $1").bind(&role.role).fetch_optional(admin).await?;
    if exists.is_none() {
        sqlx::query(&format!("create role {r}"))
            .execute(admin)
            .await
            .with_context(|| format!("creating the role {r} (the database user needs CREATEROLE)"))?;
    }
    // The password is hex, so it needs no quoting beyond the literal's.
    let statements = [
        format!(
            "alter role {r} with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password '{}'",
            role.password
        ),
        format!("create schema if not exists {s}"),
        format!("grant usage on schema {s} to {r}"),
        format!("grant select on all tables in schema {s} to {r}"),
        format!("alter default privileges in schema {s} grant select on tables to {r}"),
        format!("alter role {r} in database {} set search_path = {s}", ident(&database)),
    ];
    for statement in statements {
        sqlx::query(&statement).execute(admin).await.with_context(|| {
            format!("setting up the context role: {}", statement.split(" password ").next().unwrap_or_default())
        })?;
    }
    Ok(())
}

/// The examples' data in the demo schema: a few invoices (`examples/invoices-report.yaml`
/// reads them). Idempotent.
pub async fn seed_demo_data(admin: &PgPool, schema: &str) -> anyhow::Result<()> {
    let s = ident(schema);
    sqlx::query(&format!("create table if not exists {s}.invoices (id text primary key, customer text not null, amount int not null, due date not null)"))
        .execute(admin)
        .await?;
    sqlx::query(&format!(
        "insert into {s}.invoices values ('inv-1001', 'acme', 1200, current_date - 10), ('inv-1002', 'globex', 80, current_date - 3), \
         ('inv-1003', 'initech', 450, current_date + 7), ('inv-1004', 'umbrella', 3100, current_date - 30) on conflict (id) do nothing"
    ))
    .execute(admin)
    .await?;
    Ok(())
}

/// `taskfactory dev`'s SQL connection `default`: the role [`DEV_ROLE`] reading the schema
/// [`DEMO_SCHEMA`] with the examples' data, checked like any other. `None` (with a warning)
/// when the database user may not create roles (a `DATABASE_URL` of your own): `sql` sources
/// are then refused when saved.
pub async fn dev_connection(
    admin: &PgPool,
    database_url: &str,
) -> Option<taskfactory_activities::sql_access::SqlConnection> {
    let role = ContextRole::new(DEV_ROLE, DEMO_SCHEMA);
    let made = async {
        ensure(admin, &role).await?;
        seed_demo_data(admin, DEMO_SCHEMA).await?;
        let options: PgConnectOptions = database_url.parse().context("parsing the database URL")?;
        let pool =
            sqlx::postgres::PgPoolOptions::new().max_connections(10).connect_lazy_with(role.connect_options(&options));
        let connection = taskfactory_activities::sql_access::SqlConnection::new(
            taskfactory_activities::sql_access::DEFAULT_CONNECTION,
            pool,
            false,
        );
        connection.verify().await?;
        anyhow::Ok(connection)
    };
    match made.await {
        Ok(connection) => Some(connection),
        Err(e) => {
            eprintln!("warning: sql context sources are off: {e:#}");
            None
        }
    }
}
