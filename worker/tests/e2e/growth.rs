//! How the run log grows: receipts past `--receipt-retention` are pruned (never one whose
//! run has not started), what a dedupe key does once its receipt is gone, and the growth
//! gauges of `GET /metrics` (rows and bytes per table, the oldest run kept). Receipts are
//! backdated with SQL and pruned by calling the store (the test API runs no pruner).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskfactory_activities::store::RunPrune;

use crate::support::{TestApp, eventually, unique};

const THIRTY_DAYS: Duration = Duration::from_secs(30 * 86_400);

fn event_definition(id: &str, event_type: &str) -> Value {
    json!({"id": id, "name": "Deduplicated for a while",
        "trigger": {"kind": "event", "event_type": event_type},
        "tasks": [{"id": "a", "kind": "noop"}]})
}

/// Sends an event of `event_type` with dedupe key `key`; answers the outcome and workflow id.
async fn send(app: &TestApp, event_type: &str, key: &str) -> (String, String) {
    let event = json!({"type": event_type, "key": key, "payload": {}});
    let (status, body) = app.call(Method::POST, "/api/v1/events", Some(&event)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let outcome = &body["results"][0]["outcomes"][0];
    (outcome["outcome"].as_str().unwrap().to_owned(), outcome["workflow_id"].as_str().unwrap_or_default().to_owned())
}

/// The receipt of `key`: its state and Temporal run id (`None`: no receipt).
async fn receipt(app: &TestApp, definition: &str, key: &str) -> Option<(String, Option<String>)> {
    sqlx::query_as("select state, run_id from event_receipts where definition_id = $1 and dedupe_key = $2")
        .bind(definition)
        .bind(key)
        .fetch_optional(app.store.pool())
        .await
        .unwrap()
}

/// Waits for the receipt of `key` to be `started` (its run is in Temporal).
async fn started(app: &TestApp, definition: &str, key: &str) -> Option<String> {
    eventually(Duration::from_secs(30), format!("the receipt of {key} to be started"), || async {
        match receipt(app, definition, key).await {
            Some((state, run_id)) if state == "started" => Ok(run_id),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

async fn age_receipt(app: &TestApp, definition: &str, key: &str, days: i32) {
    sqlx::query(
        "update event_receipts set received_at = received_at - make_interval(days => $3) \
         where definition_id = $1 and dedupe_key = $2",
    )
    .bind(definition)
    .bind(key)
    .bind(days)
    .execute(app.store.pool())
    .await
    .unwrap();
}

async fn metrics_text(api_url: &str) -> String {
    reqwest::get(format!("{api_url}/metrics")).await.unwrap().text().await.unwrap()
}

/// The value of the sample `series` (name and labels, as written) in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_past_the_horizon_are_pruned_and_those_of_unstarted_runs_kept() {
    let app = TestApp::spawn("growth-receipts").await;
    let id = format!("receipts-{}", unique());
    let event_type = format!("thing.happened.{}", unique());
    assert_eq!(app.put_definition(&event_definition(&id, &event_type)).await.0, StatusCode::CREATED);
    for key in ["old-1", "old-2", "fresh"] {
        assert_eq!(send(&app, &event_type, key).await.0, "accepted");
    }
    for key in ["old-1", "old-2", "fresh"] {
        started(&app, &id, key).await;
        assert_eq!(app.wait_for_run(&format!("tf:{id}:event:{key}")).await["status"], "completed");
    }
    age_receipt(&app, &id, "old-1", 40).await;
    age_receipt(&app, &id, "old-2", 40).await;

    // The event starter stops: the receipts written below stay as written.
    sqlx::query(
        "update leases set holder = 'e2e-test', until = now() + interval '1 hour' where name = 'event-starter'",
    )
    .execute(app.store.pool())
    .await
    .unwrap();
    let rows = [
        // Accepted 40 days ago, its run never started: kept.
        "insert into event_receipts (definition_id, dedupe_key, workflow_id, event, state, version, received_at) \
         values ($1, 'pending', 'tf:' || $1 || ':event:pending', '{}'::jsonb, 'pending', 1, now() - interval '40 days')",
        // A debounce group still open (its run not started) with an old event: both kept.
        "insert into event_groups (definition_id, version, mode, group_key, workflow_id, dedupe_key, state, first_at, last_at, fire_at) \
         values ($1, 1, 'debounce', 'open', 'tf:' || $1 || ':event:open-group', 'open-group', 'open', \
                 now() - interval '40 days', now() - interval '40 days', now() + interval '1 hour')",
        "insert into event_receipts (definition_id, dedupe_key, workflow_id, event, state, version, received_at) \
         values ($1, 'open-group', 'tf:' || $1 || ':event:open-group', '{}'::jsonb, 'grouped', 1, now() - interval '40 days')",
        // A group that started its run 40 days ago, and its event: both pruned.
        "insert into event_groups (definition_id, version, mode, group_key, workflow_id, dedupe_key, state, first_at, last_at, fire_at, started_at) \
         values ($1, 1, 'batch', 'done', 'tf:' || $1 || ':event:done-group', 'done-group', 'started', \
                 now() - interval '41 days', now() - interval '41 days', now() - interval '41 days', now() - interval '40 days')",
        "insert into event_receipts (definition_id, dedupe_key, workflow_id, event, state, version, received_at) \
         values ($1, 'done-group', 'tf:' || $1 || ':event:done-group', '{}'::jsonb, 'grouped', 1, now() - interval '41 days')",
    ];
    for statement in rows {
        sqlx::query(statement).bind(&id).execute(app.store.pool()).await.unwrap();
    }

    assert_eq!(app.store.prune_receipts(THIRTY_DAYS).await.unwrap(), 3);
    let kept: Vec<String> =
        sqlx::query_scalar("select dedupe_key from event_receipts where definition_id = $1 order by dedupe_key")
            .bind(&id)
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    assert_eq!(kept, ["fresh", "open-group", "pending"]);
    let groups: Vec<String> =
        sqlx::query_scalar("select group_key from event_groups where definition_id = $1 order by group_key")
            .bind(&id)
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    assert_eq!(groups, ["open"], "the started group went, the open one stays");
    assert_eq!(receipt(&app, &id, "pending").await.unwrap().0, "pending");
    // Runs have their own horizon: pruning receipts deletes no run.
    assert!(app.call(Method::GET, &format!("/api/v1/runs/tf:{id}:event:old-1"), None).await.0 == StatusCode::OK);
    assert_eq!(app.store.prune_receipts(THIRTY_DAYS).await.unwrap(), 0, "nothing more to prune");

    // The counter is process-wide; the label is this test's own.
    let line = format!("taskfactory_receipts_pruned_total{{definition_id=\"{id}\"}}");
    assert_eq!(sample(&metrics_text(&app.api_url).await, &line), Some(3.0), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_receipt_was_pruned_starts_a_run_only_once_temporal_forgot_the_old_one() {
    let app = TestApp::spawn("growth-rekey").await;
    let id = format!("rekey-{}", unique());
    let event_type = format!("thing.again.{}", unique());
    assert_eq!(app.put_definition(&event_definition(&id, &event_type)).await.0, StatusCode::CREATED);
    let workflow_id = format!("tf:{id}:event:k");
    assert_eq!(send(&app, &event_type, "k").await, ("accepted".to_owned(), workflow_id.clone()));
    let first_run = started(&app, &id, "k").await;
    assert_eq!(app.wait_for_run(&workflow_id).await["status"], "completed");
    assert_eq!(send(&app, &event_type, "k").await.0, "duplicate", "the receipt deduplicates");

    age_receipt(&app, &id, "k", 40).await;
    assert_eq!(app.store.prune_receipts(THIRTY_DAYS).await.unwrap(), 1);
    // The key is no longer deduplicated by the run log: ingress accepts it again. Temporal
    // still has the closed workflow and refuses the same workflow id (reuse policy
    // RejectDuplicate): the starter takes that as started, and no second run appears.
    assert_eq!(send(&app, &event_type, "k").await, ("accepted".to_owned(), workflow_id.clone()));
    let again = started(&app, &id, "k").await;
    if let (Some(first), Some(again)) = (&first_run, &again) {
        assert_eq!(first, again, "the receipt names the first run");
    }
    let runs: i64 = sqlx::query_scalar("select count(*) from activity_runs where definition_id = $1")
        .bind(&id)
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(runs, 1, "no second run while Temporal keeps the first");

    // Once the run is pruned and Temporal forgot it (its namespace retention, here a delete),
    // the same key, its receipt pruned again, starts a new run under the same workflow id.
    sqlx::query("update activity_runs set finished_at = finished_at - interval '40 days' where workflow_id = $1")
        .bind(&workflow_id)
        .execute(app.store.pool())
        .await
        .unwrap();
    assert_eq!(app.store.prune_runs(&RunPrune { default_keep: Some(THIRTY_DAYS), batch: 10 }).await.unwrap().runs, 1);
    app.forget_in_temporal(&workflow_id).await;
    age_receipt(&app, &id, "k", 40).await;
    assert_eq!(app.store.prune_receipts(THIRTY_DAYS).await.unwrap(), 1);
    assert_eq!(send(&app, &event_type, "k").await, ("accepted".to_owned(), workflow_id.clone()));
    let third = started(&app, &id, "k").await;
    assert_ne!(third, first_run, "a new Temporal run");
    assert_eq!(app.wait_for_run(&workflow_id).await["status"], "completed", "a new run of the same key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_rows_and_bytes_per_table_and_the_oldest_run() {
    let app = TestApp::spawn("growth-metrics").await;
    let empty = metrics_text(&app.api_url).await;
    assert!(!empty.contains("taskfactory_oldest_run_timestamp_seconds "), "no run: the oldest-run gauge is absent");
    assert!(sample(&empty, "taskfactory_table_bytes{table=\"run_events\"}").is_some(), "every table has its bytes");

    let id = format!("sized-{}", unique());
    let definition = json!({"id": id, "name": "Sized", "trigger": {"kind": "manual"},
        "tasks": [{"id": "a", "kind": "noop", "for_each": "items", "key": "{{ item }}"}],
        "context": [{"name": "items", "kind": "static", "value": [1, 2, 3]}]});
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let mut runs = Vec::new();
    for _ in 0..2 {
        let run = app.start_run(&id, &json!({"key": unique()})).await;
        assert_eq!(app.wait_for_run(&run).await["status"], "completed");
        runs.push(run);
    }
    // The older run, with a start that is not on a whole second.
    sqlx::query("update activity_runs set fired_at = fired_at - interval '3 days 0.4 seconds' where workflow_id = $1")
        .bind(&runs[1])
        .execute(app.store.pool())
        .await
        .unwrap();
    let oldest: i64 = sqlx::query_scalar("select floor(extract(epoch from min(fired_at)))::bigint from activity_runs")
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    // Row estimates come from the statistics (autovacuum's analyze, here at once).
    sqlx::query("analyze").execute(app.store.pool()).await.unwrap();

    // A second API process on the same database: its first scrape reads the catalog now (the
    // first process serves its reading of the empty database for 15 s).
    let (api, _guard) = app.spawn_api().await;
    let text = metrics_text(&api).await;
    let bytes = sample(&text, "taskfactory_table_bytes{table=\"run_events\"}").expect("run_events' bytes");
    assert!(bytes > 0.0, "{bytes}");
    let rows = sample(&text, "taskfactory_table_rows{table=\"task_runs\"}").expect("task_runs' rows");
    assert!(rows >= 6.0, "two runs of three tasks: {rows}");
    let gauge = sample(&text, "taskfactory_oldest_run_timestamp_seconds").expect("the oldest run");
    assert_eq!(gauge, oldest as f64, "the oldest run's fired_at, to the second");
    assert!(sample(&text, "taskfactory_table_bytes{table=\"_sqlx_migrations\"}").is_some());
}
