//! `sql` context sources run with least privilege: on named connections the operator
//! configured, as a role that reads its own schema and not taskfactory's tables or the
//! server's files; a privileged connection is refused at start-up unless allowed by name.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskfactory_activities::auth_store::Role;

use crate::support::{TestApp, eventually, servers, unique};

fn sql_definition(id: &str, query: &str, connection: Option<&str>) -> Value {
    let mut source = json!({"name": "rows", "kind": "sql", "query": query});
    if let Some(name) = connection {
        source["connection"] = json!(name);
    }
    json!({"id": id, "name": "SQL", "trigger": {"kind": "manual"}, "context": [source], "tasks": [{"id": "t", "kind": "noop"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_sources_cannot_read_the_store_or_the_servers_files() {
    let app = TestApp::spawn("sqlpriv").await;
    for (query, denied) in [
        ("select * from public.api_keys", "permission denied for table api_keys"),
        ("select * from public.activity_runs", "permission denied for table activity_runs"),
        ("select pg_read_file('/etc/hostname') as host", "permission denied for function pg_read_file"),
    ] {
        let id = format!("priv-{}", unique());
        assert_eq!(app.put_definition(&sql_definition(&id, query, None)).await.0, StatusCode::CREATED);
        let run = app.wait_for_run(&app.start_run(&id, &json!({})).await).await;
        assert_eq!(run["status"], "failed", "{query}: {run}");
        let error = run["error"].as_str().unwrap();
        assert!(error.contains("context[0].query") && error.contains(denied), "{query}: {error}");
        assert_eq!(run["context_snapshot"], Value::Null, "nothing was resolved");
        // A dry-run is refused the same way, with the source's path.
        let (status, body) =
            app.call(Method::POST, &format!("/api/v1/definitions/{id}/dry-run"), Some(&json!({}))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["details"][0]["path"], "context[0].query");
    }
    // The same role reads its own schema (the harness's `demo`).
    sqlx::query("create table demo.regions (code text)").execute(app.store.pool()).await.unwrap();
    sqlx::query("insert into demo.regions values ('eu'), ('us')").execute(app.store.pool()).await.unwrap();
    let id = format!("ok-{}", unique());
    app.put_definition(&sql_definition(&id, "select code from regions order by code", Some("reporting"))).await;
    let run = app.wait_for_run(&app.start_run(&id, &json!({})).await).await;
    assert_eq!(run["context_snapshot"]["rows"], json!([{"code": "eu"}, {"code": "us"}]), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_source_needs_a_configured_connection() {
    let app = TestApp::spawn("sqlconn").await;
    // An API process with no SQL connection at all.
    let (bare, _stop) = app
        .spawn_api_with(|mut config| {
            config.context.connections.clear();
            config
        })
        .await;
    let id = format!("conn-{}", unique());
    let put = |definition: Value| {
        let (http, url) = (app.http.clone(), format!("{bare}/api/v1/definitions/{id}"));
        async move {
            let response = http.put(url).json(&definition).send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = put(sql_definition(&id, "select 1 as one", None)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let detail = &body["error"]["details"][0];
    assert_eq!(detail["path"], "context[0].connection");
    assert!(detail["message"].as_str().unwrap().contains("no default SQL connection is configured"), "{detail}");
    let (status, body) = put(sql_definition(&id, "select 1 as one", Some("warehouse"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"][0]["path"], "context[0].connection");
    assert!(body["error"]["details"][0]["message"].as_str().unwrap().contains("\"warehouse\""), "{body}");
    let response = app
        .http
        .post(format!("{bare}/api/v1/validate"))
        .json(&sql_definition(&id, "select 1 as one", None))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // The suite's API has the default connection and `reporting`, not `warehouse`.
    assert_eq!(app.put_definition(&sql_definition(&id, "select 1 as one", None)).await.0, StatusCode::CREATED);
    let (status, body) = app.put_definition(&sql_definition(&id, "select 1 as one", Some("warehouse"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// `taskfactory api` with `args`; returns its exit status and stderr if it stops within
/// 60 s, `None` if it is still serving (`/healthz` answers).
async fn api_start(app: &TestApp, args: &[&str]) -> Option<(std::process::ExitStatus, String)> {
    let port = taskfactory::devstack::server_port().unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskfactory"))
        .args(["api", "--temporal-address", &servers().temporal_address, "--task-queue", app.task_queue()])
        .args(["--database-url", app.database_url(), "--api-addr", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting taskfactory api");
    // The probe needs the child mutably (`try_wait`) on every ask; it never holds it across an await.
    let child = std::cell::RefCell::new(child);
    let stopped = eventually(Duration::from_secs(60), "taskfactory api to serve or stop", || async {
        let stopped = child.borrow_mut().try_wait().unwrap();
        if stopped.is_some() {
            return Ok(stopped);
        }
        if reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.is_ok_and(|r| r.status().is_success()) {
            return Ok(None);
        }
        Err("taskfactory api neither served nor stopped")
    })
    .await;
    let status = stopped?;
    let mut stderr = String::new();
    let mut child = child.into_inner();
    tokio::io::AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).await.unwrap();
    Some((status, stderr))
}

/// `url` with another user.
fn as_user(url: &str, user: &str) -> String {
    let mut url = reqwest::Url::parse(url).unwrap();
    url.set_username(user).unwrap();
    url.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_sql_connections_are_refused_at_start_up_unless_allowed() {
    let app = TestApp::spawn_with("sqlstart", false).await;
    let superuser = app.database_url().to_owned();

    // The store's own user (a superuser here) as the context database.
    let (status, stderr) =
        api_start(&app, &["--context-database-url", &superuser]).await.expect("the API must refuse to start");
    assert!(!status.success());
    let line = stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
    assert!(
        line.contains("\"default\"") && line.contains("superuser") && line.contains("--allow-privileged-sql default"),
        "{stderr}"
    );

    // A role that is no superuser but can read taskfactory's tables (an owner would too).
    let reader = format!("reader_{}", unique());
    for statement in [format!("create role {reader} login"), format!("grant select on public.api_keys to {reader}")] {
        sqlx::query(&statement).execute(app.store.pool()).await.unwrap();
    }
    let reader_url = as_user(&superuser, &reader);
    let (status, stderr) = api_start(&app, &["--sql-connection", &format!("crm={reader_url}")])
        .await
        .expect("the API must refuse to start");
    assert!(!status.success());
    assert!(
        stderr.contains("\"crm\"") && stderr.contains("taskfactory's own tables") && stderr.contains("public.api_keys"),
        "{stderr}"
    );
    // A role that reads nothing itself but may become one that does (`set_config('role', ...)`).
    let member = format!("member_{}", unique());
    for statement in [format!("create role {member} login noinherit"), format!("grant {reader} to {member}")] {
        sqlx::query(&statement).execute(app.store.pool()).await.unwrap();
    }
    let (_, stderr) = api_start(&app, &["--sql-connection", &format!("crm={}", as_user(&superuser, &member))])
        .await
        .expect("the API must refuse to start");
    assert!(
        stderr.contains(&format!("through its membership in \"{reader}\"")) && stderr.contains("public.api_keys"),
        "{stderr}"
    );
    // The worker checks the same way.
    let worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskfactory"))
        .args(["worker", "--temporal-address", &servers().temporal_address, "--task-queue", app.task_queue()])
        .args(["--database-url", app.database_url(), "--sql-connection", &format!("crm={reader_url}")])
        .kill_on_drop(true)
        .output();
    let output =
        tokio::time::timeout(Duration::from_secs(60), worker).await.expect("the worker must refuse to start").unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("taskfactory's own tables"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Allowed by name, both start; an unknown name in the allow list is a typo, refused.
    assert!(
        api_start(&app, &["--context-database-url", &superuser, "--allow-privileged-sql", "default"]).await.is_none()
    );
    assert!(
        api_start(&app, &["--sql-connection", &format!("crm={reader_url}"), "--allow-privileged-sql", "crm"])
            .await
            .is_none()
    );
    let (_, stderr) = api_start(&app, &["--allow-privileged-sql", "crn"]).await.expect("refused");
    assert!(stderr.contains("--allow-privileged-sql crn: no SQL connection has that name"), "{stderr}");
    // The harness's least-privilege role passes the check.
    let context_url = as_user(&superuser, app.context_role());
    assert!(api_start(&app, &["--context-database-url", &context_url]).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensitive_context_is_shown_to_admins_only() {
    let app = TestApp::spawn("sensitive").await;
    let marker = format!("salary-{}", unique());
    sqlx::query("create table demo.payroll (name text, salary text)").execute(app.store.pool()).await.unwrap();
    sqlx::query("insert into demo.payroll values ('ada', $1), ('bob', $1)")
        .bind(&marker)
        .execute(app.store.pool())
        .await
        .unwrap();
    let id = format!("sens-{}", unique());
    let definition = |count_only: bool| {
        json!({"id": id, "name": "Sensitive", "trigger": {"kind": "manual"},
        "context": [
            {"name": "payroll", "kind": "sql", "query": "select name, salary from payroll order by name", "sensitive": true},
            {"name": "regions", "kind": "static", "value": ["eu"]}
        ],
        "tasks": [{"id": "report", "kind": "noop", "params": {"people": if count_only { "{{ context.payroll | length }}" } else { "{{ context.payroll | length }} people" }}}]})
    };
    assert_eq!(app.put_definition(&definition(true)).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;
    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["context_snapshot"]["payroll"][0]["salary"], json!(marker), "admins see the value");
    // A second version, so the behavioural diff has something to compare.
    app.put_definition(&definition(false)).await;

    let (_, viewer) = app.store.create_key("viewer", Role::Viewer, None).await.unwrap();
    let (_, operator) = app.store.create_key("operator", Role::Operator, None).await.unwrap();
    let get = |key: &str, path: String| {
        let (client, url) = (crate::support::authed_client(key), format!("{}{path}", app.api_url));
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let encoded = workflow_id.replace(':', "%3A");
    for key in [&viewer, &operator] {
        let detail: Value = serde_json::from_str(&get(key, format!("/api/v1/runs/{encoded}")).await).unwrap();
        assert_eq!(detail["context_snapshot"], json!({"payroll": "⟦sensitive⟧", "regions": ["eu"]}), "{detail}");
        // Nothing else a viewer reads carries the rows.
        for path in [
            format!("/api/v1/runs/{encoded}/events"),
            format!("/api/v1/runs/{encoded}/graph"),
            format!("/api/v1/runs?definition_id={id}"),
            format!("/api/v1/definitions/{id}/diff/behaviour?from=1&to=2"),
        ] {
            let text = get(key, path.clone()).await;
            assert!(!text.contains(&marker) && !text.contains("salary"), "{path}: {text}");
        }
    }
    // A dry-run resolves for real: the operator sees the placeholder, an admin the rows.
    let dry = |key: &str| {
        let (client, url) =
            (crate::support::authed_client(key), format!("{}/api/v1/definitions/{id}/dry-run", app.api_url));
        async move { client.post(url).json(&json!({})).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_eq!(dry(&operator).await["context"]["payroll"], "⟦sensitive⟧");
    assert_eq!(dry(&app.api_key).await["context"]["payroll"][1]["name"], "bob");

    // Only sql and http sources can be sensitive: other values are readable elsewhere anyway.
    let (status, body) = app
        .put_definition(&json!({"id": id, "name": "S", "trigger": {"kind": "manual"},
            "context": [{"name": "s", "kind": "static", "value": 1, "sensitive": true}], "tasks": [{"id": "t", "kind": "noop"}]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"][0]["path"], "context[0].sensitive");
}
