//! Run-log retention: finished runs past their definition's `retention` (or the API's
//! default) are deleted with every row keyed by them; open runs never are; a stream that
//! follows a pruned run ends. The tests backdate rows with SQL and call the store's pruning
//! directly (the test API runs no pruner of its own).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskfactory_activities::store::RunPrune;

use crate::support::{SseClient, TestApp, eventually, held_definition, unique};

/// Every table with rows keyed by a run, and its run column.
const RUN_TABLES: &[(&str, &str)] = &[
    ("activity_runs", "workflow_id"),
    ("task_runs", "run_workflow_id"),
    ("run_events", "run_workflow_id"),
    ("human_tasks", "run_workflow_id"),
    ("task_artifacts", "run_workflow_id"),
    ("notifications", "run_workflow_id"),
    ("run_retries", "run_workflow_id"),
    ("run_admissions", "run_workflow_id"),
];

pub(crate) fn definition(id: &str, retention: Option<Value>) -> Value {
    let mut d = json!({"id": id, "name": "Kept a while", "trigger": {"kind": "manual"},
        "tasks": [{"id": "a", "kind": "noop"}, {"id": "b", "kind": "noop", "depends_on": ["a"]}]});
    if let Some(r) = retention {
        d["retention"] = r;
    }
    d
}

/// Starts a run of `id` and waits for it to finish.
pub(crate) async fn finished_run(app: &TestApp, id: &str) -> String {
    let run = app.start_run(id, &json!({"key": unique()})).await;
    assert_eq!(app.wait_for_run(&run).await["status"], "completed");
    run
}

