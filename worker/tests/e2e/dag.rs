//! The task DAG: parallel branches with output passing, failure policies, `max_parallel`, and
//! a large fan-out through the batching path.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, unique};
use crate::tasks::spawn_greeter_worker;

fn task<'a>(run: &'a Value, template: &str) -> &'a Value {
    run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["template_id"] == template)
        .unwrap_or_else(|| panic!("no {template} task in {run}"))
}

fn time(task: &Value, field: &str) -> chrono::DateTime<chrono::Utc> {
    task[field].as_str().unwrap_or_else(|| panic!("no {field} in {task}")).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diamond_runs_its_branches_in_parallel_and_passes_outputs() {
    let app = TestApp::spawn("diamond").await;
    let queue = format!("sleepers-{}", unique());
    let _sleepers = spawn_greeter_worker(queue.clone());
    let id = format!("diamond-{}", unique());
    let definition = json!({
        "id": id, "name": "Diamond", "trigger": {"kind": "manual"},
        "tasks": [
            {"id": "fetch", "kind": "noop", "params": {"count": 3, "items": ["a", "b", "c"]}},
            {"id": "left", "kind": "workflow", "workflow_type": "DemoSleeper", "task_queue": queue, "depends_on": ["fetch"],
             "params": {"ms": 1500, "value": "{{ tasks.fetch.output.count }}"}},
            {"id": "right", "kind": "workflow", "workflow_type": "DemoSleeper", "task_queue": queue, "depends_on": ["fetch"],
             "params": {"ms": 1500, "value": "{{ tasks.fetch.output.items | length }}"}},
            {"id": "join", "kind": "noop", "depends_on": ["left", "right"],
             "params": {"sum": "{{ tasks.left.output.value + tasks.right.output.value }}"}},
            {"id": "each", "kind": "noop", "depends_on": ["fetch"], "for_each": "tasks.fetch.output.items", "key": "{{ item }}",
             "params": {"item": "{{ item }}"}}
        ]
    });
    let (status, body) = app.put_definition(&definition).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let workflow_id = app.start_run(&id, &json!({})).await;
    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["tasks_completed"], 7);

    // Output passing, including a fan-out over an upstream output.
    assert_eq!(task(&run, "left")["params"], json!({"ms": 1500, "value": 3}));
    assert_eq!(task(&run, "right")["params"], json!({"ms": 1500, "value": 3}));
    assert_eq!(task(&run, "join")["params"], json!({"sum": 6}));
    assert_eq!(task(&run, "join")["output"], json!({"sum": 6}), "a noop's output is its params");
    let keys: Vec<&str> = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["template_id"] == "each")
        .map(|t| t["item_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a", "b", "c"]);

    // The branches ran at the same time; join started after both.
    let (left, right, join) = (task(&run, "left"), task(&run, "right"), task(&run, "join"));
    assert!(
        time(left, "started_at") < time(right, "finished_at") && time(right, "started_at") < time(left, "finished_at"),
        "{left} {right}"
    );
    assert!(
        time(join, "started_at") >= time(left, "finished_at") && time(join, "started_at") >= time(right, "finished_at")
    );

    // The plan explains the deferred templates, now planned.
    let decisions = run["plan"]["decisions"].as_array().unwrap();
    assert!(decisions.iter().all(|d| d["outcome"] == "spawn"), "{decisions:?}");
    let events = app.all_events(&workflow_id, 1000).await;
    assert_eq!(events.iter().filter(|e| e["type"] == "PLAN_EXTENDED").count(), 4);
}

fn failing_definition(id: &str, queue: &str, policy: &str) -> Value {
    let people: Vec<Value> = ["Ada", "fail", "Bob", "Cy", "Di"].iter().map(|n| json!({"name": n})).collect();
    json!({
        "id": id, "name": "Policies", "trigger": {"kind": "manual"},
        "failure_policy": policy,
        "max_parallel": 1,
        "context": [{"name": "people", "kind": "static", "value": people}],
        "tasks": [
            {"id": "greet", "kind": "workflow", "workflow_type": "DemoGreeter", "task_queue": queue,
             "for_each": "people", "key": "{{ item.name }}", "params": {"name": "{{ item.name }}"}},
            {"id": "independent", "kind": "noop"},
            {"id": "after", "kind": "noop", "depends_on": ["greet"]}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_stops_starting_work_and_continue_does_not() {
    let app = TestApp::spawn("policies").await;
    let queue = format!("greeters-{}", unique());
    let _greeters = spawn_greeter_worker(queue.clone());

    let id = format!("continue-{}", unique());
    app.put_definition(&failing_definition(&id, &queue, "continue")).await;
    let run = app.wait_for_run(&app.start_run(&id, &json!({})).await).await;
    assert_eq!(run["status"], "failed");
    // Every greeting ran but one; the dependent template was skipped.
    assert_eq!(
        (run["tasks_completed"].clone(), run["tasks_failed"].clone(), run["tasks_skipped"].clone()),
        (json!(5), json!(1), json!(1)),
        "{run}"
    );
    // max_parallel = 1: no two tasks overlapped.
    let mut spans: Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["started_at"].is_string())
        .map(|t| (time(t, "started_at"), time(t, "finished_at")))
        .collect();
    spans.sort();
    assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "tasks overlapped: {spans:?}");

    let id = format!("failfast-{}", unique());
    app.put_definition(&failing_definition(&id, &queue, "fail_fast")).await;
    let run = app.wait_for_run(&app.start_run(&id, &json!({})).await).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["tasks_failed"], 1, "{run}");
    let never_started = run["tasks"].as_array().unwrap().iter().filter(|t| t["status"] == "skipped").count();
    assert!(never_started >= 3, "after the failure nothing new starts: {run}");
    assert_eq!(run["tasks_completed"].as_i64().unwrap() + 1 + never_started as i64, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2000_task_fan_out_runs_through_batches_with_a_small_history() {
    let app = TestApp::spawn("bigfanout").await;
    let id = format!("big-{}", unique());
    let items: Vec<Value> = (0..2000).map(|i| json!(i)).collect();
    let definition = json!({
        "id": id, "name": "Big fan-out", "trigger": {"kind": "manual"},
        "context": [{"name": "items", "kind": "static", "value": items}],
        "tasks": [{"id": "work", "kind": "noop", "for_each": "items", "key": "{{ item }}"}]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;
    let run = app.wait_for_run_within(&workflow_id, std::time::Duration::from_secs(600)).await;
    assert_eq!(run["status"], "completed", "{}", run["error"]);
    assert_eq!((run["tasks_planned"].clone(), run["tasks_completed"].clone()), (json!(2000), json!(2000)));
    let events = app.all_events(&workflow_id, 1000).await;
    assert_eq!(events.len(), 4 + 2 * 2000);
    assert!(events.iter().enumerate().all(|(i, e)| e["seq"] == json!(i + 1)), "gapless");
    // One page holds them all when asked for (the run page reads 10,000 at a time).
    let (_, page) = app.call(Method::GET, &format!("/api/v1/runs/{workflow_id}/events?limit=10000"), None).await;
    assert_eq!((page["events"].as_array().map(Vec::len), page["next"].clone()), (Some(4 + 2 * 2000), Value::Null));

    // 8 batches of 250 keep the run's own history small.
    let handle = app.client.get_workflow_handle::<temporalio_common::UntypedWorkflow>(workflow_id.clone());
    let history = handle.describe(Default::default()).await.unwrap().history_length();
    assert!(history < 200, "the run's history has {history} events");
    app.wait_for_visibility(&format!("TfDefinitionId = '{id}' AND TfKind = 'batch'"), 8).await;
}
