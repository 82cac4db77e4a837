//! Breaking things on purpose: the worker process is SIGKILLed in the middle of a 1,000-task
//! run, three times, and restarted. Every task must complete exactly once and the run log
//! must stay gapless without duplicates.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::support::{TestApp, servers, unique};

pub(crate) fn worker_process(app: &TestApp) -> Child {
    Command::new(env!("CARGO_BIN_EXE_taskfactory"))
        .args(["worker", "--temporal-address", &servers().temporal_address, "--task-queue", app.task_queue()])
        .args(["--database-url", app.database_url(), "--allow-private-targets"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting taskfactory worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_three_times_mid_run_loses_and_repeats_nothing() {
    killed_three_times("crash", "activity").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_three_times_mid_run_of_task_workflows_loses_and_repeats_nothing() {
    killed_three_times("crashwf", "workflow").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_three_times_mid_run_of_local_tasks_loses_and_repeats_nothing() {
    killed_three_times("crashlocal", "local").await;
}

/// 1,001 noop tasks in `execution` mode; the worker is SIGKILLed three times mid-run.
async fn killed_three_times(name: &str, execution: &str) {
    let app = TestApp::spawn_with(name, false).await;
    let id = format!("{name}-{}", unique());
    let items: Vec<Value> = (0..1000).map(|i| json!(i)).collect();
    let definition = json!({"id": id, "name": "Crash", "trigger": {"kind": "manual"},
        "context": [{"name": "items", "kind": "static", "value": items}],
        "tasks": [{"id": "work", "kind": "noop", "for_each": "items", "key": "{{ item }}", "execution": execution},
                  {"id": "end", "kind": "noop", "depends_on": ["work"], "execution": execution}]});
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({"key": "k"})).await;

    let mut worker = worker_process(&app);
    let mut killed_mid_run = 0;
    for threshold in [100, 400, 700] {
        app.wait_for_completed_tasks(&workflow_id, threshold).await;
        let (_, now) = app.call(reqwest::Method::GET, &format!("/api/v1/runs/{workflow_id}"), None).await;
        killed_mid_run += usize::from(now["status"] == "running");
        worker.start_kill().unwrap(); // SIGKILL: no drain, no goodbye.
        worker.wait().await.unwrap();
        worker = worker_process(&app);
    }
    let run = app.wait_for_run_within(&workflow_id, Duration::from_secs(600)).await;
    assert_eq!(run["status"], "completed", "{}", run["error"]);
    assert!(killed_mid_run >= 2, "at least two of the kills hit the running run ({killed_mid_run})");
    assert_eq!(
        (run["tasks_planned"].clone(), run["tasks_completed"].clone(), run["tasks_failed"].clone()),
        (json!(1001), json!(1001), json!(0))
    );

    // Exactly one task workflow (or one activity) per task in Temporal; a gapless log, each
    // task started and finished once.
    if execution == "workflow" {
        app.wait_for_visibility(&format!("TfDefinitionId = '{id}' AND TfKind = 'task'"), 1001).await;
    } else if execution == "local" {
        // No activity task and no task workflow: every task ran inside its batch.
        app.wait_for_visibility(&format!("TfDefinitionId = '{id}' AND TfKind = 'task'"), 0).await;
    } else {
        app.assert_each_task_one_activity(&workflow_id, 1001).await;
        app.wait_for_visibility(&format!("TfDefinitionId = '{id}' AND TfKind = 'task'"), 0).await;
    }
    app.assert_log_gapless_each_task_once(&workflow_id, 1001).await;
}

async fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().expect("running").to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    assert!(sent.success());
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("did not stop within 30 s of SIGTERM")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_api_with_open_streams_and_drains_the_worker() {
    let app = TestApp::spawn("sigterm").await;
    let (url, mut api) = app.api_process().await;
    // A run that waits for a person keeps its stream open indefinitely.
    let assignee = format!("ops-{}", unique());
    let id = format!("sigterm-{}", unique());
    app.put_definition(&crate::support::held_definition(&id, &assignee)).await;
    let workflow_id = app.start_run(&id, &json!({})).await;
    app.waiting_human_task(&assignee).await;
    let mut stream =
        crate::support::SseClient::open(&format!("{url}/api/v1/runs/{workflow_id}/stream"), &app.api_key, None).await;
    while let Some(event) = stream.next().await {
        if event.event.as_deref() == Some("NODE_WAITING") {
            break;
        }
    }
    let status = terminate(&mut api).await;
    assert!(status.success(), "the API exited with {status}");
    assert!(stream.next().await.is_none(), "the open stream was ended by the shutdown");

    // A worker process drains and exits cleanly too (once it says it runs).
    let mut worker = Command::new(env!("CARGO_BIN_EXE_taskfactory"))
        .args(["worker", "--temporal-address", &servers().temporal_address, "--task-queue", app.task_queue()])
        .args(["--database-url", app.database_url()])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut log = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(worker.stderr.take().unwrap()));
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), log.next_line())
            .await
            .expect("the worker never said it runs")
            .unwrap();
        if line.expect("the worker exited early").contains("worker running") {
            break;
        }
    }
    // Keep reading its log (a full pipe would block it) and show it if the exit is unclean.
    let rest = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Ok(Some(line)) = log.next_line().await {
            lines.push(line);
        }
        lines
    });
    let status = terminate(&mut worker).await;
    let rest = rest.await.unwrap();
    assert!(status.success(), "the worker exited with {status}; its log:\n{}", rest.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_http_request_finish() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A service that takes 3 s to answer: the worker is told to stop while it works.
    let (received_tx, mut received) = tokio::sync::mpsc::unbounded_channel::<()>();
    let answered = Arc::new(AtomicUsize::new(0));
    let done = answered.clone();
    let service = axum::Router::new().route(
        "/slow",
        axum::routing::get(move || async move {
            let _ = received_tx.send(());
            tokio::time::sleep(Duration::from_secs(3)).await;
            done.fetch_add(1, Ordering::SeqCst);
            axum::Json(json!({"ok": true}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, service).await });

    let app = TestApp::spawn_with("drainhttp", false).await;
    let id = format!("drainhttp-{}", unique());
    let definition = json!({"id": id, "name": "Slow", "trigger": {"kind": "manual"},
        "tasks": [{"id": "slow", "kind": "http", "url": format!("{base}/slow"), "timeout": "30s", "retry": {"max_attempts": 3}}]});
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;
    let mut worker = worker_process(&app);
    tokio::time::timeout(Duration::from_secs(60), received.recv()).await.expect("the request was never sent").unwrap();

    let status = terminate(&mut worker).await;
    assert!(status.success(), "the worker exited with {status}");
    assert_eq!(answered.load(Ordering::SeqCst), 1, "the worker waited for the answer before exiting");

    // A new worker finishes the run; the request's result was recorded, so it is not sent again.
    let _worker = worker_process(&app);
    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "completed", "{}", run["error"]);
    assert_eq!(run["tasks"][0]["output"], json!({"status": 200, "body": {"ok": true}}));
    assert_eq!(answered.load(Ordering::SeqCst), 1, "one request in all");
    assert!(received.try_recv().is_err(), "the request was sent once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_run_and_workflow_ids() {
    let app = TestApp::spawn_with("jsonlogs", false).await;
    let id = format!("jsonlogs-{}", unique());
    let definition = json!({"id": id, "name": "Logged", "trigger": {"kind": "manual"},
        "tasks": [{"id": "a", "kind": "noop"}, {"id": "b", "kind": "noop", "depends_on": ["a"]}]});
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;
    let log_path = crate::support::scratch_root().join(format!("worker-{}.log", unique()));
    std::fs::create_dir_all(log_path.parent().unwrap()).unwrap();
    let mut worker = Command::new(env!("CARGO_BIN_EXE_taskfactory"))
        .args([
            "--log-format",
            "json",
            "worker",
            "--temporal-address",
            &servers().temporal_address,
            "--task-queue",
            app.task_queue(),
        ])
        .args(["--database-url", app.database_url()])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("starting taskfactory worker");
    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert!(terminate(&mut worker).await.success());

    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON line: {l}"))).collect();
    let of_run: Vec<&Value> = lines.iter().filter(|l| l["span"]["run"] == workflow_id.as_str()).collect();
    let messages: Vec<&str> = of_run.iter().filter_map(|l| l["fields"]["message"].as_str()).collect();
    for expected in ["run started", "run planned", "run finished"] {
        assert!(messages.contains(&expected), "no {expected:?} line for the run in {text}");
    }
    for line in &of_run {
        // Run-level activities are called by the run's own workflow.
        if line["span"]["name"] == "start_run" || line["span"]["name"] == "finish_run" {
            assert_eq!(line["span"]["workflow_id"], workflow_id.as_str(), "{line}");
            assert_eq!(line["span"]["temporal_run_id"], run["run_id"], "{line}");
        }
        assert!(line["span"]["workflow_id"].as_str().is_some_and(|w| w.starts_with(workflow_id.as_str())), "{line}");
    }
    let _ = std::fs::remove_file(&log_path);
}
