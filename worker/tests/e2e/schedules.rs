//! Cron definitions own Temporal Schedules: created, updated, paused and deleted with the
//! definition, controllable (pause, trigger, backfill), reconciled, and previewed locally the
//! way Temporal computes them.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskfactory_api::schedules::{DISABLED_NOTE, SyncAction, sync_definition};
use taskfactory_schemas::validate::parse_definition;

use crate::support::{TestApp, eventually, unique};

fn cron_definition(id: &str, cron: &str) -> Value {
    json!({
        "id": id,
        "name": "Hourly report",
        "trigger": {"kind": "cron", "cron": [cron], "timezone": "Europe/Berlin", "overlap": "allow_all", "catchup_window": "10m"},
        "tasks": [{"id": "report", "kind": "noop", "params": {"slot": "{{ trigger.scheduled_for }}"}}]
    })
}

/// The schedule as Temporal describes it (the independent check); `None` when absent.
async fn temporal_schedule(app: &TestApp, id: &str) -> Option<Value> {
    let described = taskfactory_api::schedules::describe_raw(&app.client, &format!("tf:{id}")).await.unwrap()?;
    let schedule = described.schedule.unwrap();
    let state = schedule.state.unwrap();
    let spec = schedule.spec.unwrap();
    Some(json!({"paused": state.paused, "note": state.notes, "timezone": spec.timezone_name}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_definition_owns_its_schedule() {
    let app = TestApp::spawn("schedule").await;
    let id = format!("cron-{}", unique());
    let (status, body) = app.put_definition(&cron_definition(&id, "0 * * * *")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["schedule"], "created");
    assert_eq!(body["next_fires"].as_array().unwrap().len(), 10);
    assert_eq!(
        temporal_schedule(&app, &id).await,
        Some(json!({"paused": false, "note": "", "timezone": "Europe/Berlin"}))
    );

    // Trigger now: a scheduled run with its slot recorded.
    let (status, _) = app.call(Method::POST, &format!("/api/v1/definitions/{id}/schedule/trigger"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let runs = app.completed_runs(&format!("definition_id={id}"), 1).await;
    let workflow_id = runs[0]["workflow_id"].as_str().unwrap();
    assert!(workflow_id.starts_with(&format!("tf:{id}:schedule-")), "{workflow_id}");
    assert_eq!(runs[0]["trigger_kind"], "schedule");
    let (_, run) = app.call(Method::GET, &format!("/api/v1/runs/{workflow_id}"), None).await;
    let slot = run["scheduled_for"].as_str().expect("scheduled_for is recorded");
    assert_eq!(run["tasks"][0]["params"]["slot"].as_str().unwrap().get(..16), Some(&slot[..16]), "{run}");
    let (_, described) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/schedule"), None).await;
    assert_eq!(described["recent_actions"][0]["workflow_id"], workflow_id, "{described}");
    assert_eq!(described["next_fire_times"].as_array().unwrap().len(), 10);

    // Pause and unpause with a note reach Temporal.
    let (status, _) = app
        .call(Method::POST, &format!("/api/v1/definitions/{id}/schedule/pause"), Some(&json!({"note": "maintenance"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(temporal_schedule(&app, &id).await.unwrap()["note"], "maintenance");
    assert_eq!(temporal_schedule(&app, &id).await.unwrap()["paused"], true);
    // An operator's pause survives an unrelated edit of the definition.
    let mut edited = cron_definition(&id, "30 * * * *");
    let (_, body) = app.put_definition(&edited).await;
    assert_eq!(body["schedule"], "updated");
    assert_eq!(temporal_schedule(&app, &id).await.unwrap()["paused"], true);
    app.call(Method::POST, &format!("/api/v1/definitions/{id}/schedule/unpause"), Some(&json!({"note": "done"}))).await;
    assert_eq!(temporal_schedule(&app, &id).await.unwrap()["paused"], false);

    // Disabling pauses, enabling unpauses, deleting deletes.
    edited["enabled"] = json!(false);
    app.put_definition(&edited).await;
    assert_eq!(
        temporal_schedule(&app, &id).await.unwrap(),
        json!({"paused": true, "note": DISABLED_NOTE, "timezone": "Europe/Berlin"})
    );
    edited["enabled"] = json!(true);
    app.put_definition(&edited).await;
    assert_eq!(temporal_schedule(&app, &id).await.unwrap()["paused"], false);
    let (status, _) = app.call(Method::DELETE, &format!("/api/v1/definitions/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(temporal_schedule(&app, &id).await, None);

    // An invalid cron or time zone never reaches Temporal.
    let mut bad = cron_definition(&id, "0 * * *");
    bad["trigger"]["timezone"] = json!("Europe/Atlantis");
    let (status, body) = app.put_definition(&bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let paths: Vec<&str> =
        body["error"]["details"].as_array().unwrap().iter().map(|d| d["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["trigger.cron[0]", "trigger.timezone"]);
    assert_eq!(temporal_schedule(&app, &id).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_of_three_slots_starts_three_runs() {
    let app = TestApp::spawn("backfill").await;
    let id = format!("backfill-{}", unique());
    let mut definition = cron_definition(&id, "0 * * * *");
    definition["trigger"]["timezone"] = json!("UTC");
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let range = json!({"start": "2026-01-05T10:00:00Z", "end": "2026-01-05T12:00:00Z"});
    let (status, body) =
        app.call(Method::POST, &format!("/api/v1/definitions/{id}/schedule/backfill"), Some(&range)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["slots"], json!(["2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z", "2026-01-05T12:00:00Z"]));

    let runs = app.completed_runs(&format!("definition_id={id}"), 3).await;
    assert_eq!(runs.len(), 3, "exactly three runs: {runs:?}");
    let mut slots = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for run in &runs {
        let (_, detail) =
            app.call(Method::GET, &format!("/api/v1/runs/{}", run["workflow_id"].as_str().unwrap()), None).await;
        slots.push(detail["scheduled_for"].as_str().unwrap().to_owned());
        ids.insert(run["workflow_id"].as_str().unwrap().to_owned());
    }
    slots.sort();
    assert_eq!(slots, ["2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z", "2026-01-05T12:00:00Z"]);
    assert_eq!(ids.len(), 3, "each slot has its own workflow id");

    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/definitions/{id}/schedule/backfill"),
            Some(&json!({"start": "2026-01-05T10:00:00Z"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"][0]["path"], "end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_repairs_missing_stale_and_orphaned_schedules() {
    let app = TestApp::spawn("reconcile").await;
    let task_queue = app.task_queue().to_owned();
    // Missing: saved behind the API's back.
    let missing = parse_definition(cron_definition(&format!("missing-{}", unique()), "0 6 * * *")).unwrap();
    app.store.put_definition(&missing).await.unwrap();
    // Stale: its schedule was built from an older version.
    let stale_id = format!("stale-{}", unique());
    assert_eq!(app.put_definition(&cron_definition(&stale_id, "0 7 * * *")).await.0, StatusCode::CREATED);
    app.store.put_definition(&parse_definition(cron_definition(&stale_id, "0 8 * * *")).unwrap()).await.unwrap();
    // Deleted behind its back: the definition is fine, its schedule is gone from Temporal.
    let deleted_id = format!("deleted-{}", unique());
    assert_eq!(app.put_definition(&cron_definition(&deleted_id, "0 5 * * *")).await.0, StatusCode::CREATED);
    let deleted = parse_definition(cron_definition(&deleted_id, "0 5 * * *")).unwrap();
    assert!(taskfactory_api::schedules::delete(&app.client, &deleted.id).await.unwrap());
    assert_eq!(temporal_schedule(&app, &deleted_id).await, None);
    // Orphaned: a schedule of this deployment whose definition does not exist.
    let orphan = parse_definition(cron_definition(&format!("orphan-{}", unique()), "0 9 * * *")).unwrap();
    assert_eq!(sync_definition(&app.client, &task_queue, &orphan).await.unwrap(), SyncAction::Created);
    // Listing schedules goes through visibility, which is eventually consistent.
    let orphan_id = format!("tf:{}", orphan.id);
    eventually(Duration::from_secs(30), "the orphan schedule to become visible", || async {
        let mut listed = app.client.list_schedules(Default::default());
        let (mut seen, mut count) = (false, 0);
        while let Some(entry) = futures::StreamExt::next(&mut listed).await {
            seen |= entry.unwrap().schedule_id() == orphan_id;
            count += 1;
        }
        if seen { Ok(()) } else { Err(format!("{count} schedules listed, not {orphan_id}")) }
    })
    .await;

    let (status, body) = app.call(Method::POST, "/api/v1/schedules/reconcile", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut repairs: Vec<(String, String)> = body["repairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["schedule_id"].as_str().unwrap().to_owned(), r["action"].as_str().unwrap().to_owned()))
        .collect();
    repairs.sort();
    let mut expected = vec![
        (format!("tf:{}", missing.id), "created".to_owned()),
        (format!("tf:{deleted_id}"), "created".to_owned()),
        (format!("tf:{stale_id}"), "updated".to_owned()),
        (format!("tf:{}", orphan.id), "deleted".to_owned()),
    ];
    expected.sort();
    assert_eq!(repairs, expected);
    let (_, again) = app.call(Method::POST, "/api/v1/schedules/reconcile", None).await;
    assert_eq!(again["repairs"], json!([]), "a second pass finds nothing to repair");
    assert_eq!(temporal_schedule(&app, &deleted_id).await.unwrap()["paused"], false);
    assert_eq!(temporal_schedule(&app, &orphan.id.to_string()).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_preview_matches_temporal_across_a_dst_change() {
    let app = TestApp::spawn("preview").await;
    let id = format!("dst-{}", unique());
    let definition = json!({
        "id": id, "name": "Berlin mornings",
        "trigger": {"kind": "cron", "cron": ["0 9 * * *"], "timezone": "Europe/Berlin", "start_at": "2027-03-25T00:00:00Z"},
        "tasks": [{"id": "t", "kind": "noop"}]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let (_, described) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/schedule"), None).await;
    let temporal: Vec<String> =
        described["next_fire_times"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect();
    let local: Vec<String> =
        described["local_preview"].as_array().unwrap().iter().map(|f| f["utc"].as_str().unwrap().to_owned()).collect();
    assert_eq!(temporal.len(), 10, "{described}");
    assert_eq!(local, temporal);
    // The change is in the window: 08:00 UTC before the last Sunday of March, 07:00 after.
    assert_eq!(temporal[0], "2027-03-25T08:00:00Z");
    assert_eq!(temporal[3], "2027-03-28T07:00:00Z");

    // The autumn night, when 02:30 happens twice: one fire, where Temporal puts it.
    let fall_id = format!("dst-fall-{}", unique());
    let fall = json!({
        "id": fall_id, "name": "Berlin nights",
        "trigger": {"kind": "cron", "cron": ["30 2 * * *"], "timezone": "Europe/Berlin", "start_at": "2027-10-29T00:00:00Z"},
        "tasks": [{"id": "t", "kind": "noop"}]
    });
    assert_eq!(app.put_definition(&fall).await.0, StatusCode::CREATED);
    let (_, described) = app.call(Method::GET, &format!("/api/v1/definitions/{fall_id}/schedule"), None).await;
    let temporal_fall: Vec<&str> =
        described["next_fire_times"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let local_fall: Vec<&str> =
        described["local_preview"].as_array().unwrap().iter().map(|f| f["utc"].as_str().unwrap()).collect();
    assert_eq!(local_fall, temporal_fall);
    assert_eq!(
        &temporal_fall[..4],
        ["2027-10-29T00:30:00Z", "2027-10-30T00:30:00Z", "2027-10-31T01:30:00Z", "2027-11-01T01:30:00Z"]
    );

    // The same preview is available before saving.
    let (status, body) = app.call(Method::POST, "/api/v1/validate", Some(&definition)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let validated: Vec<&str> =
        body["next_fires"].as_array().unwrap().iter().map(|f| f["utc"].as_str().unwrap()).collect();
    assert_eq!(validated, local);
}