/// Moves a run's start and end `days` into the past; its events move with it, to the
/// partition of its new start (a run's start never changes outside tests).
pub(crate) async fn backdate(app: &TestApp, run: &str, days: i32) {
    let mut tx = app.store.pool().begin().await.unwrap();
    let statements = [
        "select taskfactory_event_partition((((select fired_at from activity_runs where workflow_id = $1) \
           - make_interval(days => $2)) at time zone 'UTC')::date)",
        "update activity_runs set fired_at = fired_at - make_interval(days => $2), \
         finished_at = finished_at - make_interval(days => $2) where workflow_id = $1",
        "update run_events set run_fired_at = (select fired_at from activity_runs where workflow_id = $1) \
         where run_workflow_id = $1",
    ];
    for statement in statements {
        sqlx::query(statement).bind(run).bind(days).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// How many rows of each run table `run` has.
pub(crate) async fn rows(app: &TestApp, run: &str) -> Vec<(&'static str, i64)> {
    let mut counts = Vec::new();
    for (table, column) in RUN_TABLES {
        let n: i64 = sqlx::query_scalar(&format!("select count(*) from {table} where {column} = $1"))
            .bind(run)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
        counts.push((*table, n));
    }
    counts
}

/// Gives `run` a row in each run table its plain noop run does not write.
async fn add_child_rows(app: &TestApp, run: &str, definition: &str) {
    let task = format!("{run}/a/");
    let statements = [
        "insert into human_tasks (id, task_id, run_workflow_id, title, form, status) \
         values ('ht-' || md5($1), $1 || '/hold/', $1, 'Held', '{}'::jsonb, 'completed')",
        "insert into task_artifacts (id, run_workflow_id, task_id, name, url) values ('art-' || md5($1), $1, $3, 'log', 'https://example.com/log')",
        "insert into notifications (definition_id, run_workflow_id, kind, entry, dedupe_key, payload) \
         values ($2, $1, 'run_failed', 0, 'n:' || $1, '{}'::jsonb)",
        "insert into run_retries (run_workflow_id, n, workflow_id, request) values ($1, 1, $1 || ':retry:1', '{}'::jsonb)",
        "insert into run_admissions (run_workflow_id, definition_id, concurrency_key, slot_limit, state) \
         values ($1, $2, 'k', 1, 'admitted')",
    ];
    for statement in statements {
        sqlx::query(statement).bind(run).bind(definition).bind(&task).execute(app.store.pool()).await.unwrap();
    }
}

pub(crate) async fn prune(app: &TestApp, default_keep: Option<Duration>) -> u64 {
    app.store.prune_runs(&RunPrune { default_keep, batch: 1 }).await.unwrap().runs
}

pub(crate) async fn exists(app: &TestApp, run: &str) -> bool {
    let (status, body) = app.call(Method::GET, &format!("/api/v1/runs/{run}"), None).await;
    assert!(matches!(status, StatusCode::OK | StatusCode::NOT_FOUND), "{status}: {body}");
    status == StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_past_their_days_are_pruned_with_every_row_and_recent_ones_kept() {
    let app = TestApp::spawn("retention-days").await;
    let id = format!("keep30-{}", unique());
    assert_eq!(app.put_definition(&definition(&id, Some(json!({"days": 30})))).await.0, StatusCode::CREATED);
    let old = finished_run(&app, &id).await;
    let recent = finished_run(&app, &id).await;
    add_child_rows(&app, &old, &id).await;
    backdate(&app, &old, 40).await;
    backdate(&app, &recent, 20).await;
    assert!(rows(&app, &old).await.iter().all(|(_, n)| *n > 0), "{:?}", rows(&app, &old).await);

    // One run per transaction: the batches go on until the backlog is gone.
    assert_eq!(prune(&app, None).await, 1);
    assert!(rows(&app, &old).await.iter().all(|(_, n)| *n == 0), "{:?}", rows(&app, &old).await);
    assert!(!exists(&app, &old).await, "GET answers 404 for a pruned run");
    assert!(exists(&app, &recent).await);
    let recent_rows = rows(&app, &recent).await;
    assert!(
        recent_rows
            .iter()
            .filter(|(t, _)| ["activity_runs", "task_runs", "run_events"].contains(t))
            .all(|(_, n)| *n > 0)
    );
    // Decisions keep their own horizon.
    let decisions: i64 = sqlx::query_scalar("select count(*) from trigger_decisions where workflow_id = $1")
        .bind(&old)
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(decisions, 1, "the pruned run's decision is kept");
    assert_eq!(prune(&app, None).await, 0, "nothing more to prune");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_runs_keeps_the_newest_finished_runs_of_the_definition() {
    let app = TestApp::spawn("retention-count").await;
    let id = format!("keep2-{}", unique());
    let other = format!("keepall-{}", unique());
    assert_eq!(app.put_definition(&definition(&id, Some(json!({"last_runs": 2})))).await.0, StatusCode::CREATED);
    assert_eq!(app.put_definition(&definition(&other, None)).await.0, StatusCode::CREATED);
    let mut runs = Vec::new();
    for _ in 0..5 {
        runs.push(finished_run(&app, &id).await);
    }
    let untouched = finished_run(&app, &other).await;
    // Finish times in the order the runs were started, whatever the clock did.
    for (age, run) in runs.iter().rev().enumerate() {
        backdate(&app, run, i32::try_from(age).unwrap() + 1).await;
    }

    assert_eq!(prune(&app, None).await, 3);
    let mut kept = Vec::new();
    for run in &runs {
        kept.push(exists(&app, run).await);
    }
    assert_eq!(kept, [false, false, false, true, true], "the two newest are kept");
    assert!(exists(&app, &untouched).await, "no retention and no default: kept forever");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_default_applies_where_the_definition_sets_no_retention() {
    let app = TestApp::spawn("retention-default").await;
    let plain = format!("plain-{}", unique());
    let longer = format!("longer-{}", unique());
    let counted = format!("counted-{}", unique());
    app.put_definition(&definition(&plain, None)).await;
    app.put_definition(&definition(&longer, Some(json!({"days": 3650})))).await;
    app.put_definition(&definition(&counted, Some(json!({"last_runs": 5})))).await;
    let runs =
        [finished_run(&app, &plain).await, finished_run(&app, &longer).await, finished_run(&app, &counted).await];
    for run in &runs {
        backdate(&app, run, 40).await;
    }

    assert_eq!(prune(&app, None).await, 0, "no default: only definitions' own policies prune");
    assert_eq!(prune(&app, Some(Duration::from_secs(30 * 86_400))).await, 1);
    let mut kept = Vec::new();
    for run in &runs {
        kept.push(exists(&app, run).await);
    }
    assert_eq!(kept, [false, true, true], "a definition's retention wins over the default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_run_is_never_pruned_however_old() {
    let app = TestApp::spawn("retention-open").await;
    let id = format!("held-{}", unique());
    let assignee = format!("ops-{}", unique());
    let mut held = held_definition(&id, &assignee);
    held["retention"] = json!({"last_runs": 1});
    assert_eq!(app.put_definition(&held).await.0, StatusCode::CREATED);
    let open = app.start_run(&id, &json!({})).await;
    app.waiting_human_task(&assignee).await;
    // Old, and even carrying a finish time: still `running`, so kept (and so is its partition).
    backdate(&app, &open, 400).await;
    sqlx::query("update activity_runs set finished_at = fired_at + interval '1 day' where workflow_id = $1")
        .bind(&open)
        .execute(app.store.pool())
        .await
        .unwrap();
    held["retention"] = json!({"days": 1});
    app.put_definition(&held).await;
    assert_eq!(prune(&app, Some(Duration::from_secs(60))).await, 0);
    let (status, run) = app.call(Method::GET, &format!("/api/v1/runs/{open}"), None).await;
    assert_eq!((status, run["status"].as_str()), (StatusCode::OK, Some("running")), "{run}");
    assert!(rows(&app, &open).await.iter().filter(|(t, _)| *t == "human_tasks").all(|(_, n)| *n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_following_a_run_that_is_pruned_ends() {
    let app = TestApp::spawn("retention-stream").await;
    let id = format!("streamed-{}", unique());
    app.put_definition(&definition(&id, Some(json!({"days": 1})))).await;
    let run = finished_run(&app, &id).await;
    let last = app.all_events(&run, 100).await.last().unwrap()["seq"].as_i64().unwrap();
    // Resuming after the run's last event: the stream waits for more, as for a reset.
    let url = format!("{}/api/v1/runs/{run}/stream", app.api_url);
    let mut stream = SseClient::open(&url, &app.api_key, Some(&last.to_string())).await;

    backdate(&app, &run, 2).await;
    assert_eq!(prune(&app, None).await, 1);
    let pruned = stream.next().await.expect("a last event");
    assert_eq!(pruned.event.as_deref(), Some("run_pruned"), "{pruned:?}");
    assert_eq!(serde_json::from_str::<Value>(&pruned.data).unwrap(), json!({"workflow_id": run}));
    assert_eq!(stream.next().await, None, "the stream ended");
    assert!(!exists(&app, &run).await);
    let again = app.http.get(&url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND, "a new stream of the pruned run: 404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_processes_prune_on_their_timer_under_a_lease() {
    let app = TestApp::spawn("retention-pruner").await;
    let id = format!("timed-{}", unique());
    app.put_definition(&definition(&id, None)).await;
    let old = finished_run(&app, &id).await;
    let recent = finished_run(&app, &id).await;
    backdate(&app, &old, 2).await;
    // Two API processes with a pruner each and a default of one day.
    let pruning = |mut config: taskfactory::startup::ApiConfig| {
        config.background.prune_every = Some(Duration::from_millis(500));
        config.background.run_retention = Some(Duration::from_secs(86_400));
        config
    };
    let (api_a, _a) = app.spawn_api_with(pruning).await;
    let (_api_b, _b) = app.spawn_api_with(pruning).await;
    eventually(Duration::from_secs(30), "the old run to be pruned", || async { !exists(&app, &old).await }).await;
    assert!(exists(&app, &recent).await);
    let held: Option<String> =
        sqlx::query_scalar("select holder from leases where name = 'run-pruner' and until > now()")
            .fetch_optional(app.store.pool())
            .await
            .unwrap();
    assert!(held.is_some(), "the pruning process holds the lease");
    // The counter is process-wide (both API processes, and the tests, share it here).
    let metrics = reqwest::get(format!("{api_a}/metrics")).await.unwrap().text().await.unwrap();
    let line = format!("taskfactory_runs_pruned_total{{definition_id=\"{id}\"}} 1");
    assert!(metrics.lines().any(|l| l == line), "{line} not in the metrics");
}
