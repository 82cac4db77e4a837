//! Run control end to end: cancel through the API while tasks are in flight and a human task
//! waits; an execution timeout and a reset done in Temporal; retrying a failed run reuses what
//! completed (also with the definition's latest version); bad ids and states answer 404/409/422.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode as AxumStatus;
use axum::routing::get;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskfactory_orchestrator::RunActivityWorkflow;
use taskfactory_schemas::DefinitionId;
use taskfactory_schemas::run::{RunInput, TriggerInfo};
use temporalio_client::{WorkflowExecutionStatus, WorkflowStartOptions};
use temporalio_common::UntypedWorkflow;

use crate::operators::temporal_cli;
use crate::support::{TestApp, eventually, save_history_if_asked, unique};

/// A local service: `/hang` never answers (counting arrivals), `/flip` answers 404 until
/// flipped, then 200.
pub(crate) struct Service {
    pub(crate) base: String,
    hung: Arc<AtomicUsize>,
    fixed: Arc<AtomicBool>,
}

pub(crate) async fn spawn_service() -> Service {
    let hung = Arc::new(AtomicUsize::new(0));
    let fixed = Arc::new(AtomicBool::new(false));
    let (h, f) = (hung.clone(), fixed.clone());
    let app = axum::Router::new()
        .route(
            "/hang",
            get(move || async move {
                h.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }),
        )
        .route(
            "/flip",
            get(move || async move {
                if f.load(Ordering::SeqCst) { (AxumStatus::OK, "fixed") } else { (AxumStatus::NOT_FOUND, "not yet") }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Service { base, hung, fixed }
}

fn tasks_by_template(run: &Value) -> BTreeMap<String, Vec<Value>> {
    let mut by = BTreeMap::<String, Vec<Value>>::new();
    for task in run["tasks"].as_array().unwrap() {
        by.entry(task["template_id"].as_str().unwrap().to_owned()).or_default().push(task.clone());
    }
    by
}

async fn temporal_status(app: &TestApp, workflow_id: &str) -> WorkflowExecutionStatus {
    let handle = app.client.get_workflow_handle::<UntypedWorkflow>(workflow_id.to_owned());
    handle.describe(Default::default()).await.unwrap().status()
}

/// Waits (deadline 60 s) until Temporal shows the run's execution in `status`.
async fn wait_for_temporal(app: &TestApp, workflow_id: &str, status: WorkflowExecutionStatus) {
    eventually(Duration::from_secs(60), format!("{workflow_id} {status:?} in Temporal"), || async {
        let shown = temporal_status(app, workflow_id).await;
        if shown == status { Ok(()) } else { Err(format!("{shown:?}")) }
    })
    .await;
}

async fn wait_for_status(app: &TestApp, workflow_id: &str, status: &str) -> Value {
    eventually(Duration::from_secs(60), format!("run {workflow_id} recorded {status}"), || async {
        let (_, run) = app.call(Method::GET, &format!("/api/v1/runs/{workflow_id}"), None).await;
        if run["status"] == status { Ok(run) } else { Err(format!("status {}", run["status"])) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_through_the_api_stops_tasks_in_flight_and_closes_the_waiting_human_task() {
    let app = TestApp::spawn("apicancel").await;
    let service = spawn_service().await;
    let assignee = format!("cancel-{}", unique());
    let id = format!("apicancel-{}", unique());
    let definition = json!({
        "id": id, "name": "Cancel me", "trigger": {"kind": "manual"},
        "tasks": [
            {"id": "approve", "kind": "human", "title": "Approve", "assignee": assignee},
            {"id": "slow", "kind": "http", "url": format!("{}/hang", service.base), "timeout": "60s"},
            {"id": "after", "kind": "noop", "depends_on": ["approve", "slow"]}
        ]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;
    let human = app.waiting_human_task(&assignee).await;
    eventually(Duration::from_secs(60), "the http task in flight", || async {
        service.hung.load(Ordering::SeqCst) > 0
    })
    .await;

    let path = format!("/api/v1/runs/{workflow_id}/cancel");
    let (code, answer) = app.call(Method::POST, &path, Some(&json!({"reason": "wrong invoices"}))).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{answer}");
    assert_eq!((answer["status"].clone(), answer["by"].clone()), (json!("cancelling"), json!("e2e")));

    let run = wait_for_status(&app, &workflow_id, "cancelled").await;
    wait_for_temporal(&app, &workflow_id, WorkflowExecutionStatus::Canceled).await;
    assert_eq!(run["error"], "wrong invoices", "{run}");
    for task in run["tasks"].as_array().unwrap() {
        assert_eq!(task["status"], "cancelled", "no task stays open: {task}");
    }
    let events = app.all_events(&workflow_id, 1000).await;
    assert!(events.iter().enumerate().all(|(i, e)| e["seq"] == json!(i + 1)), "gapless");
    let end = events.last().unwrap();
    assert_eq!(end["type"], "WORKFLOW_CANCELLED", "{events:?}");
    assert_eq!(end["message"], "run cancelled by e2e: wrong invoices");
    assert_eq!(end["payload"]["by"], "e2e");
    assert_eq!(events.iter().filter(|e| e["type"] == "NODE_CANCELLED").count(), 3, "one per task: {events:?}");
    let after = run["tasks"].as_array().unwrap().iter().find(|t| t["template_id"] == "after").unwrap()["id"].clone();
    assert!(!events.iter().any(|e| e["type"] == "NODE_STARTED" && e["node_id"] == after), "no new work started");

    // The cancelled paths of the three workflows, for the replay tests.
    let by = tasks_by_template(&run);
    for (workflow, file) in [
        (workflow_id.clone(), "run_activity_workflow_cancelled"),
        (by["approve"][0]["temporal_workflow_id"].as_str().unwrap().to_owned(), "task_workflow_cancelled"),
        (by["slow"][0]["temporal_workflow_id"].as_str().unwrap().to_owned(), "task_batch_workflow_cancelled"),
    ] {
        let history = taskfactory::temporal::history_json(&app.client, &workflow).await.unwrap();
        save_history_if_asked(&history, &format!("orchestrator/tests/histories/{file}.json"));
    }

    let human_id = human["id"].as_str().unwrap();
    let (_, inbox) = app.call(Method::GET, "/api/v1/human-tasks?status=cancelled", None).await;
    assert!(inbox["human_tasks"].as_array().unwrap().iter().any(|t| t["id"] == human_id), "{inbox}");
    let (code, body) = app
        .call(Method::POST, &format!("/api/v1/human-tasks/{human_id}/complete"), Some(&json!({"payload": {}})))
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");

    // The run's stream ends with its cancellation.
    let url = format!("{}/api/v1/runs/{workflow_id}/stream?after=0", app.api_url);
    let mut stream = crate::support::SseClient::open(&url, &app.api_key, None).await;
    let mut streamed = Vec::new();
    while let Some(e) = stream.next().await {
        streamed.push(e.event.unwrap_or_default());
    }
    assert_eq!(streamed.len(), events.len(), "{streamed:?}");
    assert_eq!(streamed.last().map(String::as_str), Some("WORKFLOW_CANCELLED"));

    // The definition's decision log counts what became of its runs.
    let (_, log) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/decisions"), None).await;
    assert_eq!(log["run_outcomes"], json!({"cancelled": 1}), "{log}");

    // The states are first-class in the list filter.
    let (code, list) = app.call(Method::GET, &format!("/api/v1/runs?definition_id={id}&status=cancelled"), None).await;
    assert_eq!(code, StatusCode::OK, "{list}");
    assert_eq!(list["runs"].as_array().unwrap().len(), 1, "{list}");

    // A second cancel, an unknown run, a bad body.
    let (code, body) = app.call(Method::POST, &path, None).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "run_not_running");
    assert!(body["error"]["message"].as_str().unwrap().contains("is cancelled"), "{body}");
    let (code, _) = app.call(Method::POST, "/api/v1/runs/tf:nope:manual:x/cancel", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, body) = app.call(Method::POST, &path, Some(&json!({"why": "typo"}))).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// Starts a run of definition `id` as an operator would from Temporal itself, with an
/// execution timeout of 4 s; answers its workflow id.
pub(crate) async fn start_timing_out(app: &TestApp, id: &str) -> String {
    let workflow_id = format!("tf:{id}:manual:timeout");
    let input = RunInput {
        definition_id: DefinitionId::parse(id).unwrap(),
        version: None,
        trigger: TriggerInfo::manual(Some("timeout".to_owned()), Value::Null),
        retry_of: None,
    };
    let options = WorkflowStartOptions::new(app.task_queue().to_owned(), workflow_id.clone())
        .execution_timeout(Duration::from_secs(4))
        .build();
    app.client.start_workflow(RunActivityWorkflow::run, input, options).await.unwrap();
    workflow_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_execution_times_out_is_recorded_timed_out() {
    let app = TestApp::spawn("timedout").await;
    let assignee = format!("timeout-{}", unique());
    let id = format!("timedout-{}", unique());
    let definition = crate::support::held_definition(&id, &assignee);
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let workflow_id = start_timing_out(&app, &id).await;
    app.waiting_human_task(&assignee).await;
    let run = wait_for_status(&app, &workflow_id, "timed_out").await;
    assert_eq!(temporal_status(&app, &workflow_id).await, WorkflowExecutionStatus::TimedOut);
    let tasks = tasks_by_template(&run);
    assert_eq!(tasks["a"][0]["status"], "completed", "{run}");
    assert_eq!(
        (tasks["hold"][0]["status"].clone(), tasks["b"][0]["status"].clone()),
        (json!("cancelled"), json!("cancelled"))
    );
    let events = app.all_events(&workflow_id, 1000).await;
    assert_eq!(events.last().unwrap()["type"], "WORKFLOW_TIMED_OUT", "{events:?}");
    let (_, inbox) = app.call(Method::GET, &format!("/api/v1/human-tasks?assignee={assignee}"), None).await;
    assert_eq!(inbox["human_tasks"][0]["status"], "cancelled", "{inbox}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reset_in_temporal_completes_again_without_duplicates() {
    let app = TestApp::spawn("reset").await;
    let id = format!("reset-{}", unique());
    let definition = json!({
        "id": id, "name": "Reset me", "trigger": {"kind": "manual"},
        "context": [{"name": "items", "kind": "static", "value": [1, 2, 3]}],
        "tasks": [
            {"id": "each", "kind": "noop", "for_each": "items", "key": "{{ item }}", "params": {"n": "{{ item }}"}},
            {"id": "own", "kind": "noop", "execution": "workflow", "depends_on": ["each"]}
        ]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;
    let first = app.wait_for_run(&workflow_id).await;
    assert_eq!(first["status"], "completed", "{first}");
    let before = app.all_events(&workflow_id, 1000).await;

    temporal_cli("reset", &workflow_id, &["--type", "FirstWorkflowTask", "--reason", "e2e reset"]).await;
    let run = eventually(Duration::from_secs(60), "the reset run completed and recorded", || async {
        let (_, run) = app.call(Method::GET, &format!("/api/v1/runs/{workflow_id}"), None).await;
        let shown = temporal_status(&app, &workflow_id).await;
        let done = run["resets"] == 1 && run["status"] == "completed" && run["run_id"] != first["run_id"];
        if done && shown == WorkflowExecutionStatus::Completed {
            Ok(run)
        } else {
            Err(format!("resets {} status {}, {shown:?} in Temporal", run["resets"], run["status"]))
        }
    })
    .await;
    assert_eq!(run["tasks"].as_array().unwrap().len(), 4, "no duplicated task: {run}");
    assert!(run["tasks"].as_array().unwrap().iter().all(|t| t["status"] == "completed"), "{run}");
    let events = app.all_events(&workflow_id, 1000).await;
    assert!(events.iter().enumerate().all(|(i, e)| e["seq"] == json!(i + 1)), "gapless");
    assert_eq!(&events[..before.len()], &before[..], "what was recorded stays");
    let added: Vec<&str> = events[before.len()..].iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(added, ["WORKFLOW_RESET", "WORKFLOW_COMPLETED"], "nothing else is recorded twice");
}

/// A run whose `fetch` fails (404) after three `each` tasks completed; `after` depends on it.
pub(crate) fn flaky_definition(id: &str, base: &str, note: &str) -> Value {
    json!({
        "id": id, "name": "Retry me", "trigger": {"kind": "manual"},
        "context": [{"name": "items", "kind": "static", "value": [1, 2, 3]}],
        "tasks": [
            {"id": "each", "kind": "noop", "for_each": "items", "key": "{{ item }}", "params": {"n": "{{ item }}"}},
            {"id": "fetch", "kind": "http", "url": format!("{base}/flip"), "depends_on": ["each"]},
            {"id": "after", "kind": "noop", "depends_on": ["fetch"], "params": {"note": note}}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_a_failed_run_reuses_completed_tasks_and_runs_the_rest() {
    let app = TestApp::spawn("retry").await;
    let service = spawn_service().await;
    let id = format!("retry-{}", unique());
    assert_eq!(app.put_definition(&flaky_definition(&id, &service.base, "v1")).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;
    let failed = app.wait_for_run(&workflow_id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let old = tasks_by_template(&failed);
    assert_eq!(old["fetch"][0]["status"], "failed");
    assert_eq!(old["after"][0]["status"], "skipped");

    // Refused: an unknown run, an unknown task, a running run.
    let (code, _) = app.call(Method::POST, "/api/v1/runs/tf:nope:manual:x/retry", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let path = format!("/api/v1/runs/{workflow_id}/retry");
    let (code, body) = app.call(Method::POST, &path, Some(&json!({"tasks": ["nope"]}))).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"][0]["path"], "tasks[0]", "{body}");
    let (code, body) = app.call(Method::POST, &path, Some(&json!({"version": "newest"}))).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    service.fixed.store(true, Ordering::SeqCst);
    let (code, answer) = app.call(Method::POST, &path, Some(&json!({"key": "fix-1"}))).await;
    assert_eq!(code, StatusCode::CREATED, "{answer}");
    let retry_id = answer["workflow_id"].as_str().unwrap().to_owned();
    assert_eq!(retry_id, format!("{workflow_id}:retry:1"));
    assert_eq!(answer["tasks"]["reused"], 3, "{answer}");
    assert_eq!(answer["tasks"]["rerun"].as_array().unwrap().len(), 2, "{answer}");
    let (code, again) = app.call(Method::POST, &path, Some(&json!({"key": "fix-1"}))).await;
    assert_eq!(
        (code, again["workflow_id"].clone(), again["started"].clone()),
        (StatusCode::OK, json!(retry_id), json!(false))
    );

    let retried = app.wait_for_run(&retry_id).await;
    assert_eq!(retried["status"], "completed", "{retried}");
    assert_eq!(retried["retry_of"], json!(workflow_id));
    let new = tasks_by_template(&retried);
    for (task, old_task) in new["each"].iter().zip(&old["each"]) {
        assert_eq!(task["status"], "completed");
        assert_eq!(task["reused_from"], old_task["id"], "carried over: {task}");
        assert_eq!(task["output"], old_task["output"]);
    }
    assert_eq!(new["fetch"][0]["output"]["body"], "fixed", "{retried}");
    assert!(new["fetch"][0]["reused_from"].is_null());
    assert_eq!(new["after"][0]["status"], "completed");
    let events = app.all_events(&retry_id, 1000).await;
    assert!(events.iter().enumerate().all(|(i, e)| e["seq"] == json!(i + 1)), "gapless");
    for task in &new["each"] {
        let of_task: Vec<&Value> = events.iter().filter(|e| e["node_id"] == task["id"]).collect();
        assert_eq!(of_task.len(), 1, "a reused task is recorded once, never started: {of_task:?}");
        assert_eq!(of_task[0]["payload"]["reused_from"], task["reused_from"]);
    }
    for (workflow, file) in [
        (retry_id.clone(), "run_activity_workflow_retry"),
        (format!("{retry_id}/~batch/each/0"), "task_batch_workflow_reused"),
    ] {
        let history = taskfactory::temporal::history_json(&app.client, &workflow).await.unwrap();
        save_history_if_asked(&history, &format!("orchestrator/tests/histories/{file}.json"));
    }
    let (_, original) = app.call(Method::GET, &format!("/api/v1/runs/{workflow_id}"), None).await;
    assert_eq!(original["retries"], json!([retry_id]));

    // A retry with the latest version: the changed task is named and runs, the rest is reused.
    assert_eq!(app.put_definition(&flaky_definition(&id, &service.base, "v2")).await.0, StatusCode::OK);
    let (code, answer) = app.call(Method::POST, &path, Some(&json!({"version": "latest"}))).await;
    assert_eq!(code, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["version"], 2, "{answer}");
    assert_eq!(answer["tasks"]["changed"], json!(["after/_"]), "{answer}");
    assert_eq!(answer["tasks"]["reused"], 3, "{answer}");
    let latest = app.wait_for_run(answer["workflow_id"].as_str().unwrap()).await;
    assert_eq!(latest["status"], "completed", "{latest}");
    assert_eq!(latest["version_used"], 2);
    let tasks = tasks_by_template(&latest);
    assert_eq!(tasks["after"][0]["params"]["note"], "v2");
    assert!(tasks["each"].iter().all(|t| !t["reused_from"].is_null()), "unchanged tasks reused: {latest}");

    // A running run cannot be retried.
    let assignee = format!("retry-{}", unique());
    let held = format!("held-{}", unique());
    assert_eq!(app.put_definition(&crate::support::held_definition(&held, &assignee)).await.0, StatusCode::CREATED);
    let running = app.start_run(&held, &json!({})).await;
    app.waiting_human_task(&assignee).await;
    let (code, body) = app.call(Method::POST, &format!("/api/v1/runs/{running}/retry"), None).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "run_running");

    // The CLI: cancel it, then retry it (the completed `a` is reused).
    let cancelled = cli(&app, &["runs", "cancel", &running, "--reason", "from the cli"]).await;
    assert_eq!(cancelled.trim(), format!("cancelling: {running} (asked by e2e)"));
    let run = wait_for_status(&app, &running, "cancelled").await;
    assert_eq!(run["error"], "from the cli");
    let retried = cli(&app, &["runs", "retry", &running, "--tasks", "failed"]).await;
    assert!(retried.starts_with(&format!("started: {running}:retry:1 (retry of {running}, version 1)")), "{retried}");
    assert!(retried.contains("reused 1 task(s), running 2 again"), "{retried}");
    let shown = cli(&app, &["runs", &running]).await;
    assert!(shown.contains(&format!("{running}:retry:1")), "`runs WF` still shows a run, with its retries: {shown}");
}

/// Runs the `taskfactory` CLI against the test's API; answers its stdout.
async fn cli(app: &TestApp, args: &[&str]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskfactory"))
        .args(args)
        .args(["--api-url", &app.api_url, "--api-key", &app.api_key])
        .output()
        .await
        .expect("running taskfactory");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "taskfactory {args:?}: {stdout} {}", String::from_utf8_lossy(&output.stderr));
    stdout
}
