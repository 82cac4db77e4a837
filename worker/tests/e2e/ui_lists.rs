//! The runs list (filters, durations, paging) and a definition page's duration chart in a real
//! browser (scenarios in `ui-tests/lists.js`).

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, held_definition, unique};
use crate::ui::Browser;

/// Defines `id` (manual, one noop task), runs it `completed` times, then makes its task fail
/// (a new version: an HTTP call to a closed port, no retry) and runs it once more. Each run is
/// waited for before the next starts, so their start times are distinct. Answers the
/// definition's runs as `GET /api/v1/runs` lists them (newest first).
async fn runs_of(app: &TestApp, id: &str, completed: usize) -> Vec<Value> {
    let mut definition =
        json!({"id": id, "name": "Chart", "trigger": {"kind": "manual"}, "tasks": [{"id": "a", "kind": "noop"}]});
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    for _ in 0..completed {
        let run = app.wait_for_run(&app.start_run(id, &json!({})).await).await;
        assert_eq!(run["status"], "completed", "{run}");
    }
    definition["tasks"] =
        json!([{"id": "a", "kind": "http", "url": "http://127.0.0.1:1/refused", "retry": {"max_attempts": 1}}]);
    let (status, answer) = app.put_definition(&definition).await;
    assert!(status.is_success(), "{answer}");
    let run = app.wait_for_run(&app.start_run(id, &json!({})).await).await;
    assert_eq!(run["status"], "failed", "{run}");
    let (status, page) = app.call(Method::GET, &format!("/api/v1/runs?definition_id={id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["runs"].as_array().unwrap().clone()
}

/// finished_at − fired_at of a finished run, in ms.
fn duration_ms(run: &Value) -> i64 {
    let at = |field: &str| run[field].as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
    (at("finished_at") - at("fired_at")).num_milliseconds()
}

fn ids(runs: &[Value]) -> Vec<&str> {
    runs.iter().map(|r| r["workflow_id"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definitions_page_charts_its_runs_durations_and_outcomes() {
    let app = TestApp::spawn("uilists").await;
    let id = format!("uichart-{}", unique());
    let runs = runs_of(&app, &id, 3).await;
    assert_eq!(runs.len(), 4);
    let empty = format!("uichart-empty-{}", unique());
    let definition =
        json!({"id": empty, "name": "Idle", "trigger": {"kind": "manual"}, "tasks": [{"id": "a", "kind": "noop"}]});
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);

    let seen = Browser::start("chart", &app, &json!({"id": id, "empty": empty}).to_string()).report().await;
    assert_eq!(seen["none"], "no runs yet", "{seen}");
    // One mark per run, oldest first (the newest is drawn on top), each linking to its run.
    let mut marks: Vec<(String, String)> = seen["marks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_str().unwrap().to_owned(), m["status"].as_str().unwrap().to_owned()))
        .collect();
    marks.reverse();
    let expected: Vec<(String, String)> = runs
        .iter()
        .map(|r| (r["workflow_id"].as_str().unwrap().to_owned(), r["status"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(marks, expected, "{seen}");
    assert_eq!(expected.iter().filter(|(_, s)| s == "failed").count(), 1);
    for mark in seen["marks"].as_array().unwrap() {
        let id = mark["id"].as_str().unwrap();
        assert_eq!(mark["href"], format!("#/runs/{}", urlencoding(id)), "{mark}");
        let title = mark["title"].as_str().unwrap();
        assert!(title.contains(id) && title.contains(mark["status"].as_str().unwrap()), "{mark}");
    }
    // Not by colour alone: a failed run has another shape than a completed one.
    let shape = |status: &str| {
        seen["marks"].as_array().unwrap().iter().find(|m| m["status"] == status).unwrap()["shape"].clone()
    };
    assert_ne!(shape("completed"), shape("failed"), "{seen}");

    let stats = &seen["stats"];
    assert_eq!(stats["successRate"], 0.75, "{seen}");
    assert_eq!(stats["count"], 4, "{seen}");
    let (p50, p95) = (stats["p50"].as_f64().unwrap(), stats["p95"].as_f64().unwrap());
    assert!(0.0 <= p50 && p50 <= p95, "{seen}");
    // Nearest rank over the 4 finished runs: p50 is the 2nd shortest, p95 the longest.
    let mut durations: Vec<i64> = runs.iter().map(duration_ms).collect();
    durations.sort_unstable();
    assert!((p50 as i64 - durations[1]).abs() <= 1, "{seen} vs {durations:?}");
    assert!((p95 as i64 - durations[3]).abs() <= 1, "{seen} vs {durations:?}");
    assert!(stats["text"].as_str().unwrap().contains("75 %"), "{seen}");
    let legend = seen["legend"].as_str().unwrap();
    assert!(legend.contains("completed: 3") && legend.contains("failed: 1"), "{seen}");
    assert_eq!(seen["axes"], json!(["start time", "duration (s)"]), "{seen}");
    assert_eq!(
        seen["hash"],
        format!("#/runs/{}", runs[0]["workflow_id"].as_str().unwrap()),
        "a mark opens its run: {seen}"
    );
}

/// The id as `encodeURIComponent` writes it (workflow ids use letters, digits, `-` and `:`).
fn urlencoding(id: &str) -> String {
    id.replace(':', "%3A")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_list_filters_by_status_and_pages_with_a_cursor() {
    let app = TestApp::spawn("uilists").await;
    let id = format!("uirunslist-{}", unique());
    let runs = runs_of(&app, &id, 3).await;
    let failed: Vec<&Value> = runs.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!((runs.len(), failed.len()), (4, 1));

    let seen = Browser::start("runs_list", &app, &json!({"id": id}).to_string()).report().await;
    let shown = |rows: &Value| -> Vec<String> {
        rows.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(shown(&seen["all"]), ids(&runs), "newest first: {seen}");
    // Every duration is the API's finished_at − fired_at (to the ms the browser can read).
    for (row, run) in seen["all"].as_array().unwrap().iter().zip(&runs) {
        assert_eq!(row["status"], run["status"], "{row}");
        let ms = row["ms"].as_i64().unwrap();
        assert!(ms >= 0 && (ms - duration_ms(run)).abs() <= 1, "{row} vs {run}");
        assert!(!row["duration"].as_str().unwrap().contains("running"), "{row}");
    }
    assert_eq!(shown(&seen["failed"]), [failed[0]["workflow_id"].as_str().unwrap()], "{seen}");
    assert_eq!(seen["failedHash"], format!("#/runs?definition_id={id}&status=failed"), "{seen}");
    let reloaded = &seen["reloaded"];
    assert_eq!(shown(&reloaded["rows"]), shown(&seen["failed"]), "the filters survive a reload: {seen}");
    assert_eq!(
        (&reloaded["status"], &reloaded["trigger"], &reloaded["definition"]),
        (&json!("failed"), &json!(""), &json!(id))
    );

    // Pages of 2: the newest two, Older to the next two, Newer back.
    assert_eq!(seen["first"], json!({"rows": ids(&runs[..2]), "newer": true, "older": false}), "{seen}");
    assert_eq!(seen["second"]["rows"], json!(ids(&runs[2..])), "{seen}");
    assert_eq!(seen["second"]["newer"], false, "{seen}");
    assert_eq!(seen["back"], seen["first"], "{seen}");

    // A `since` typed into the datetime input is written to the hash in UTC: no run is that new.
    let future = &seen["future"];
    assert!(future["hash"].as_str().unwrap().contains("since=2099-"), "{seen}");
    assert!(future["hash"].as_str().unwrap().ends_with('Z'), "RFC 3339 UTC: {seen}");
    assert_eq!(future["rows"], json!([]), "{seen}");
    assert_eq!(future["input"], "2099-01-01T00:00", "{seen}");

    // A bad filter shows the API's message, not a blank page.
    let error = seen["error"].as_str().unwrap();
    assert!(error.contains("status") && error.contains("bogus"), "{seen}");
    let (status, _) = app.call(Method::GET, "/api/v1/runs?status=bogus", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_list_ticks_an_open_runs_duration_and_follows_it_live() {
    let app = TestApp::spawn("uilists").await;
    let assignee = format!("ops-{}", unique());
    let id = format!("uiruns-live-{}", unique());
    assert_eq!(app.put_definition(&held_definition(&id, &assignee)).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;
    let human = app.waiting_human_task(&assignee).await["id"].as_str().unwrap().to_owned();

    let mut browser = Browser::start("runs_live", &app, &id);
    let running = browser.report().await;
    let (before, ticked) = (&running["before"], &running["ticked"]);
    assert!(before["text"].as_str().unwrap().starts_with("running for "), "{running}");
    assert!(ticked["ms"].as_i64().unwrap() >= before["ms"].as_i64().unwrap() + 1000, "{running}");
    assert!(ticked["text"].as_str().unwrap().starts_with("running for "), "{running}");
    // Nobody reloads the page: the stream's run change redraws the row.
    let (status, answer) =
        app.call(Method::POST, &format!("/api/v1/human-tasks/{human}/complete"), Some(&json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let done = browser.report().await;
    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    let ms = done["after"]["ms"].as_i64().unwrap();
    assert!((ms - duration_ms(&run)).abs() <= 1, "{done} vs {run}");
    assert!(!done["after"]["text"].as_str().unwrap().contains("running"), "{done}");
    assert_eq!(done["reloaded"], false, "{done}");
}
