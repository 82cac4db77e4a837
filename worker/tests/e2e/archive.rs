//! `taskfactory runs export` / `runs import`: finished runs leave the run log as JSON Lines
//! with every row they own and come back equal, column for column, into another database;
//! importing twice changes nothing; a bad line stops the import at that line without leaving
//! half a run. The tests call the binary, as an operator would.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use taskfactory::devstack;

use crate::support::{TestApp, held_definition, servers, unique};

/// Every table an export carries, the column naming its run, and the order rows compare in.
const TABLES: &[(&str, &str, &str)] = &[
    ("activity_runs", "workflow_id", "workflow_id"),
    ("task_runs", "run_workflow_id", "id"),
    ("run_events", "run_workflow_id", "run_workflow_id, seq"),
    ("human_tasks", "run_workflow_id", "id"),
    ("task_artifacts", "run_workflow_id", "id"),
    ("run_retries", "run_workflow_id", "run_workflow_id, n"),
    ("notifications", "run_workflow_id", "id"),
];

/// Runs `taskfactory ARGS`; answers whether it succeeded, its stdout and its stderr.
async fn taskfactory(args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskfactory"))
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .await
        .expect("running taskfactory");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

/// `taskfactory runs export EXTRA... -o FILE` of the test's database; answers its stderr.
async fn export(app: &TestApp, file: &Path, extra: &[&str]) -> String {
    let mut args = vec!["runs", "export", "--database-url", app.database_url(), "-o", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = taskfactory(&args).await;
    assert!(ok, "runs export {extra:?} failed: {stdout} {stderr}");
    stderr
}

/// `taskfactory runs import -i FILE` into `database_url`; answers success and stderr.
async fn import(database_url: &str, file: &Path) -> (bool, String) {
    let (ok, _, stderr) =
        taskfactory(&["runs", "import", "--database-url", database_url, "-i", file.to_str().unwrap()]).await;
    (ok, stderr)
}

/// A new, empty database on the suite's Postgres (`runs import` migrates it); its URL and a
/// pool on it.
async fn fresh_database(name: &str) -> (String, PgPool) {
    let port = servers().postgres_port;
    let db = format!("archive_{name}_{}", unique());
    devstack::ensure_database(&format!("postgres://postgres@127.0.0.1:{port}/postgres"), &db).await.unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{port}/{db}");
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&url).await.unwrap();
    (url, pool)
}

/// A file name of the test's own.
fn scratch_file(name: &str) -> PathBuf {
    let dir = crate::support::scratch_root().join("archives");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}-{}.jsonl", unique()))
}

/// Every row of `runs` in each table, as `to_jsonb`, in key order.
async fn rows(pool: &PgPool, runs: &[String]) -> Vec<(&'static str, Vec<Value>)> {
    let mut all = Vec::new();
    for (table, column, order) in TABLES {
        let rows: Vec<Value> =
            sqlx::query_scalar(&format!("select to_jsonb(t) from {table} t where {column} = any($1) order by {order}"))
                .bind(runs)
                .fetch_all(pool)
                .await
                .unwrap();
        all.push((*table, rows));
    }
    all
}

