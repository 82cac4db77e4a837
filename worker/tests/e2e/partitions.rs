//! The partitions of `run_events`: the migration converts a database that already holds runs
//! without losing an event, and retention drops a day whose runs are all past it whole, while a
//! day that still holds a kept run loses only the pruned runs' rows.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use taskfactory::devstack;
use taskfactory_activities::store::{RunPrune, Store};

use crate::retention::{backdate, definition, exists, finished_run, prune, rows};
use crate::support::{TestApp, scratch_root, servers, unique};

/// The migration that partitions `run_events`.
const PARTITIONING: &str = "20261203000016_partitioned_run_events.sql";

/// A fresh database migrated up to (not including) the partitioning migration.
async fn database_before_partitioning() -> (Store, String) {
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let older = scratch_root().join(format!("migrations-{}", unique()));
    std::fs::create_dir_all(&older).unwrap();
    let mut names: Vec<String> =
        std::fs::read_dir(&migrations).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert!(names.iter().any(|n| n == PARTITIONING), "{PARTITIONING} is among {names:?}");
    for name in names.iter().take_while(|n| n.as_str() < PARTITIONING) {
        std::fs::copy(migrations.join(name), older.join(name)).unwrap();
    }
    let port = servers().postgres_port;
    let db = format!("t_partition_migration_{}", unique());
    devstack::ensure_database(&format!("postgres://postgres@127.0.0.1:{port}/postgres"), &db).await.unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{port}/{db}");
    let store = Store::connect(&url, 4).await.unwrap();
    sqlx::migrate::Migrator::new(older.as_path()).await.unwrap().run(store.pool()).await.unwrap();
    (store, url)
}

/// Every event, as rows of JSON in (run, seq) order, without the partition key.
async fn all_events(store: &Store) -> Vec<Value> {
    let rows: Vec<Value> =
        sqlx::query_scalar("select to_jsonb(e) - 'run_fired_at' from run_events e order by e.run_workflow_id, e.seq")
            .fetch_all(store.pool())
            .await
            .unwrap();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_partition_migration_keeps_every_event_of_existing_runs() {
    let (store, _) = database_before_partitioning().await;
    // Runs started 400 days ago, 10 days ago and now, with events of every shape.
    let runs = [("old", 400, 1_000), ("recent", 10, 3), ("today", 0, 250)];
    for (run, days, events) in runs {
        sqlx::query(
            "insert into activity_runs (workflow_id, run_id, definition_id, trigger_kind, trigger, fired_at, status, finished_at, last_seq) \
             values ($1, 'r', 'd', 'manual', '{}'::jsonb, now() - make_interval(days => $2), 'completed', now(), $3)",
        )
        .bind(run)
        .bind(days)
        .bind(events)
        .execute(store.pool())
        .await
        .unwrap();
        sqlx::query(
            "insert into run_events (run_workflow_id, seq, event_key, ts, type, node_id, level, message, payload) \
             select $1, n, 'k' || n, now() - make_interval(days => $2) + make_interval(secs => n), \
                    case when n % 2 = 0 then 'NODE_STARTED' else 'NODE_COMPLETED' end, \
                    case when n % 3 = 0 then null else 't/' || n end, 'info', \
                    case when n % 5 = 0 then null else 'line ' || n end, jsonb_build_object('n', n, 'nested', jsonb_build_array(n, 'x')) \
             from generate_series(1, $3::bigint) n",
        )
        .bind(run)
        .bind(days)
        .bind(i64::from(events))
        .execute(store.pool())
        .await
        .unwrap();
    }
    let before = all_events(&store).await;
    assert_eq!(before.len(), 1_253);

    store.migrate().await.expect("the partitioning migration");

    assert_eq!(all_events(&store).await, before, "every event, every column, in (run, seq) order");
    let misplaced: i64 = sqlx::query_scalar(
        "select count(*) from run_events e join activity_runs r on r.workflow_id = e.run_workflow_id \
         where e.run_fired_at <> r.fired_at",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(misplaced, 0, "each event carries its run's start");
    let partitions = store.event_partitions().await.unwrap();
    let days: Vec<String> = partitions.iter().map(|p| p.from.date_naive().to_string()).collect();
    let now = chrono::Utc::now();
    for days_ago in [400, 10] {
        let day = (now - chrono::Duration::days(days_ago)).date_naive().to_string();
        assert!(days.contains(&day), "a partition for {day} in {days:?}");
    }
    for ahead in 0..=7 {
        let day = (now + chrono::Duration::days(ahead)).date_naive().to_string();
        assert!(days.contains(&day), "a partition for {day} (made ahead) in {days:?}");
    }
    let old_table: Option<String> = sqlx::query_scalar("select to_regclass('run_events_unpartitioned')::text")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(old_table, None, "the unpartitioned table is gone");

    // The log reads and grows as before: pages by seq, and an append continues the seq.
    let page = store.list_events("old", 990, 100).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), (991..=1_000).collect::<Vec<_>>());
    let appended: taskfactory_schemas::events::NewTraceEvent = serde_json::from_value(
        json!({"key": "after-migration", "type": "NODE_LOG", "node_id": "t/1", "level": "info", "message": "still here", "payload": {}}),
    )
    .unwrap();
    assert_eq!(store.append_external("old", std::slice::from_ref(&appended)).await.unwrap(), 1);
    assert_eq!(store.append_external("old", &[appended]).await.unwrap(), 0, "an event key is still written once");
    let last = store.list_events("old", 1_000, 10).await.unwrap();
    assert_eq!((last.len(), last[0].seq, last[0].message.as_deref()), (1, 1_001, Some("still here")));
}

