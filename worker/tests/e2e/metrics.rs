//! `GET /metrics`: the API's (open, no key) and a worker process's (`--metrics-addr`) count
//! what really happened: runs, tasks and events of a test's own definitions, the schedule
//! reconciler's repairs, and the Temporal SDK's worker metrics.
//!
//! The registry is process-wide and the tests of this binary run in parallel, so assertions
//! use labels only this test produces (its definition ids, its task queue) or deltas of
//! counters that only grow.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use taskfactory_schemas::validate::parse_definition;
use tokio::process::Command;

use crate::support::{TestApp, eventually, servers, unique};

/// One scrape: every sample as (metric name, labels, value).
struct Scrape(Vec<(String, BTreeMap<String, String>, f64)>);

impl Scrape {
    /// Parses the Prometheus text format (what `prometheus::TextEncoder` writes).
    fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line:?}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a value: {line:?}"));
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => (
                    name.to_owned(),
                    parse_labels(rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line:?}"))),
                ),
            };
            samples.push((name, labels, value));
        }
        Self(samples)
    }

    /// The sum of the samples of `name` whose labels include all of `labels` (0 when none).
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Whether any sample's name starts with `prefix` and its labels include `labels`.
    fn has(&self, prefix: &str, labels: &[(&str, &str)]) -> bool {
        self.0.iter().any(|(n, l, _)| {
            n.starts_with(prefix) && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

/// `a="x",b="y"` (values may hold escaped quotes and backslashes).
fn parse_labels(raw: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = raw.chars().peekable();
    while chars.peek().is_some() {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "label {name:?} in {raw:?}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => panic!("dangling escape in {raw:?}"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(name.trim_start_matches(',').to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}

/// `GET {base}/metrics` without any key; asserts 200 and the text format.
async fn scrape(base: &str) -> Scrape {
    let response = reqwest::get(format!("{base}/metrics")).await.expect("GET /metrics");
    assert_eq!(response.status(), StatusCode::OK, "/metrics needs no key");
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    Scrape::parse(&response.text().await.unwrap())
}

/// Scrapes `base` until `ready` holds (deadline 60 s); returns that scrape.
async fn scrape_until(base: &str, what: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    eventually(Duration::from_secs(60), format!("{base}/metrics to show {what}"), || async {
        let response = match reqwest::get(format!("{base}/metrics")).await {
            Ok(response) if response.status() == StatusCode::OK => response,
            Ok(response) => return Err(format!("status {}", response.status())),
            Err(e) => return Err(e.to_string()),
        };
        let scrape = Scrape::parse(&response.text().await.unwrap());
        if ready(&scrape) { Ok(scrape) } else { Err(format!("{} samples, not showing {what}", scrape.0.len())) }
    })
    .await
}

/// A closed local port: requests to it are refused at once.
async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_metrics_count_runs_tasks_events_and_repairs_by_definition() {
    let app = TestApp::spawn("metrics").await;
    let before = scrape(&app.api_url).await;

    // A manual run: two noop tasks complete, an http task fails, its dependent is skipped.
    let manual = format!("metrics-{}", unique());
    let definition = json!({
        "id": manual, "name": "Metrics", "trigger": {"kind": "manual"}, "failure_policy": "continue",
        "context": [{"name": "items", "kind": "static", "value": ["a", "b"]}],
        "tasks": [
            {"id": "ok", "kind": "noop", "for_each": "items", "key": "{{ item }}"},
            {"id": "boom", "kind": "http", "url": refused_url().await, "retry": {"max_attempts": 1}},
            {"id": "after", "kind": "noop", "depends_on": ["boom"]}
        ]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&manual, &json!({})).await;
    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "failed", "{run}");

    // Events: one starts a run, the same again is a duplicate, one is filtered out.
    let on_event = format!("metricsev-{}", unique());
    let event_type = format!("metrics.pushed.{}", unique());
    let definition = json!({
        "id": on_event, "name": "Metrics events",
        "trigger": {"kind": "event", "event_type": event_type, "filter": "event.payload.branch == 'main'"},
        "tasks": [{"id": "t", "kind": "noop"}]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let event = json!({"type": event_type, "key": "k1", "payload": {"branch": "main"}});
    let filtered = json!({"type": event_type, "key": "k2", "payload": {"branch": "dev"}});
    for (body, expected) in [(&event, "accepted"), (&event, "duplicate"), (&filtered, "filtered")] {
        let (status, answer) = app.call(Method::POST, "/api/v1/events", Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["results"][0]["outcomes"][0]["outcome"], expected, "{answer}");
    }
    let (status, _) = app.call(Method::POST, "/api/v1/events", Some(&json!([event, {"payload": {}}]))).await;
    assert_eq!(status, StatusCode::OK, "a batch with one invalid event");
    app.wait_for_run(&format!("tf:{on_event}:event:k1")).await;

    // A cron definition saved behind the API's back: the reconciler creates its schedule.
    let cron = parse_definition(json!({"id": format!("metricscron-{}", unique()), "name": "Nightly",
        "trigger": {"kind": "cron", "cron": ["0 3 * * *"], "timezone": "UTC"}, "tasks": [{"id": "t", "kind": "noop"}]}))
    .unwrap();
    app.store.put_definition(&cron).await.unwrap();
    let (status, body) = app.call(Method::POST, "/api/v1/schedules/reconcile", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["repairs"], json!([{"schedule_id": format!("tf:{}", cron.id), "action": "created"}]));
    taskfactory_api::schedules::delete(&app.client, &cron.id).await.unwrap();

    let after = scrape(&app.api_url).await;
    let m = manual.as_str();
    assert_eq!(after.sum("taskfactory_runs_started_total", &[("definition_id", m), ("trigger", "manual")]), 1.0);
    assert_eq!(after.sum("taskfactory_runs_finished_total", &[("definition_id", m), ("status", "failed")]), 1.0);
    assert_eq!(after.sum("taskfactory_runs_finished_total", &[("definition_id", m)]), 1.0, "finished once");
    let tasks = |kind: &str, status: &str| {
        after.sum("taskfactory_tasks_finished_total", &[("definition_id", m), ("kind", kind), ("status", status)])
    };
    assert_eq!((tasks("noop", "completed"), tasks("http", "failed"), tasks("noop", "skipped")), (2.0, 1.0, 1.0));

    let e = on_event.as_str();
    let outcome = |o: &str| after.sum("taskfactory_event_outcomes_total", &[("definition_id", e), ("outcome", o)]);
    assert_eq!(
        (outcome("accepted"), outcome("duplicate"), outcome("filtered"), outcome("error")),
        (1.0, 2.0, 1.0, 0.0)
    );
    assert_eq!(after.sum("taskfactory_runs_started_total", &[("definition_id", e), ("trigger", "event")]), 1.0);
    assert_eq!(after.sum("taskfactory_runs_finished_total", &[("definition_id", e), ("status", "completed")]), 1.0);

    // Series without a definition label: other tests add to them too, so at least ours.
    let grew = |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    assert!(grew("taskfactory_events_received_total", &[("status", "accepted")]) >= 4.0);
    assert!(grew("taskfactory_events_received_total", &[("status", "invalid")]) >= 1.0);
    assert!(grew("taskfactory_schedule_reconcile_actions_total", &[("action", "created")]) >= 1.0);
    // Trace writes, one observation per transaction: task results of two runs (concurrent
    // results of one run may share a transaction, TaskLog), and the two runs' ends.
    assert!(grew("taskfactory_trace_write_seconds_count", &[("op", "task_finished")]) >= 2.0);
    assert!(grew("taskfactory_trace_write_seconds_count", &[("op", "finish_run")]) >= 2.0);
    assert!(after.sum("taskfactory_trace_write_seconds_bucket", &[("op", "start_run"), ("le", "+Inf")]) >= 2.0);

    // The in-process worker's SDK metrics are in the same registry (as in `taskfactory dev`).
    let queue = app.task_queue();
    // (Its noop and http tasks ran as activities of their batches: batch workflows completed.)
    assert!(
        after
            .sum("temporal_workflow_completed_total", &[("task_queue", queue), ("workflow_type", "TaskBatchWorkflow")])
            >= 1.0,
        "SDK metrics of this test's worker"
    );
    assert!(after.has("temporal_activity_execution_latency_seconds", &[("task_queue", queue)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_serves_sdk_and_task_metrics_on_its_metrics_addr() {
    let app = TestApp::spawn_with("metricsworker", false).await;
    let port = taskfactory::devstack::server_port().unwrap();
    let _worker = Command::new(env!("CARGO_BIN_EXE_taskfactory"))
        .args(["worker", "--temporal-address", &servers().temporal_address, "--task-queue", app.task_queue()])
        .args(["--database-url", app.database_url(), "--metrics-addr", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting taskfactory worker");
    let base = format!("http://127.0.0.1:{port}");

    let id = format!("metricsw-{}", unique());
    let definition = json!({"id": id, "name": "Worker metrics", "trigger": {"kind": "manual"},
        "context": [{"name": "items", "kind": "static", "value": [1, 2, 3]}],
        "tasks": [{"id": "t", "kind": "noop", "for_each": "items", "key": "{{ item }}"}]});
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;
    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "completed", "{run}");

    // The process is the worker alone: its figures are exact.
    let queue = app.task_queue();
    let scrape = scrape_until(&base, "the run's tasks and the SDK's workflow completions", |s| {
        s.sum("taskfactory_runs_finished_total", &[("definition_id", &id)]) == 1.0
            && s.sum(
                "temporal_workflow_completed_total",
                &[("task_queue", queue), ("workflow_type", "RunActivityWorkflow")],
            ) == 1.0
    })
    .await;
    assert_eq!(
        scrape.sum(
            "taskfactory_tasks_finished_total",
            &[("definition_id", &id), ("kind", "noop"), ("status", "completed")]
        ),
        3.0
    );
    assert_eq!(scrape.sum("taskfactory_runs_started_total", &[("definition_id", &id), ("trigger", "manual")]), 1.0);
    // Three noop tasks in activity mode: one batch workflow, no task workflows.
    assert_eq!(
        scrape
            .sum("temporal_workflow_completed_total", &[("task_queue", queue), ("workflow_type", "TaskBatchWorkflow")]),
        1.0
    );
    assert_eq!(
        scrape.sum("temporal_workflow_completed_total", &[("task_queue", queue), ("workflow_type", "TaskWorkflow")]),
        0.0
    );
    assert!(scrape.sum("temporal_worker_start_total", &[("task_queue", queue)]) >= 1.0, "SDK worker metrics");
    assert!(
        scrape.has(
            "temporal_workflow_task_execution_latency_seconds",
            &[("task_queue", queue), ("namespace", "default")]
        )
    );
    // Only the worker's side: event ingress is the API's.
    assert!(!scrape.has("taskfactory_events_received_total", &[]));
    // One observation per transaction: concurrent task writes of a run may share one (TaskLog).
    assert!(scrape.sum("taskfactory_trace_write_seconds_count", &[("op", "task_finished")]) >= 1.0);

    // The metrics listener serves nothing else.
    let other = reqwest::get(format!("{base}/api/v1/runs")).await.unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
}
