//! A definition fans out into real child workflows, and every step is in the run log.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::StatusCode;
use serde_json::{Value, json};
use taskfactory_orchestrator::{RunActivityWorkflow, TaskWorkflow};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

use crate::support::{TestApp, unique};

fn fanout_definition(id: &str, items: usize) -> Value {
    fanout_definition_in(id, items, "workflow")
}

fn fanout_definition_in(id: &str, items: usize, execution: &str) -> Value {
    let value: Vec<Value> = (0..items).map(|i| json!({"n": i, "name": format!("item-{i}")})).collect();
    json!({
        "id": id,
        "name": "Fan-out test",
        "trigger": {"kind": "manual"},
        "context": [{"name": "items", "kind": "static", "value": value}],
        "tasks": [{"id": "work", "kind": "noop", "for_each": "items", "key": "{{ item.name }}", "params": {"n": "{{ item.n }}"}, "execution": execution}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_25_item_fan_out_completes_with_a_gapless_run_log() {
    let app = TestApp::spawn("fanout").await;
    let id = format!("fanout-{}", unique());
    let (status, body) = app.put_definition(&fanout_definition(&id, 25)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, started) = app.trigger(&id, &json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let workflow_id = started["workflow_id"].as_str().unwrap().to_owned();
    assert!(workflow_id.starts_with(&format!("tf:{id}:manual:")), "{workflow_id}");

    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["definition_id"], id.as_str());
    assert_eq!(run["version_used"], 1);
    assert_eq!(run["tasks_spawned"], 25);
    assert_eq!(run["tasks_completed"], 25);
    assert_eq!(run["tasks_failed"], 0);
    let task_ids: BTreeSet<String> =
        run["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect();
    let expected: BTreeSet<String> = (0..25).map(|i| format!("{workflow_id}/work/item-{i}")).collect();
    assert_eq!(task_ids, expected);
    let params: Vec<&Value> = run["tasks"].as_array().unwrap().iter().map(|t| &t["params"]["n"]).collect();
    assert!(params.iter().all(|n| n.is_number()), "sole-expression params keep their type: {params:?}");

    // The run log: gapless seq from 1, read in pages of 7, with the expected events.
    let events = app.all_events(&workflow_id, 7).await;
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &events {
        *counts.entry(e["type"].as_str().unwrap()).or_default() += 1;
    }
    let expected_counts: BTreeMap<&str, usize> = [
        ("WORKFLOW_STARTED", 1),
        ("CONTEXT_RESOLVED", 1),
        ("PLAN_CREATED", 1),
        ("NODE_STARTED", 25),
        ("NODE_COMPLETED", 25),
        ("WORKFLOW_COMPLETED", 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, expected_counts);
    assert_eq!(events.first().unwrap()["type"], "WORKFLOW_STARTED");
    assert_eq!(events.last().unwrap()["type"], "WORKFLOW_COMPLETED");
    let started_nodes: BTreeSet<String> = events
        .iter()
        .filter(|e| e["type"] == "NODE_STARTED")
        .map(|e| e["node_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(started_nodes, expected);

    // Temporal's own visibility finds the run and its 25 tasks by definition.
    app.wait_for_visibility(&format!("TfDefinitionId = '{id}' AND TfKind = 'run'"), 1).await;
    app.wait_for_visibility(
        &format!("TfDefinitionId = '{id}' AND TfKind = 'task' AND ExecutionStatus = 'Completed'"),
        25,
    )
    .await;
    app.wait_for_visibility(&format!("TfDefinitionId = '{id}' AND TfKind = 'batch'"), 1).await;
    // The run, its one batch (25 tasks fit in one) and the 25 tasks.
    app.wait_for_visibility(&format!("TfDefinitionId = '{id}' AND TfTrigger = 'manual' AND TfVersion = 1"), 27).await;

    // The history of this very run replays against the current workflow code.
    let history = taskfactory::temporal::history_json(&app.client, &workflow_id).await.unwrap();
    let replayer = WorkflowReplayer::new(
        WorkflowReplayerOptions::new()
            .register_workflow::<RunActivityWorkflow>()
            .unwrap()
            .register_workflow::<TaskWorkflow>()
            .unwrap()
            .register_workflow::<taskfactory_orchestrator::TaskBatchWorkflow>()
            .unwrap()
            .build(),
    )
    .unwrap();
    replayer
        .replay_workflow(temporalio_client::WorkflowHistory::from_json(&history).unwrap())
        .await
        .expect("live history replays");

    // A noop task (protocol 2): its memo, and one write: one marker in its history.
    let task_id = expected.iter().next().unwrap().clone();
    let task_history = taskfactory::temporal::history_json(&app.client, &task_id).await.unwrap();
    let text = String::from_utf8_lossy(&task_history);
    assert_eq!(text.matches("MarkerRecordedEventAttributes").count(), 1, "{text}");
    assert!(text.contains("WorkflowPropertiesModified"), "the memo is set: {text}");
    crate::support::save_history_if_asked(
        &history,
        "orchestrator/tests/histories/run_activity_workflow_protocol2.json",
    );
    crate::support::save_history_if_asked(
        &task_history,
        "orchestrator/tests/histories/task_workflow_noop_protocol2.json",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_25_item_fan_out_in_activity_mode_is_one_batch_of_25_activities() {
    let app = TestApp::spawn("fanoutact").await;
    let id = format!("fanoutact-{}", unique());
    let (status, body) = app.put_definition(&fanout_definition_in(&id, 25, "activity")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let workflow_id = app.start_run(&id, &json!({})).await;
    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!((run["tasks_spawned"].clone(), run["tasks_completed"].clone()), (json!(25), json!(25)));
    // The same run log as in workflow mode: every task started and completed once, in order.
    let events = app.assert_log_gapless_each_task_once(&workflow_id, 25).await;
    assert_eq!(events.last().unwrap()["type"], "WORKFLOW_COMPLETED");
    // Each task is one activity of the one batch, named by its task id, with a summary; the
    // rows say where to find it; there is no task workflow.
    let batches = app.assert_each_task_one_activity(&workflow_id, 25).await;
    assert_eq!(batches.len(), 1, "{batches:?}");
    for task in run["tasks"].as_array().unwrap() {
        assert_eq!(
            (task["execution"].as_str(), task["temporal_workflow_id"].as_str()),
            (Some("activity"), Some(batches[0].as_str()))
        );
        assert_eq!(task["output"]["n"], task["params"]["n"], "a noop's output is its params: {task}");
        assert_eq!(task["attempt"], 1);
    }
    app.wait_for_visibility(&format!("TfDefinitionId = '{id}' AND TfKind = 'task'"), 0).await;
    app.wait_for_visibility(&format!("TfDefinitionId = '{id}' AND TfKind = 'batch'"), 1).await;
    let run_history = taskfactory::temporal::history_json(&app.client, &workflow_id).await.unwrap();
    let batch_history = taskfactory::temporal::history_json(&app.client, &batches[0]).await.unwrap();
    // The batch records nothing itself for own kinds (the activities do), and its history
    // holds no task's output.
    let text = String::from_utf8_lossy(&batch_history);
    assert_eq!(text.matches("ActivityTaskCompletedEventAttributes").count(), 25);
    crate::support::save_history_if_asked(
        &run_history,
        "orchestrator/tests/histories/run_activity_workflow_activity_mode.json",
    );
    crate::support::save_history_if_asked(
        &batch_history,
        "orchestrator/tests/histories/task_batch_workflow_activity_mode.json",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_25_item_fan_out_in_local_mode_runs_as_local_activities_of_one_batch() {
    let app = TestApp::spawn("fanoutlocal").await;
    let id = format!("fanoutlocal-{}", unique());
    let (status, body) = app.put_definition(&fanout_definition_in(&id, 25, "local")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let workflow_id = app.start_run(&id, &json!({})).await;
    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!((run["tasks_spawned"].clone(), run["tasks_completed"].clone()), (json!(25), json!(25)));
    let events = app.assert_log_gapless_each_task_once(&workflow_id, 25).await;
    assert_eq!(events.last().unwrap()["type"], "WORKFLOW_COMPLETED");
    let batch = format!("{workflow_id}/~batch/work/0");
    for task in run["tasks"].as_array().unwrap() {
        assert_eq!(
            (task["execution"].as_str(), task["temporal_workflow_id"].as_str()),
            (Some("local"), Some(batch.as_str()))
        );
        assert_eq!(task["output"]["n"], task["params"]["n"], "a noop's output is its params: {task}");
    }
    // No activity task went through the server: each task is a marker of the batch.
    let batch_history = taskfactory::temporal::history_json(&app.client, &batch).await.unwrap();
    let text = String::from_utf8_lossy(&batch_history);
    assert_eq!(text.matches("ActivityTaskScheduledEventAttributes").count(), 0);
    assert_eq!(text.matches("MarkerRecordedEventAttributes").count(), 26, "loading the batch, then one per task");
    crate::support::save_history_if_asked(
        &batch_history,
        "orchestrator/tests/histories/task_batch_workflow_local_mode.json",
    );

    // `local` runs taskfactory's own kinds only.
    let human = json!({"id": format!("{id}-h"), "name": "H", "trigger": {"kind": "manual"},
        "tasks": [{"id": "h", "kind": "human", "title": "t", "execution": "local"}]});
    let (status, body) = app.put_definition(&human).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"][0]["path"], "tasks[0].execution", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_run_with_a_key_starts_once() {
    let app = TestApp::spawn("idempotent").await;
    let id = format!("idem-{}", unique());
    assert_eq!(app.put_definition(&fanout_definition(&id, 2)).await.0, StatusCode::CREATED);

    let (first_status, first) = app.trigger(&id, &json!({"key": "nightly-2026-11-22"})).await;
    assert_eq!(first_status, StatusCode::CREATED, "{first}");
    assert_eq!(first["workflow_id"], format!("tf:{id}:manual:nightly-2026-11-22"));
    let (second_status, second) = app.trigger(&id, &json!({"key": "nightly-2026-11-22"})).await;
    assert_eq!(second_status, StatusCode::OK, "{second}");
    assert_eq!(second["started"], false);
    assert_eq!(second["run_id"], first["run_id"]);

    let run = app.wait_for_run(first["workflow_id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "completed");
    // Still deduplicated after the run closed.
    let (third_status, third) = app.trigger(&id, &json!({"key": "nightly-2026-11-22"})).await;
    assert_eq!(third_status, StatusCode::OK, "{third}");
    assert_eq!(third["started"], false);

    let (_, list) = app.call(reqwest::Method::GET, &format!("/api/v1/runs?definition_id={id}"), None).await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 1, "{list}");
    app.wait_for_visibility(&format!("TfDefinitionId = '{id}' AND TfKind = 'run'"), 1).await;
}
