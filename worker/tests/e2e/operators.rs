//! What an operator does in Temporal leaves our run log true: a run terminated or cancelled
//! with the Temporal CLI (as from its Web UI) ends `terminated` / `cancelled` in the log, its
//! unfinished tasks and its waiting human task are closed, and the human task can no longer be
//! completed.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestApp, eventually, servers, unique};

/// Runs `temporal workflow <verb> -w <workflow_id> ...` against the test's dev server.
pub(crate) async fn temporal_cli(verb: &str, workflow_id: &str, extra: &[&str]) {
    let binary =
        taskfactory::devstack::find_temporal(std::env::var_os("TEMPORAL_BIN").map(std::path::PathBuf::from).as_deref())
            .unwrap();
    let output = tokio::process::Command::new(binary)
        .args(["workflow", verb, "--address", &servers().temporal_address, "--namespace", "default"])
        .args(["--workflow-id", workflow_id])
        .args(extra)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "temporal workflow {verb}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A run with a human task that waits (no timeout) and a noop after it.
async fn waiting_run(app: &TestApp, name: &str) -> (String, String) {
    let assignee = format!("{name}-{}", unique());
    let id = format!("{name}-{}", unique());
    let definition = json!({
        "id": id, "name": "Waits", "trigger": {"kind": "manual"},
        "tasks": [
            {"id": "approve", "kind": "human", "title": "Approve", "assignee": assignee},
            {"id": "after", "kind": "noop", "depends_on": ["approve"]}
        ]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;
    let task = app.waiting_human_task(&assignee).await;
    (workflow_id, task["id"].as_str().unwrap().to_owned())
}

/// Waits until the log says the run is `status`, then checks what closing it must leave.
async fn assert_closed_as(app: &TestApp, workflow_id: &str, human_id: &str, status: &str, event: &str) {
    let run = eventually(Duration::from_secs(60), format!("run {workflow_id} recorded {status}"), || async {
        let (_, run) = app.call(Method::GET, &format!("/api/v1/runs/{workflow_id}"), None).await;
        if run["status"] == status { Ok(run) } else { Err(format!("status {}", run["status"])) }
    })
    .await;
    assert!(run["finished_at"].is_string(), "{run}");
    for task in run["tasks"].as_array().unwrap() {
        assert_eq!(task["status"], "cancelled", "no task stays open: {task}");
    }
    let events = app.all_events(workflow_id, 1000).await;
    assert_eq!(events.last().unwrap()["type"], event, "{events:?}");
    assert!(events.iter().enumerate().all(|(i, e)| e["seq"] == json!(i + 1)), "gapless");
    assert_eq!(events.iter().filter(|e| e["type"] == "NODE_CANCELLED").count(), 2, "{events:?}");
    let (_, inbox) = app.call(Method::GET, "/api/v1/human-tasks?status=cancelled", None).await;
    assert!(inbox["human_tasks"].as_array().unwrap().iter().any(|t| t["id"] == human_id), "{inbox}");
    let (code, body) = app
        .call(Method::POST, &format!("/api/v1/human-tasks/{human_id}/complete"), Some(&json!({"payload": {}})))
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "a closed run's human task cannot be completed: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_terminated_in_temporal_is_recorded_terminated() {
    let app = TestApp::spawn("terminated").await;
    let (workflow_id, human_id) = waiting_run(&app, "terminated").await;
    temporal_cli("terminate", &workflow_id, &["--reason", "operator"]).await;
    assert_closed_as(&app, &workflow_id, &human_id, "terminated", "WORKFLOW_TERMINATED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cancelled_in_temporal_ends_closed_in_the_log() {
    let app = TestApp::spawn("cancelled").await;
    let (workflow_id, human_id) = waiting_run(&app, "cancelled").await;
    temporal_cli("cancel", &workflow_id, &[]).await;
    // What Temporal shows decides what the log must say.
    let handle = app.client.get_workflow_handle::<temporalio_common::UntypedWorkflow>(workflow_id.clone());
    let shown = eventually(Duration::from_secs(60), "the run closed in Temporal", || async {
        let status = handle.describe(Default::default()).await.unwrap().status();
        if status == temporalio_client::WorkflowExecutionStatus::Running {
            Err(format!("{status:?}"))
        } else {
            Ok(status)
        }
    })
    .await;
    eprintln!("a cancelled run closes in Temporal as {shown:?}");
    assert_eq!(shown, temporalio_client::WorkflowExecutionStatus::Canceled);
    assert_closed_as(&app, &workflow_id, &human_id, "cancelled", "WORKFLOW_CANCELLED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_workflow_terminated_in_temporal_leaves_no_task_open_when_its_run_ends() {
    let app = TestApp::spawn("taskterm").await;
    let (workflow_id, human_id) = waiting_run(&app, "taskterm").await;
    // The human task's own workflow, not the run.
    temporal_cli("terminate", &format!("{workflow_id}/approve/_"), &["--reason", "operator"]).await;
    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "failed", "the run goes on without the task, and fails: {run}");
    let task = |t: &str| run["tasks"].as_array().unwrap().iter().find(|x| x["template_id"] == t).unwrap().clone();
    assert_eq!(task("approve")["status"], "cancelled", "{run}");
    assert!(task("approve")["error"].as_str().unwrap().contains("closed in Temporal"), "{run}");
    assert_eq!(task("after")["status"], "skipped", "{run}");
    let (_, inbox) = app.call(Method::GET, "/api/v1/human-tasks?status=cancelled", None).await;
    assert!(inbox["human_tasks"].as_array().unwrap().iter().any(|t| t["id"] == human_id), "{inbox}");
    let events = app.all_events(&workflow_id, 1000).await;
    assert!(events.iter().enumerate().all(|(i, e)| e["seq"] == json!(i + 1)), "gapless");
    assert_eq!(events.last().unwrap()["type"], "WORKFLOW_FAILED", "{events:?}");
}
