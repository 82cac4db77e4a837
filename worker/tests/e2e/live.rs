//! The live read API: streams that resume without losing or repeating an event, across API
//! restarts and API processes; filters, cursors, the graph, external jobs.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{SseClient, SseEvent, TestApp, eventually, held_definition, unique};

async fn read_until(stream: &mut SseClient, event_type: &str) -> Vec<SseEvent> {
    let mut seen = Vec::new();
    while let Some(event) = stream.next().await {
        let done = event.event.as_deref() == Some(event_type);
        seen.push(event);
        if done {
            break;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_resumes_with_last_event_id_across_an_api_restart() {
    let app = TestApp::spawn("resume").await;
    let assignee = format!("ops-{}", unique());
    let id = format!("held-{}", unique());
    assert_eq!(app.put_definition(&held_definition(&id, &assignee)).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;

    // API A: read live until the run waits for a person, then A goes away.
    let (api_a, stop_a) = app.spawn_api().await;
    let mut stream = SseClient::open(&format!("{api_a}/api/v1/runs/{workflow_id}/stream"), &app.api_key, None).await;
    let first = read_until(&mut stream, "NODE_WAITING").await;
    let last_id = first.last().unwrap().id.clone().unwrap();
    drop(stream);
    drop(stop_a);

    // The run goes on while nobody listens.
    let human = app.waiting_human_task(&assignee).await;
    let human_id = human["id"].as_str().unwrap().to_owned();

    // API B, a fresh process-equivalent with its own listener: resume after the last id seen.
    let (api_b, _stop_b) = app.spawn_api().await;
    let mut stream =
        SseClient::open(&format!("{api_b}/api/v1/runs/{workflow_id}/stream"), &app.api_key, Some(&last_id)).await;
    let (complete_path, empty) = (format!("/api/v1/human-tasks/{human_id}/complete"), json!({}));
    let complete = app.call(Method::POST, &complete_path, Some(&empty));
    let (rest, (status, _)) = tokio::join!(read_until(&mut stream, "WORKFLOW_COMPLETED"), complete);
    assert_eq!(status, StatusCode::OK);
    assert!(stream.next().await.is_none(), "the stream ends after the run's final event");

    let seqs: Vec<i64> = first.iter().chain(rest.iter()).map(|e| e.id.as_ref().unwrap().parse().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "no event lost or repeated");
    let all = app.all_events(&workflow_id, 1000).await;
    assert_eq!(all.len(), seqs.len());
    let data: Value = serde_json::from_str(&rest.last().unwrap().data).unwrap();
    assert_eq!(data["type"], "WORKFLOW_COMPLETED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_processes_serve_the_same_stream() {
    let app = TestApp::spawn("twoapis").await;
    let ((one, _p1), (two, _p2)) = tokio::join!(app.api_process(), app.api_process());
    let id = format!("two-{}", unique());
    let items: Vec<Value> = (0..20).map(|i| json!(i)).collect();
    let definition = json!({"id": id, "name": "Two", "trigger": {"kind": "manual"},
        "context": [{"name": "items", "kind": "static", "value": items}],
        "tasks": [{"id": "t", "kind": "noop", "for_each": "items"}]});
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let mut runs = SseClient::open(&format!("{one}/api/v1/stream"), &app.api_key, None).await;
    // Trigger through process one with a known key, stream it from both.
    let workflow_id = format!("tf:{id}:manual:k");
    let response =
        app.http.post(format!("{one}/api/v1/definitions/{id}/runs")).json(&json!({"key": "k"})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    // The run row appears once the worker records the start; the streams begin then.
    eventually(Duration::from_secs(30), "the run row on process two", || async {
        match app.http.get(format!("{two}/api/v1/runs/{workflow_id}")).send().await.unwrap().status() {
            StatusCode::OK => Ok(()),
            status => Err(format!("GET answered {status}")),
        }
    })
    .await;
    let mut a = SseClient::open(&format!("{one}/api/v1/runs/{workflow_id}/stream"), &app.api_key, None).await;
    let mut b = SseClient::open(&format!("{two}/api/v1/runs/{workflow_id}/stream"), &app.api_key, None).await;
    let (from_one, from_two) =
        tokio::join!(read_until(&mut a, "WORKFLOW_COMPLETED"), read_until(&mut b, "WORKFLOW_COMPLETED"));
    let ids = |events: &[SseEvent]| events.iter().map(|e| e.id.clone().unwrap()).collect::<Vec<_>>();
    assert_eq!(ids(&from_one), ids(&from_two));
    assert_eq!(from_one.len(), 4 + 2 * 20);
    assert_eq!(from_one, from_two);

    // The global stream announced the run's changes.
    let mut types = BTreeSet::new();
    while !types.contains("WORKFLOW_COMPLETED") {
        let event = runs.next().await.expect("global stream");
        let change: Value = serde_json::from_str(&event.data).unwrap();
        if change["workflow_id"] == workflow_id.as_str() {
            types.extend(change["types"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()));
        }
    }
    assert!(types.contains("WORKFLOW_STARTED") && types.contains("PLAN_CREATED"), "{types:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_filter_and_page_and_the_graph_shows_tasks_and_external_jobs() {
    let app = TestApp::spawn("readapi").await;
    let id = format!("read-{}", unique());
    let definition = json!({"id": id, "name": "Read", "trigger": {"kind": "manual"},
        "context": [{"name": "items", "kind": "static", "value": [1, 2, 3]}],
        "tasks": [{"id": "fan", "kind": "noop", "for_each": "items"}, {"id": "after", "kind": "noop", "depends_on": ["fan"]}]});
    app.put_definition(&definition).await;
    let mut ids = Vec::new();
    for key in ["r1", "r2", "r3"] {
        let (_, started) = app.trigger(&id, &json!({"key": key})).await;
        ids.push(started["workflow_id"].as_str().unwrap().to_owned());
    }
    for w in &ids {
        app.wait_for_run(w).await;
    }

    // Cursor pages of 2: three runs, each once, newest first.
    let (_, page1) =
        app.call(Method::GET, &format!("/api/v1/runs?definition_id={id}&limit=2&trigger=manual"), None).await;
    let next = page1["next"].as_str().expect("a next cursor").to_owned();
    let (_, page2) =
        app.call(Method::GET, &format!("/api/v1/runs?definition_id={id}&limit=2&cursor={next}"), None).await;
    let listed: Vec<&str> = page1["runs"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["runs"].as_array().unwrap())
        .map(|r| r["workflow_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed.iter().collect::<BTreeSet<_>>(),
        ids.iter().map(String::as_str).collect::<BTreeSet<_>>().iter().collect()
    );
    assert_eq!(listed.len(), 3);
    let (_, none) = app.call(Method::GET, &format!("/api/v1/runs?definition_id={id}&trigger=schedule"), None).await;
    assert_eq!(none["runs"], json!([]));
    let (_, future) =
        app.call(Method::GET, &format!("/api/v1/runs?definition_id={id}&since=2999-01-01T00:00:00Z"), None).await;
    assert_eq!(future["runs"], json!([]));
    let (status, body) = app.call(Method::GET, "/api/v1/runs?cursor=zz", None).await;
    assert_eq!(
        (status, body["error"]["details"][0]["path"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("cursor"))
    );

    // A queue worker outside Temporal reports its jobs into the run.
    let run = &ids[0];
    let jobs = json!([
        {"type": "job_started", "job_id": "resize-1", "message": "resizing"},
        {"type": "job_log", "job_id": "resize-1", "message": "50%"},
        {"type": "job_finished", "job_id": "resize-1"},
        {"type": "job_failed", "job_id": "resize-2", "message": "disk full"}
    ]);
    let (status, body) = app.call(Method::POST, &format!("/api/v1/runs/{run}/external-events"), Some(&jobs)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["new"], 4);
    let (_, again) = app.call(Method::POST, &format!("/api/v1/runs/{run}/external-events"), Some(&jobs)).await;
    assert_eq!(again["new"], 0, "a retried report adds nothing");
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/runs/{run}/external-events"),
            Some(&json!([{"type": "job_exploded", "job_id": "x"}])),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"][0]["path"], "[0].type");

    let (_, graph) = app.call(Method::GET, &format!("/api/v1/runs/{run}/graph"), None).await;
    assert_eq!(graph["edges"], json!([{"from": "fan", "to": "after"}]));
    assert_eq!(graph["groups"][0]["counts"], json!({"completed": 3}));
    assert_eq!(graph["nodes"].as_array().unwrap().len(), 4);
    assert!(
        graph["nodes"].as_array().unwrap().iter().all(|n| n["status"] == "completed" && n["started_at"].is_string())
    );
    let external: Vec<(&str, &str)> = graph["external"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["id"].as_str().unwrap(), j["status"].as_str().unwrap()))
        .collect();
    assert_eq!(external, [("job:resize-1", "completed"), ("job:resize-2", "failed")]);
    let (_, collapsed) = app.call(Method::GET, &format!("/api/v1/runs/{run}/graph?expand_up_to=2"), None).await;
    assert_eq!(collapsed["groups"][0]["collapsed"], true);
    assert_eq!(collapsed["nodes"].as_array().unwrap().len(), 1, "only the small group's task is listed");
}
