//! The trigger decision log (one recorded outcome per event, schedule slot and trigger), the
//! DST-aware preview, and the behavioural diff over recorded triggers.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, eventually, unique};

/// The decision log once `done` holds for it (deadline `limit`).
async fn decisions_when(app: &TestApp, id: &str, limit: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    eventually(limit, "the decision log to get there", || async {
        let (status, log) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/decisions?limit=500"), None).await;
        assert_eq!(status, StatusCode::OK, "{log}");
        assert!(log["observer_error"].is_null(), "{log}");
        let decisions = log["decisions"].as_array().cloned().unwrap_or_default();
        if done(&decisions) { Ok(decisions) } else { Err(format!("{log:#}")) }
    })
    .await
}

fn with<'a>(decisions: &'a [Value], outcome: &str) -> Vec<&'a Value> {
    decisions.iter().filter(|d| d["outcome"] == outcome).collect()
}

async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.http.get(format!("{}/metrics", app.api_url)).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_gets_one_recorded_outcome() {
    let app = TestApp::spawn("decisions-events").await;
    let id = format!("push-{}", unique());
    let event_type = format!("repo.pushed.{}", unique());
    let definition = json!({
        "id": id, "name": "Reindex on push",
        "trigger": {"kind": "event", "event_type": event_type, "filter": "event.payload.branch == 'main'"},
        "context": [{"name": "push", "kind": "trigger"}],
        "tasks": [{"id": "reindex", "kind": "noop", "for_each": "push.files", "key": "{{ item }}"}]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let send = |key: &str, branch: &str, files: Value| json!({"type": event_type, "key": key, "payload": {"branch": branch, "files": files}});

    let (_, first) = app.call(Method::POST, "/api/v1/events", Some(&send("k1", "main", json!(["a.rs"])))).await;
    let fired_run = first["results"][0]["outcomes"][0]["workflow_id"].as_str().unwrap().to_owned();
    app.wait_for_run(&fired_run).await;
    app.call(Method::POST, "/api/v1/events", Some(&send("k1", "main", json!(["a.rs"])))).await;
    app.call(Method::POST, "/api/v1/events", Some(&send("k2", "dev", json!(["b.rs"])))).await;
    let (_, empty) = app.call(Method::POST, "/api/v1/events", Some(&send("k3", "main", json!([])))).await;
    let empty_run = empty["results"][0]["outcomes"][0]["workflow_id"].as_str().unwrap().to_owned();
    app.wait_for_run(&empty_run).await;

    let decisions =
        decisions_when(&app, &id, Duration::from_secs(30), |d| !with(d, "fired_zero_tasks").is_empty()).await;
    assert_eq!(decisions.len(), 4, "one decision per delivery: {decisions:#?}");
    assert!(decisions.iter().all(|d| d["source"] == "event" && d["definition_id"] == id.as_str()));
    let fired = with(&decisions, "fired");
    assert_eq!((fired.len(), fired[0]["workflow_id"].as_str()), (1, Some(fired_run.as_str())));
    let duplicate = with(&decisions, "deduplicated");
    assert_eq!(duplicate.len(), 1);
    assert_eq!(
        (duplicate[0]["dedupe_key"].as_str(), duplicate[0]["workflow_id"].as_str()),
        (Some("k1"), Some(fired_run.as_str()))
    );
    let filtered = with(&decisions, "filtered");
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0]["reason"], "event.payload.branch == 'main'");
    assert_eq!(filtered[0]["detail"]["saw"], json!({"event.payload.branch": "dev"}), "the value the filter saw");
    assert!(
        filtered[0]["message"].as_str().unwrap().contains("event.payload.branch = \"dev\""),
        "{}",
        filtered[0]["message"]
    );
    let zero = with(&decisions, "fired_zero_tasks");
    assert_eq!(zero[0]["workflow_id"].as_str(), Some(empty_run.as_str()));
    assert!(zero[0]["reason"].as_str().unwrap().contains("empty"), "{}", zero[0]["reason"]);

    // Filters, counts and the metric.
    let (_, only) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/decisions?outcome=filtered"), None).await;
    assert_eq!(only["decisions"].as_array().unwrap().len(), 1);
    assert_eq!(only["counts"], json!({"deduplicated": 1, "filtered": 1, "fired": 1, "fired_zero_tasks": 1}));
    let (status, bad) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/decisions?outcome=maybe"), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad["error"]["details"][0]["path"], "outcome");
    let series = |outcome: &str| {
        format!("taskfactory_trigger_decisions_total{{definition_id=\"{id}\",outcome=\"{outcome}\",source=\"event\"}}")
    };
    assert_eq!(metric(&app, &series("filtered")).await, 1.0);
    assert_eq!(metric(&app, &series("deduplicated")).await, 1.0);

    // A disabled definition starts nothing, and its log says an event came.
    let mut disabled = definition.clone();
    disabled["enabled"] = json!(false);
    assert_eq!(app.put_definition(&disabled).await.0, StatusCode::OK);
    let (_, answer) = app.call(Method::POST, "/api/v1/events", Some(&send("k4", "main", json!(["c.rs"])))).await;
    assert_eq!(answer["results"][0]["outcomes"], json!([]), "{answer}");
    let decisions = decisions_when(&app, &id, Duration::from_secs(10), |d| d.len() == 5).await;
    assert_eq!(
        (decisions[0]["outcome"].as_str(), decisions[0]["reason"].as_str()),
        (Some("skipped"), Some("disabled"))
    );
    assert_eq!(decisions[0]["detail"]["event"]["key"], "k4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_slots_are_fired_skipped_for_overlap_or_skipped_while_paused() {
    let app = TestApp::spawn("decisions-schedule").await;
    let id = format!("minutely-{}", unique());
    let assignee = format!("ops-{}", unique());
    // Every minute; the run waits for a person, so the next trigger overlaps it.
    let mut definition = crate::support::held_definition(&id, &assignee);
    definition["trigger"] = json!({"kind": "cron", "cron": ["* * * * *"], "overlap": "skip"});
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let trigger = format!("/api/v1/definitions/{id}/schedule/trigger");
    assert_eq!(app.call(Method::POST, &trigger, None).await.0, StatusCode::ACCEPTED);
    app.waiting_human_task(&assignee).await;
    // The second trigger finds the first run running: Temporal skips it and counts the skip.
    assert_eq!(app.call(Method::POST, &trigger, None).await.0, StatusCode::ACCEPTED);
    let decisions = decisions_when(&app, &id, Duration::from_secs(60), |d| {
        !with(d, "fired").is_empty() && d.iter().any(|d| d["outcome"] == "skipped" && d["reason"] == "overlap")
    })
    .await;
    let fired = with(&decisions, "fired");
    assert!(fired[0]["workflow_id"].as_str().unwrap().starts_with(&format!("tf:{id}:schedule-")), "{fired:?}");
    assert!(fired[0]["slot"].is_string());

    // Paused: the next minute's slot is skipped, and says so once it has settled.
    let (status, _) = app
        .call(Method::POST, &format!("/api/v1/definitions/{id}/schedule/pause"), Some(&json!({"note": "test"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let paused_from = chrono::Utc::now();
    let decisions =
        decisions_when(&app, &id, Duration::from_secs(120), |d| d.iter().any(|d| d["reason"] == "paused")).await;
    let paused = decisions.iter().find(|d| d["reason"] == "paused").unwrap();
    assert_eq!((paused["outcome"].as_str(), paused["source"].as_str()), (Some("skipped"), Some("schedule")));
    let slot: chrono::DateTime<chrono::Utc> = paused["slot"].as_str().unwrap().parse().unwrap();
    assert!(slot > paused_from && slot.timestamp() % 60 == 0, "a minute slot after the pause: {slot}");
    assert!(decisions.iter().all(|d| d["reason"] != "unexplained"), "{decisions:#?}");
    // Expected fires (from the cron) outrun actual ones: what a silent-schedule alert watches.
    let expected = metric(&app, &format!("taskfactory_schedule_slots_expected_total{{definition_id=\"{id}\"}}")).await;
    let actual = metric(&app, &format!("taskfactory_schedule_slots_fired_total{{definition_id=\"{id}\"}}")).await;
    assert!(expected >= 1.0 && actual < expected, "expected {expected}, fired {actual}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_warns_about_dst_changes_and_agrees_with_temporal() {
    let app = TestApp::spawn("decisions-preview").await;
    let id = format!("nightly-{}", unique());
    let definition = json!({
        "id": id, "name": "Berlin nights",
        "trigger": {"kind": "cron", "cron": ["30 2 * * *"], "timezone": "Europe/Berlin", "start_at": "2027-03-26T00:00:00Z"},
        "tasks": [{"id": "t", "kind": "noop"}]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let (status, spring) = app
        .call(Method::GET, &format!("/api/v1/definitions/{id}/preview?count=4&after=2027-03-26T00:00:00Z"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{spring}");
    let utc: Vec<&str> = spring["fires"].as_array().unwrap().iter().map(|f| f["utc"].as_str().unwrap()).collect();
    assert_eq!(utc, ["2027-03-26T01:30:00Z", "2027-03-27T01:30:00Z", "2027-03-29T00:30:00Z", "2027-03-30T00:30:00Z"]);
    assert_eq!(spring["fires"][2]["local"], "2027-03-29T02:30:00+02:00");
    assert_eq!(spring["warnings"].as_array().unwrap().len(), 1, "{spring}");
    assert_eq!(spring["warnings"][0]["kind"], "nonexistent_local_time");
    assert_eq!(spring["warnings"][0]["local_time"], "2027-03-28T02:30:00");
    // Temporal, starting at the same instant, skips the same night.
    let (_, described) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/schedule"), None).await;
    let temporal: Vec<&str> =
        described["next_fire_times"].as_array().unwrap().iter().take(4).map(|t| t.as_str().unwrap()).collect();
    assert_eq!(temporal, utc);

    let (_, autumn) = app
        .call(Method::GET, &format!("/api/v1/definitions/{id}/preview?count=3&after=2027-10-30T12:00:00%2B02:00"), None)
        .await;
    assert_eq!(autumn["warnings"][0]["kind"], "repeated_local_time", "{autumn}");
    assert_eq!(autumn["warnings"][0]["fires_at"], "2027-10-31T01:30:00Z");
    assert_eq!(autumn["fires"][0]["utc"], "2027-10-31T01:30:00Z");

    // The same warnings before saving, and field errors for bad input.
    let (_, validated) = app.call(Method::POST, "/api/v1/validate", Some(&definition)).await;
    assert_eq!(validated["dst_warnings"][0]["local_time"], "2027-03-28T02:30:00", "{validated}");
    let (status, bad) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/preview?count=0"), None).await;
    assert_eq!(
        (status, bad["error"]["details"][0]["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("count"))
    );
    let (status, bad) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/preview?after=tuesday"), None).await;
    assert_eq!(
        (status, bad["error"]["details"][0]["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("after"))
    );
}

fn invoices(version_note: &str, threshold: i64, with_summary: bool) -> Vec<Value> {
    let mut tasks = vec![json!({
        "id": "remind", "kind": "noop", "for_each": "billing.invoices", "key": "{{ item.id }}",
        "when": format!("item.amount > {threshold}"), "params": {"amount": "{{ item.amount }}", "note": version_note}
    })];
    if with_summary {
        tasks.push(
            json!({"id": "summary", "kind": "noop", "params": {"count": "{{ context.billing.invoices | length }}"}}),
        );
    }
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_behavioural_diff_replays_recorded_triggers_without_starting_anything() {
    let app = TestApp::spawn("decisions-diff").await;
    let id = format!("remind-{}", unique());
    let mut definition = json!({
        "id": id, "name": "Invoice reminders", "trigger": {"kind": "manual"},
        "context": [{"name": "billing", "kind": "trigger"}],
        "tasks": invoices("first reminder", 100, false)
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let small = app
        .start_run(&id, &json!({"payload": {"invoices": [{"id": "a", "amount": 50}, {"id": "b", "amount": 150}]}}))
        .await;
    app.wait_for_run(&small).await;
    let big = app.start_run(&id, &json!({"payload": {"invoices": [{"id": "c", "amount": 500}]}})).await;
    app.wait_for_run(&big).await;

    // Version 2: a lower threshold, a new note, and a summary task.
    definition["tasks"] = json!(invoices("second reminder", 10, true));
    let (_, saved) = app.put_definition(&definition).await;
    assert_eq!(saved["version"], 2);
    let (_, runs_before) = app.call(Method::GET, &format!("/api/v1/runs?definition_id={id}"), None).await;

    let (status, diff) =
        app.call(Method::GET, &format!("/api/v1/definitions/{id}/diff/behaviour?from=1&to=2&last=5"), None).await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    assert_eq!(
        diff["summary"],
        json!({"replayed": 2, "differing": 2, "fire_changes": 0, "tasks_added": 3, "tasks_removed": 0, "tasks_changed": 2}),
        "{diff:#}"
    );
    let by_run =
        |wf: &str| diff["triggers"].as_array().unwrap().iter().find(|t| t["workflow_id"] == wf).cloned().unwrap();
    let task_ids = |t: &Value, field: &str| -> Vec<String> {
        t[field].as_array().unwrap().iter().map(|x| x["task_id"].as_str().unwrap().to_owned()).collect()
    };
    let replay = by_run(&small);
    assert_eq!((replay["from"]["tasks"].as_i64(), replay["to"]["tasks"].as_i64()), (Some(1), Some(3)));
    assert_eq!(task_ids(&replay, "added"), [format!("{small}/remind/a"), format!("{small}/summary/_")]);
    assert_eq!(task_ids(&replay, "changed"), [format!("{small}/remind/b")]);
    assert_eq!(replay["changed"][0]["changes"][0]["path"], "params.note");
    assert_eq!(replay["changed"][0]["changes"][0]["to"], "second reminder");
    let replay = by_run(&big);
    assert_eq!(task_ids(&replay, "added"), [format!("{big}/summary/_")]);
    assert_eq!(task_ids(&replay, "changed"), [format!("{big}/remind/c")]);
    assert_eq!(replay["unchanged"], 0);

    // Nothing was started or written.
    let (_, runs_after) = app.call(Method::GET, &format!("/api/v1/runs?definition_id={id}"), None).await;
    assert_eq!(runs_after["runs"].as_array().unwrap().len(), 2);
    assert_eq!(runs_before["runs"], runs_after["runs"]);
    let (_, log) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/decisions"), None).await;
    assert_eq!(log["counts"], json!({"fired": 2}));

    let (status, bad) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/diff/behaviour?to=2"), None).await;
    assert_eq!((status, bad["error"]["details"][0]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("from")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_manual_key_is_recorded_as_deduplicated() {
    let app = TestApp::spawn("decisions-manual").await;
    let id = format!("manual-{}", unique());
    let definition =
        json!({"id": id, "name": "Manual", "trigger": {"kind": "manual"}, "tasks": [{"id": "t", "kind": "noop"}]});
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let first = app.start_run(&id, &json!({"key": "once"})).await;
    let (status, again) = app.trigger(&id, &json!({"key": "once"})).await;
    assert_eq!((status, again["started"].as_bool()), (StatusCode::OK, Some(false)), "{again}");
    app.wait_for_run(&first).await;
    let decisions = decisions_when(&app, &id, Duration::from_secs(10), |d| d.len() == 2).await;
    assert_eq!(
        (decisions[0]["outcome"].as_str(), decisions[0]["workflow_id"].as_str()),
        (Some("deduplicated"), Some(first.as_str()))
    );
    assert_eq!((decisions[1]["outcome"].as_str(), decisions[1]["source"].as_str()), (Some("fired"), Some("manual")));
    // A key that would make the workflow id longer than Temporal allows on SQL visibility.
    let (status, body) = app.trigger(&id, &json!({"key": "/".repeat(200)})).await;
    assert_eq!(
        (status, body["error"]["details"][0]["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("key")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_decisions_are_pruned_and_recent_ones_kept() {
    use taskfactory_activities::store::NewDecision;
    use taskfactory_schemas::decisions::DecisionOutcome;
    use taskfactory_schemas::run::RunTrigger;

    let app = TestApp::spawn("decisions-prune").await;
    let id = format!("prune-{}", unique());
    for n in 0..5 {
        let old = NewDecision::unkeyed(&id, RunTrigger::Event, DecisionOutcome::Filtered, format!("old {n}"));
        assert!(app.store.record_decision(&old).await.unwrap());
    }
    sqlx::query("update trigger_decisions set recorded_at = now() - interval '40 days' where definition_id = $1")
        .bind(&id)
        .execute(app.store.pool())
        .await
        .unwrap();
    let recent = NewDecision::unkeyed(&id, RunTrigger::Event, DecisionOutcome::Filtered, "recent".into());
    assert!(app.store.record_decision(&recent).await.unwrap());

    // Two rows per statement: the batches loop until the backlog is gone.
    let pruned = app.store.prune_decisions(chrono::Utc::now() - chrono::Duration::days(30), 2).await.unwrap();
    assert_eq!(pruned, 5);
    let left = app
        .store
        .list_decisions(&id, &taskfactory_activities::store::DecisionFilter { limit: 10, ..Default::default() })
        .await
        .unwrap();
    let messages: Vec<&str> = left.iter().map(|d| d.entry.message.as_str()).collect();
    assert_eq!(messages, ["recent"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_behavioural_diff_shows_filtered_events_a_wider_filter_would_fire_on() {
    let app = TestApp::spawn("decisions-diff-filter").await;
    let id = format!("pushes-{}", unique());
    let event_type = format!("repo.pushed.{}", unique());
    let mut definition = json!({
        "id": id, "name": "Reindex on push",
        "trigger": {"kind": "event", "event_type": event_type, "filter": "event.payload.branch == 'main'"},
        "context": [{"name": "push", "kind": "trigger"}],
        "tasks": [{"id": "reindex", "kind": "noop", "for_each": "push.files", "key": "{{ item }}"}]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let send = |key: &str, branch: &str| json!({"type": event_type, "key": key, "payload": {"branch": branch, "files": ["a.rs", "b.rs"]}});
    let (_, fired) = app.call(Method::POST, "/api/v1/events", Some(&send("m1", "main"))).await;
    app.wait_for_run(fired["results"][0]["outcomes"][0]["workflow_id"].as_str().unwrap()).await;
    app.call(Method::POST, "/api/v1/events", Some(&send("d1", "dev"))).await;

    definition["trigger"]["filter"] = json!("event.payload.branch in ['main', 'dev']");
    assert_eq!(app.put_definition(&definition).await.1["version"], 2);
    let (status, diff) =
        app.call(Method::GET, &format!("/api/v1/definitions/{id}/diff/behaviour?from=1&to=2"), None).await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    assert_eq!(
        diff["summary"],
        json!({"replayed": 2, "differing": 1, "fire_changes": 1, "tasks_added": 2, "tasks_removed": 0, "tasks_changed": 0}),
        "{diff:#}"
    );
    let filtered = diff["triggers"].as_array().unwrap().iter().find(|t| t["recorded"] == "filtered_event").unwrap();
    assert_eq!(filtered["workflow_id"], format!("tf:{id}:event:d1"));
    assert_eq!((filtered["from"]["fires"].as_bool(), filtered["to"]["fires"].as_bool()), (Some(false), Some(true)));
    assert_eq!(filtered["from"]["not_fired_because"], "filter false: event.payload.branch == 'main'");
    let added: Vec<&str> =
        filtered["added"].as_array().unwrap().iter().map(|t| t["item_key"].as_str().unwrap()).collect();
    assert_eq!(added, ["a.rs", "b.rs"]);
    let run = diff["triggers"].as_array().unwrap().iter().find(|t| t["recorded"] == "run").unwrap();
    assert_eq!((run["unchanged"].as_i64(), run["added"].as_array().map(Vec::len)), (Some(2), Some(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_behavioural_diff_replays_sample_events_one_by_one_and_as_a_group() {
    let app = TestApp::spawn("decisions-diff-samples").await;
    let id = format!("samples-{}", unique());
    let event_type = format!("repo.pushed.{}", unique());
    let mut definition = json!({
        "id": id, "name": "Reindex on push",
        "trigger": {"kind": "event", "event_type": event_type, "filter": "event.payload.branch == 'main'"},
        "context": [{"name": "push", "kind": "trigger"}],
        "tasks": [{"id": "reindex", "kind": "noop", "for_each": "push.files", "key": "{{ item }}"}]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    definition["trigger"]["filter"] = json!("event.payload.branch in ['main', 'dev']");
    assert_eq!(app.put_definition(&definition).await.1["version"], 2);
    definition["trigger"]["batch"] = json!({"max_size": 10, "max_wait": "1m"});
    definition["tasks"] =
        json!([{"id": "each_push", "kind": "noop", "for_each": "trigger.events", "key": "{{ item.key }}"}]);
    assert_eq!(app.put_definition(&definition).await.1["version"], 3);
    let event = |key: &str, branch: &str| json!({"type": event_type, "key": key, "payload": {"branch": branch, "files": ["a.rs", "b.rs"]}});
    let path = format!("/api/v1/definitions/{id}/diff/behaviour");

    // One by one, in the order given, nothing recorded replayed with `last: 0`.
    let body = json!({"from": 1, "to": 2, "last": 0, "events": [event("m1", "main"), event("d1", "dev")]});
    let (status, diff) = app.call(Method::POST, &path, Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    assert_eq!(
        diff["summary"],
        json!({"replayed": 2, "differing": 1, "fire_changes": 1, "tasks_added": 2, "tasks_removed": 0, "tasks_changed": 0}),
        "{diff:#}"
    );
    let triggers = diff["triggers"].as_array().unwrap();
    assert_eq!(triggers.iter().map(|t| t["recorded"].as_str().unwrap()).collect::<Vec<_>>(), ["sample_event"; 2]);
    assert_eq!(triggers[0]["workflow_id"], format!("tf:{id}:event:m1"));
    assert_eq!(triggers[0]["unchanged"], 2, "{diff:#}");
    assert_eq!(triggers[1]["workflow_id"], format!("tf:{id}:event:d1"));
    assert_eq!(
        (triggers[1]["from"]["fires"].as_bool(), triggers[1]["to"]["fires"].as_bool()),
        (Some(false), Some(true))
    );

    // As one batched run: version 3 makes a task per event, version 2 the last event's files.
    let body = json!({"from": 2, "to": 3, "last": 0, "group": true,
        "events": [event("m1", "main"), event("m2", "main"), event("m3", "main")]});
    let (status, diff) = app.call(Method::POST, &path, Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    let triggers = diff["triggers"].as_array().unwrap();
    assert_eq!(triggers.len(), 1, "{diff:#}");
    assert_eq!(triggers[0]["recorded"], "sample_events");
    assert_eq!(
        (triggers[0]["from"]["tasks"].as_i64(), triggers[0]["to"]["tasks"].as_i64()),
        (Some(2), Some(3)),
        "{diff:#}"
    );
    let added: Vec<&str> =
        triggers[0]["added"].as_array().unwrap().iter().map(|t| t["item_key"].as_str().unwrap()).collect();
    assert_eq!(added, ["m1", "m2", "m3"]);

    // Refused, naming the field.
    for (body, field) in [
        (json!({"events": []}), "from"),
        (json!({"from": 1, "last": 101}), "last"),
        (json!({"from": 0}), "from"),
        (json!({"from": 1, "events": [{"key": "no type"}]}), "events[0]"),
        (json!({"from": 1, "samples": []}), ""),
    ] {
        let (status, refused) = app.call(Method::POST, &path, Some(&body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {refused}");
        let at = refused["error"]["details"][0]["path"].as_str().unwrap_or_default();
        assert!(at.starts_with(field), "{body}: {refused}");
    }
}