/// Whether `run_events` has a partition for the day `days` ago.
async fn has_partition(app: &TestApp, days: i64) -> bool {
    let day = (chrono::Utc::now() - chrono::Duration::days(days)).date_naive();
    app.store.event_partitions().await.unwrap().iter().any(|p| p.from.date_naive() == day)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_whose_runs_are_all_past_retention_is_dropped_whole() {
    let app = TestApp::spawn("partition-drop").await;
    let short = format!("short-{}", unique());
    let long = format!("long-{}", unique());
    assert_eq!(app.put_definition(&definition(&short, Some(json!({"days": 30})))).await.0, StatusCode::CREATED);
    assert_eq!(app.put_definition(&definition(&long, Some(json!({"days": 3650})))).await.0, StatusCode::CREATED);
    // Day A (50 days ago): two runs, both past 30 days. Day B (45 days ago): one past, one kept.
    let day_a = [finished_run(&app, &short).await, finished_run(&app, &short).await];
    let day_b_pruned = finished_run(&app, &short).await;
    let day_b_kept = finished_run(&app, &long).await;
    for run in &day_a {
        backdate(&app, run, 50).await;
    }
    backdate(&app, &day_b_pruned, 45).await;
    backdate(&app, &day_b_kept, 45).await;
    assert!(has_partition(&app, 50).await && has_partition(&app, 45).await);
    let kept_events = app.all_events(&day_b_kept, 100).await;
    assert!(!kept_events.is_empty());

    let report = app.store.prune_runs(&RunPrune { default_keep: None, batch: 1 }).await.unwrap();
    assert_eq!((report.runs, report.partitions), (3, 1), "day A's runs go with its partition, day B's one row by row");
    assert!(!has_partition(&app, 50).await, "day A's partition is dropped");
    assert!(has_partition(&app, 45).await, "day B holds a kept run: its partition stays");
    for run in day_a.iter().chain([&day_b_pruned]) {
        assert!(!exists(&app, run).await);
        assert!(rows(&app, run).await.iter().all(|(_, n)| *n == 0), "{run}: {:?}", rows(&app, run).await);
    }
    assert!(exists(&app, &day_b_kept).await);
    assert_eq!(app.all_events(&day_b_kept, 100).await, kept_events, "the kept run's log is whole");
    let metrics = reqwest::get(format!("{}/metrics", app.api_url)).await.unwrap().text().await.unwrap();
    let dropped = metrics
        .lines()
        .find_map(|l| l.strip_prefix("taskfactory_event_partitions_dropped_total "))
        .and_then(|n| n.parse::<f64>().ok());
    assert!(dropped.is_some_and(|n| n >= 1.0), "the drop is counted: {dropped:?}");
    assert_eq!(prune(&app, Some(Duration::from_secs(86_400 * 365 * 20))).await, 0, "nothing more");
}