/// The file's lines as JSON.
fn lines(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The workflow ids of the file's runs, in file order.
fn exported_runs(file: &Path) -> Vec<String> {
    lines(file)
        .iter()
        .filter(|l| l["kind"] == "run")
        .map(|l| l["row"]["workflow_id"].as_str().unwrap().to_owned())
        .collect()
}

/// A closed local port: requests to it are refused at once.
async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// A manual definition whose run completes three fanned-out tasks and one after them.
fn completing(id: &str) -> Value {
    json!({"id": id, "name": "Archived", "trigger": {"kind": "manual"},
        "context": [{"name": "items", "kind": "static", "value": ["x", "y", "z"]}],
        "tasks": [{"id": "each", "kind": "noop", "for_each": "items", "key": "{{ item }}"},
                  {"id": "after", "kind": "noop", "depends_on": ["each"]}]})
}

/// Starts a run of `id` and waits for it to end `status`.
async fn finished_run(app: &TestApp, id: &str, status: &str) -> String {
    let run = app.start_run(id, &json!({"key": unique()})).await;
    let answer = app.wait_for_run(&run).await;
    assert_eq!(answer["status"], status, "{answer}");
    run
}

/// Gives `run` a human task, two artifacts (one inline, with bytes no text could hold), a
/// notification and a retry: rows its noop tasks do not write.
async fn add_child_rows(app: &TestApp, run: &str, definition: &str) {
    let statements = [
        "insert into human_tasks (id, task_id, run_workflow_id, title, form, status, response) \
         values ('ht-' || md5($1), $1 || '/hold/', $1, 'Held', '{\"n\": 1.5}'::jsonb, 'completed', '{\"ok\": true}')",
        "insert into task_artifacts (id, run_workflow_id, task_id, name, url) \
         values ('art-url-' || md5($1), $1, $1 || '/each/x', 'log', 'https://example.com/log')",
        "insert into task_artifacts (id, run_workflow_id, task_id, name, media_type, content, size) \
         values ('art-bin-' || md5($1), $1, $1 || '/each/y', 'blob', 'application/octet-stream', \
                 decode('00ff0a0d5c22', 'hex'), 6)",
        "insert into notifications (definition_id, run_workflow_id, kind, entry, dedupe_key, payload) \
         values ($2, $1, 'run_failed', 0, 'n:' || $1, '{\"text\": \"line\\nbreak\"}'::jsonb)",
        "insert into run_retries (run_workflow_id, n, workflow_id, request) \
         values ($1, 1, $1 || ':retry:1', '{}'::jsonb)",
    ];
    for statement in statements {
        sqlx::query(statement).bind(run).bind(definition).execute(app.store.pool()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_into_another_database_equals_the_original() {
    let app = TestApp::spawn("archive-roundtrip").await;
    let ok = format!("archived-{}", unique());
    let failing = format!("archived-failing-{}", unique());
    assert_eq!(app.put_definition(&completing(&ok)).await.0, StatusCode::CREATED);
    let boom = json!({"id": failing, "name": "Archived, failing", "trigger": {"kind": "manual"},
        "failure_policy": "continue",
        "tasks": [{"id": "fine", "kind": "noop"},
                  {"id": "boom", "kind": "http", "url": refused_url().await, "retry": {"max_attempts": 1}},
                  {"id": "after", "kind": "noop", "depends_on": ["boom"]}]});
    assert_eq!(app.put_definition(&boom).await.0, StatusCode::CREATED);
    let completed = finished_run(&app, &ok, "completed").await;
    let failed = finished_run(&app, &failing, "failed").await;
    add_child_rows(&app, &completed, &ok).await;
    // Past a page of an export (5,000 events) and a batch of an import (1,000 rows).
    for statement in [
        "insert into run_events (run_workflow_id, run_fired_at, seq, event_key, type, level, message, payload) \
         select $1, r.fired_at, r.last_seq + s, 'log:' || s, 'NODE_LOG', 'info', 'line ' || s, jsonb_build_object('n', s) \
         from activity_runs r, generate_series(1, 12000) s where r.workflow_id = $1",
        "update activity_runs set last_seq = last_seq + 12000 where workflow_id = $1",
        "insert into task_runs (id, run_workflow_id, template_id, item_key, kind, params, status, position) \
         select $1 || '/bulk/' || s, $1, 'bulk', s::text, 'noop', '{}'::jsonb, 'completed', 100 + s \
         from generate_series(1, 1500) s",
    ] {
        sqlx::query(statement).bind(&failed).execute(app.store.pool()).await.unwrap();
    }
    let runs = vec![completed.clone(), failed.clone()];
    let original = rows(app.store.pool(), &runs).await;
    for (table, rows) in &original {
        assert!(!rows.is_empty(), "the runs have {table} rows");
    }
    let events = original.iter().find(|(t, _)| *t == "run_events").unwrap().1.len();
    assert!(events > 12_000);
    let counted = format!("{},{:03}", events / 1000, events % 1000);

    let file = scratch_file("roundtrip");
    let stderr = export(&app, &file, &[]).await;
    assert!(stderr.contains(&format!("exported 2/2 runs, {counted} events")), "{stderr}");
    let exported = lines(&file);
    assert_eq!(exported[0]["kind"], "header");
    assert_eq!((&exported[0]["format"], &exported[0]["version"]), (&json!("taskfactory-runs"), &json!(1)));
    // Per run: its row, then its tasks, events by seq, human tasks, artifacts, retries,
    // notifications.
    let kinds = ["run", "task", "event", "human_task", "artifact", "retry", "notification"];
    let ranks: Vec<usize> = exported[1..].iter().map(|l| kinds.iter().position(|k| l["kind"] == *k).unwrap()).collect();
    assert_eq!(ranks[0], 0, "a run line first");
    assert!(ranks.split(|r| *r == 0).all(|run| run.is_sorted()), "rows by table within each run: {ranks:?}");
    let seqs: Vec<i64> = exported
        .iter()
        .filter(|l| l["kind"] == "event" && l["row"]["run_workflow_id"] == completed.as_str())
        .map(|l| l["row"]["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1) && seqs.first() == Some(&1), "events by seq: {seqs:?}");

    let (target_url, target) = fresh_database("roundtrip").await;
    let (ok_import, stderr) = import(&target_url, &file).await;
    assert!(ok_import, "{stderr}");
    assert!(stderr.contains(&format!("imported 2 runs (0 already present, skipped), {counted} events")), "{stderr}");
    let imported = rows(&target, &runs).await;
    for ((table, a), (_, b)) in original.iter().zip(&imported) {
        assert_eq!(a, b, "{table} rows differ after the import");
    }
    // The imported notification ids are behind the target's id sequence.
    let (next, max): (i64, i64) = sqlx::query_as(
        "select nextval(pg_get_serial_sequence('notifications', 'id')), (select max(id) from notifications)",
    )
    .fetch_one(&target)
    .await
    .unwrap();
    assert!(next > max, "the next notification id {next} is past the imported {max}");

    // Again, from stdin (`-i -`).
    let mut again = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskfactory"))
        .args(["runs", "import", "--database-url", &target_url, "-i", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running taskfactory runs import");
    let mut stdin = again.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, &std::fs::read(&file).unwrap()).await.unwrap();
    drop(stdin);
    let output = again.wait_with_output().await.unwrap();
    let (ok_again, stderr) = (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned());
    assert!(ok_again, "{stderr}");
    assert!(stderr.contains("imported 0 runs (2 already present, skipped), 0 events"), "{stderr}");
    assert_eq!(rows(&target, &runs).await, imported, "importing twice duplicates nothing");
    let total: i64 = sqlx::query_scalar("select count(*) from run_events").fetch_one(&target).await.unwrap();
    assert_eq!(usize::try_from(total).unwrap(), events);

    // A file written before run_events had its partition key imports the same: each event
    // goes to the partition of its run's start.
    let older = scratch_file("before-partitioning");
    let text: Vec<String> = lines(&file)
        .into_iter()
        .map(|mut line| {
            if line["kind"] == "event" {
                line["row"].as_object_mut().unwrap().remove("run_fired_at").expect("exports carry run_fired_at");
            }
            line.to_string()
        })
        .collect();
    std::fs::write(&older, text.join("\n") + "\n").unwrap();
    let (older_url, older_target) = fresh_database("before-partitioning").await;
    let (ok_older, stderr) = import(&older_url, &older).await;
    assert!(ok_older, "{stderr}");
    assert_eq!(rows(&older_target, &runs).await, original, "the same rows, partition key included");
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&older);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_filters_by_definition_and_before() {
    let app = TestApp::spawn("archive-filters").await;
    let a = format!("arch-a-{}", unique());
    let b = format!("arch-b-{}", unique());
    let held = format!("arch-held-{}", unique());
    let assignee = format!("ops-{}", unique());
    for definition in [completing(&a), completing(&b), held_definition(&held, &assignee)] {
        assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    }
    let a_old = finished_run(&app, &a, "completed").await;
    let a_new = finished_run(&app, &a, "completed").await;
    let b_run = finished_run(&app, &b, "completed").await;
    let open = app.start_run(&held, &json!({})).await;
    app.waiting_human_task(&assignee).await;
    sqlx::query("update activity_runs set finished_at = finished_at - interval '10 days' where workflow_id = $1")
        .bind(&a_old)
        .execute(app.store.pool())
        .await
        .unwrap();

    let file = scratch_file("filters");
    export(&app, &file, &[]).await;
    let all = exported_runs(&file);
    assert_eq!(all.len(), 3, "finished runs only, never the open one: {all:?}");
    assert!(!all.contains(&open));
    assert_eq!(all[0], a_old, "oldest finish first");

    let stderr = export(&app, &file, &["--definition", &a]).await;
    assert!(stderr.contains("exported 2/2 runs"), "{stderr}");
    assert_eq!(exported_runs(&file), [a_old.clone(), a_new.clone()]);
    assert_eq!(lines(&file)[0]["definition"], a.as_str());

    export(&app, &file, &["--definition", &a, "--before", "5d"]).await;
    assert_eq!(exported_runs(&file), std::slice::from_ref(&a_old));
    let before = (chrono::Utc::now() - chrono::Duration::days(5)).to_rfc3339();
    export(&app, &file, &["--before", &before]).await;
    assert_eq!(exported_runs(&file), std::slice::from_ref(&a_old));
    assert!(lines(&file)[0]["before"].is_string(), "the header says the cut-off");
    export(&app, &file, &["--definition", &b, "--before", "1h"]).await;
    assert_eq!(exported_runs(&file), Vec::<String>::new());
    export(&app, &file, &["--definition", &b]).await;
    assert_eq!(exported_runs(&file), std::slice::from_ref(&b_run));
    // `-o -`: the same lines on stdout, progress still on stderr.
    let (ok, stdout, stderr) =
        taskfactory(&["runs", "export", "--database-url", app.database_url(), "--definition", &b, "-o", "-"]).await;
    assert!(ok && stderr.contains("exported 1/1 runs"), "{stderr}");
    let file_lines = std::fs::read_to_string(&file).unwrap();
    assert_eq!(stdout.lines().skip(1).collect::<Vec<_>>(), file_lines.lines().skip(1).collect::<Vec<_>>());
    assert_eq!(serde_json::from_str::<Value>(stdout.lines().next().unwrap()).unwrap()["kind"], "header");

    let (ok, _, stderr) = taskfactory(&[
        "runs",
        "export",
        "--database-url",
        app.database_url(),
        "--before",
        "last tuesday",
        "-o",
        file.to_str().unwrap(),
    ])
    .await;
    assert!(!ok, "a bad --before fails");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: --before \"last tuesday\""), "{stderr}");
    let _ = std::fs::remove_file(&file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_import_line_names_its_line_and_leaves_no_partial_run() {
    let app = TestApp::spawn("archive-bad").await;
    let id = format!("arch-bad-{}", unique());
    assert_eq!(app.put_definition(&completing(&id)).await.0, StatusCode::CREATED);
    let first = finished_run(&app, &id, "completed").await;
    let second = finished_run(&app, &id, "completed").await;
    let good = scratch_file("good");
    export(&app, &good, &[]).await;
    assert_eq!(exported_runs(&good), [first.clone(), second.clone()]);
    let text = std::fs::read_to_string(&good).unwrap();
    let good_lines: Vec<&str> = text.lines().collect();

    // The second run's third event line becomes a line of an unknown kind: its tasks are in
    // the transaction by then, and must go with it.
    let second_at = good_lines
        .iter()
        .position(|l| l.starts_with("{\"kind\":\"run\"") && l.contains(&format!("\"workflow_id\": \"{second}\"")))
        .unwrap();
    let events_of_second: Vec<usize> = good_lines
        .iter()
        .enumerate()
        .skip(second_at)
        .filter(|(_, l)| l.starts_with("{\"kind\":\"event\""))
        .map(|(i, _)| i)
        .collect();
    let bad_at = events_of_second[2];
    // An event the database refuses (seq must be positive) fails the batch it is in, named
    // by the batch's first line.
    let mut refused: Value = serde_json::from_str(good_lines[bad_at]).unwrap();
    refused["row"]["seq"] = json!(0);
    let refused = refused.to_string();
    let cases = [
        ("{\"kind\":\"bogus\",\"row\":{}}", bad_at, "unknown kind \"bogus\"".to_owned()),
        ("{\"kind\":\"event\",\"row\":{\"run_workfl", bad_at, "not a JSON line".to_owned()),
        (
            refused.as_str(),
            events_of_second[0],
            format!("inserting {} event row(s) from this line on", events_of_second.len()),
        ),
    ];
    for (bad, at, expected) in cases {
        let mut broken: Vec<&str> = good_lines.clone();
        broken[bad_at] = bad;
        let file = scratch_file("broken");
        std::fs::write(&file, broken.join("\n") + "\n").unwrap();
        let (target_url, target) = fresh_database("bad").await;
        let (ok, stderr) = import(&target_url, &file).await;
        assert!(!ok, "{stderr}");
        let line = at + 1;
        assert!(stderr.contains(&format!("error: line {line}: {expected}")), "{stderr}");
        assert!(stderr.contains(&format!("nothing of the run {second} (rolled back)")), "{stderr}");
        assert!(stderr.contains("1 run(s) imported before it"), "{stderr}");
        let kept = rows(&target, std::slice::from_ref(&first)).await;
        assert!(kept.iter().take(3).all(|(_, rows)| !rows.is_empty()), "the first run stays imported: {kept:?}");
        let partial = rows(&target, std::slice::from_ref(&second)).await;
        assert!(partial.iter().all(|(_, rows)| rows.is_empty()), "nothing of the second run: {partial:?}");

        // The good file afterwards: the first run is skipped, the second imported whole.
        let (ok, stderr) = import(&target_url, &good).await;
        assert!(ok, "{stderr}");
        assert!(stderr.contains("imported 1 runs (1 already present, skipped)"), "{stderr}");
        assert_eq!(
            rows(&target, &[first.clone(), second.clone()]).await,
            rows(app.store.pool(), &[first.clone(), second.clone()]).await
        );
        let _ = std::fs::remove_file(&file);
    }

    // A header of another format or version, at line 1.
    for header in [
        "{\"kind\":\"header\",\"format\":\"taskfactory-runs\",\"version\":2}",
        "{\"kind\":\"header\",\"format\":\"something-else\",\"version\":1}",
    ] {
        let file = scratch_file("header");
        std::fs::write(&file, format!("{header}\n{}\n", good_lines[1..].join("\n"))).unwrap();
        let (target_url, target) = fresh_database("header").await;
        let (ok, stderr) = import(&target_url, &file).await;
        assert!(!ok);
        assert!(stderr.contains("error: line 1: not a taskfactory-runs version 1 export"), "{stderr}");
        let count: i64 = sqlx::query_scalar("select count(*) from activity_runs").fetch_one(&target).await.unwrap();
        assert_eq!(count, 0);
        let _ = std::fs::remove_file(&file);
    }
    let _ = std::fs::remove_file(&good);
}
