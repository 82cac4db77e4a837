//! The web UI in a real browser (Debian's headless Chromium, driven by `ui-tests/ui.js`
//! through playwright-core): live updates, the replay scrubber, the human task inbox, the
//! trigger decision log, the notifications, the graph and timeline, actions on tasks.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::run_control::{flaky_definition, spawn_service};
use crate::support::{TestApp, authed_client, held_definition, unique};

pub(crate) struct Browser {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Browser {
    /// Starts a scenario of `ui-tests/ui.js`; fails (never skips) when its tools are missing.
    pub(crate) fn start(scenario: &str, app: &TestApp, arg: &str) -> Self {
        Self::start_as(scenario, app, arg, &app.api_key)
    }

    /// [`Self::start`] with the API key `key` in the browser.
    pub(crate) fn start_as(scenario: &str, app: &TestApp, arg: &str, key: &str) -> Self {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui-tests");
        assert!(
            dir.join("node_modules/playwright-core").is_dir(),
            "ui-tests/node_modules is missing: run scripts/test (it runs `npm ci --prefix ui-tests`)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("ui.js"))
            .args([scenario, &app.api_url, arg])
            .env("TF_API_KEY", key)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("running node: install Node.js (scripts/test installs it when missing)");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { _child: child, lines }
    }

    /// The next observation the script reports (deadline 90 s).
    pub(crate) async fn report(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(90), self.lines.next_line())
            .await
            .expect("the browser reported nothing within 90 s")
            .expect("reading the browser's output")
            .expect("the browser scenario failed (see its output above)");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a report: {line}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_page_updates_live_while_the_run_progresses() {
    let app = TestApp::spawn("uilive").await;
    let assignee = format!("ops-{}", unique());
    let id = format!("uilive-{}", unique());
    assert_eq!(app.put_definition(&held_definition(&id, &assignee)).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;
    let human = app.waiting_human_task(&assignee).await["id"].as_str().unwrap().to_owned();

    let mut browser = Browser::start("live", &app, &workflow_id);
    let waiting = browser.report().await;
    assert!(waiting["counters"].as_str().unwrap().contains("waiting: 1"), "{waiting}");
    // Nobody reloads the page: the stream must carry the rest.
    let (status, _) = app.call(Method::POST, &format!("/api/v1/human-tasks/{human}/complete"), Some(&json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    let done = browser.report().await;
    let after = done["after"].as_str().unwrap();
    assert!(after.contains("completed: 3"), "{done}");
    assert!(!after.contains("waiting"), "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_scrubber_shows_an_earlier_state() {
    let app = TestApp::spawn("uireplay").await;
    let id = format!("uireplay-{}", unique());
    let definition = json!({"id": id, "name": "Replay", "trigger": {"kind": "manual"},
        "context": [{"name": "items", "kind": "static", "value": [1, 2, 3]}],
        "tasks": [{"id": "fan", "kind": "noop", "for_each": "items"}, {"id": "after", "kind": "noop", "depends_on": ["fan"]}]});
    app.put_definition(&definition).await;
    let workflow_id = app.start_run(&id, &json!({})).await;
    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "completed");

    let mut browser = Browser::start("replay", &app, &workflow_id);
    let seen = browser.report().await;
    assert!(seen["end"].as_str().unwrap().contains("completed: 4"), "{seen}");
    // After event 3 (PLAN_CREATED) nothing had started yet.
    let early = seen["early"].as_str().unwrap();
    assert!(early.contains("pending: 4") && !early.contains("completed:"), "{seen}");
    assert_eq!(seen["logRows"], 3);
    assert_eq!(seen["completedSquares"], 0);
    assert!(seen["label"].as_str().unwrap().starts_with("event 3 of "), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_cancelled_and_retried_from_its_page() {
    let app = TestApp::spawn("uiactions").await;
    let assignee = format!("ops-{}", unique());
    let id = format!("uiactions-{}", unique());
    app.put_definition(&held_definition(&id, &assignee)).await;
    let workflow_id = app.start_run(&id, &json!({})).await;
    app.waiting_human_task(&assignee).await;

    let mut browser = Browser::start("actions", &app, &workflow_id);
    let seen = browser.report().await;
    assert_eq!(seen["cancelled"], "cancelling (asked by e2e)", "{seen}");
    let (_, run) = app.call(Method::GET, &format!("/api/v1/runs/{workflow_id}"), None).await;
    assert_eq!((run["status"].clone(), run["error"].clone()), (json!("cancelled"), json!("cancelled from the web UI")));
    let retry = format!("{workflow_id}:retry:1");
    assert_eq!(seen["hash"], format!("#/runs/{retry}"), "the new run opens: {seen}");
    assert_eq!(seen["links"], format!("retry of {workflow_id}"), "{seen}");
    let (_, retried) = app.call(Method::GET, &format!("/api/v1/runs/{retry}"), None).await;
    assert_eq!(retried["retry_of"], json!(workflow_id), "{retried}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_human_task_completed_from_the_inbox_lets_its_run_finish() {
    let app = TestApp::spawn("uiinbox").await;
    let assignee = format!("ops-{}", unique());
    let id = format!("uiinbox-{}", unique());
    app.put_definition(&held_definition(&id, &assignee)).await;
    let workflow_id = app.start_run(&id, &json!({})).await;
    let human = app.waiting_human_task(&assignee).await["id"].as_str().unwrap().to_owned();

    let mut browser = Browser::start("inbox", &app, &human);
    let seen = browser.report().await;
    assert_eq!(seen["title"], "Release the run");
    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    let hold = run["tasks"].as_array().unwrap().iter().find(|t| t["template_id"] == "hold").unwrap();
    assert_eq!(hold["output"], json!({"approved_by_browser": true}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_page_lists_its_trigger_decisions() {
    let app = TestApp::spawn("uidecisions").await;
    let id = format!("uidecisions-{}", unique());
    let event_type = format!("ui.pushed.{}", unique());
    let definition = json!({
        "id": id, "name": "Pushes", "trigger": {"kind": "event", "event_type": event_type, "filter": "event.payload.branch == 'main'"},
        "tasks": [{"id": "t", "kind": "noop"}]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    for branch in ["main", "dev"] {
        let (status, _) = app
            .call(Method::POST, "/api/v1/events", Some(&json!({"type": event_type, "payload": {"branch": branch}})))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let mut browser = Browser::start("decisions", &app, &id);
    let seen = browser.report().await;
    let rows = seen["rows"].as_array().unwrap();
    let outcomes: Vec<&str> = rows.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["filtered", "fired"], "newest first: {seen}");
    assert!(rows[0]["why"].as_str().unwrap().contains("event.payload.branch = \"dev\""), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_page_lists_its_notifications() {
    let app = TestApp::spawn("uinotify").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let target = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, target).await });
    let id = format!("uinotify-{}", unique());
    let definition = json!({
        "id": id, "name": "Notified", "trigger": {"kind": "manual"},
        "tasks": [{"id": "t", "kind": "http", "url": "http://127.0.0.1:1/refused", "retry": {"max_attempts": 1}}],
        "notify": [{"on": ["run_failed"], "webhook": {"url": hook}}]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let run = app.wait_for_run(&app.start_run(&id, &json!({})).await).await;
    assert_eq!(run["status"], "failed", "{run}");
    let seen = Browser::start("notifications", &app, &id).report().await;
    assert_eq!(seen["rows"], json!([{"kind": "run_failed", "status": "delivered"}]), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_definitions_list_shows_tags_and_filters_by_them() {
    let app = TestApp::spawn("uitags").await;
    let p = format!("uitags-{}", unique());
    let definition = |suffix: &str, name: &str, tags: &[&str]| json!({"id": format!("{p}-{suffix}"), "name": name, "tags": tags, "trigger": {"kind": "manual"}, "tasks": [{"id": "t", "kind": "noop"}]});
    for d in [
        definition("a", "Invoices", &["billing", "nightly"]),
        definition("b", "Reports", &["nightly"]),
        definition("c", "Untagged", &[]),
    ] {
        assert_eq!(app.put_definition(&d).await.0, StatusCode::CREATED);
    }
    let (a, b, c) = (format!("{p}-a"), format!("{p}-b"), format!("{p}-c"));

    let arg = json!({"tag": "nightly", "search": "report", "chip": "billing"}).to_string();
    let seen = Browser::start("definitions", &app, &arg).report().await;
    assert_eq!(
        seen["all"],
        json!([{"id": a, "tags": ["billing", "nightly"]}, {"id": b, "tags": ["nightly"]}, {"id": c, "tags": []}]),
        "{seen}"
    );
    assert_eq!(seen["options"], json!(["", "billing", "nightly"]));
    assert_eq!(seen["byTag"], json!([a, b]));
    assert_eq!(seen["bySearch"], json!([b]));
    assert_eq!(seen["byChip"], json!([a]));
    assert_eq!(seen["selected"], "billing", "a clicked tag shows in the select");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_progress_log_and_artifacts_show_live_in_its_panel() {
    let app = TestApp::spawn("uiprogress").await;
    let assignee = format!("ops-{}", unique());
    let id = format!("uiprogress-{}", unique());
    app.put_definition(&held_definition(&id, &assignee)).await;
    let workflow_id = app.start_run(&id, &json!({})).await;
    let human = app.waiting_human_task(&assignee).await;
    let task = human["task_id"].as_str().unwrap().to_owned();
    let app = &app;
    let report = |body: Value| async move {
        let (status, answer) = app.call(Method::POST, "/api/v1/task-events", Some(&body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    };
    let me = json!({"workflow_id": task});

    let mut browser = Browser::start("progress", app, &format!("{workflow_id}|{task}"));
    // The page is open on the task before anything is reported: what follows arrives live.
    report(json!({"temporal": me, "type": "progress", "current": 1, "total": 4, "message": "first"})).await;
    assert_eq!(browser.report().await["current"], "1");
    report(json!([
        {"temporal": me, "type": "progress", "current": 2, "total": 4},
        {"temporal": me, "type": "log", "message": "half done"},
        {"temporal": me, "type": "artifact", "name": "summary.txt", "data": "ok"}
    ]))
    .await;
    assert_eq!(browser.report().await["current"], "2");
    let seen = browser.report().await;
    assert_eq!(seen["seen"], json!(["1 / 4 · first", "2 / 4"]), "{seen}");
    assert!(seen["log"][0].as_str().unwrap().ends_with("half done"), "{seen}");
    assert_eq!(seen["artifacts"][0]["text"], "summary.txt", "{seen}");
    assert!(seen["artifacts"][0]["href"].as_str().unwrap().starts_with("/api/v1/artifacts/"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diamonds_graph_has_its_edges_and_its_timeline_a_bar_per_finished_task() {
    let app = TestApp::spawn("uigraph").await;
    let id = format!("uigraph-{}", unique());
    let definition = json!({"id": id, "name": "Diamond", "trigger": {"kind": "manual"},
        "context": [{"name": "items", "kind": "static", "value": [1, 2]}],
        "tasks": [{"id": "a", "kind": "noop"}, {"id": "b", "kind": "noop", "depends_on": ["a"], "for_each": "items"},
                  {"id": "c", "kind": "noop", "depends_on": ["a"]}, {"id": "d", "kind": "noop", "depends_on": ["b", "c"]}]});
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;
    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert!(run["plan"]["tasks"].is_array(), "{run}");
    // What the page reads: the run without its plan.
    let (_, lean) = app.call(Method::GET, &format!("/api/v1/runs/{workflow_id}?plan=false"), None).await;
    assert_eq!((lean["plan"].clone(), lean["tasks"].as_array().map(Vec::len)), (Value::Null, Some(5)), "{lean}");

    let seen = Browser::start("graph", &app, &workflow_id).report().await;
    let end = &seen["end"];
    let mut edges: Vec<(String, String)> = end["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["from"].as_str().unwrap().to_owned(), e["to"].as_str().unwrap().to_owned()))
        .collect();
    edges.sort();
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(edges, [pair("a", "b"), pair("a", "c"), pair("b", "d"), pair("c", "d")], "{seen}");
    assert!(
        end["edges"].as_array().unwrap().iter().all(|e| e["d"].as_str().unwrap().starts_with('M')),
        "drawn: {seen}"
    );
    // Layers by longest path: a, then b and c in one column, then d.
    let left = |group: &str| {
        end["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["group"] == group)
            .unwrap_or_else(|| panic!("no node {group}: {seen}"))["left"]
            .as_f64()
            .unwrap()
    };
    assert!(left("a") < left("b") && left("b") == left("c") && left("c") < left("d"), "{seen}");
    let b = end["nodes"].as_array().unwrap().iter().find(|n| n["group"] == "b").unwrap();
    assert_eq!(b["counts"], json!({"completed": 2}), "the fan-out's counts: {seen}");
    // One bar per finished task, each as the run log says, and the run's phases above them.
    let tasks = run["tasks"].as_array().unwrap();
    let mut bars: Vec<(String, String)> = end["bars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["task"].as_str().unwrap().to_owned(), b["status"].as_str().unwrap().to_owned()))
        .collect();
    bars.sort();
    let mut expected: Vec<(String, String)> = tasks
        .iter()
        .map(|t| (t["id"].as_str().unwrap().to_owned(), t["status"].as_str().unwrap().to_owned()))
        .collect();
    expected.sort();
    assert_eq!(bars.len(), 5, "{seen}");
    assert_eq!(bars, expected, "{seen}");
    assert!(end["bars"].as_array().unwrap().iter().all(|b| b["ms"].as_f64().unwrap() >= 0.0), "{seen}");
    assert_eq!(end["phases"], json!(["context", "plan", "tasks"]), "{seen}");
    // d starts after a ended: its bar sits to the right of a's.
    let x = |group: &str| {
        end["bars"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["task"].as_str().unwrap().contains(&format!("/{group}/")))
            .unwrap()["x"]
            .as_f64()
            .unwrap()
    };
    assert!(x("a") <= x("d"), "{seen}");
    assert!(seen["transform"].as_str().unwrap().contains("scale("), "zoomed: {seen}");
    // Replayed to the plan: the graph and its edges are there, no task has a bar yet.
    assert_eq!(seen["early"]["edges"].as_array().unwrap().len(), 4, "{seen}");
    assert_eq!(seen["early"]["bars"], json!([]), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_is_retried_alone_from_its_panel() {
    let app = TestApp::spawn("uiretrytask").await;
    let service = spawn_service().await;
    let id = format!("uiretrytask-{}", unique());
    assert_eq!(app.put_definition(&flaky_definition(&id, &service.base, "v1")).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;
    let failed = app.wait_for_run(&workflow_id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let fetch = failed["tasks"].as_array().unwrap().iter().find(|t| t["template_id"] == "fetch").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let seen = Browser::start("retrytask", &app, &format!("{workflow_id}|{fetch}")).report().await;
    let retry = format!("{workflow_id}:retry:1");
    assert_eq!(seen["hash"], format!("#/runs/{retry}"), "the new run opens: {seen}");
    assert_eq!(seen["links"], format!("retry of {workflow_id}"), "{seen}");
    let retried = app.wait_for_run(&retry).await;
    // Only the chosen task (and what depends on it) ran again: the three `each` were reused.
    let reused: Vec<&Value> =
        retried["tasks"].as_array().unwrap().iter().filter(|t| !t["reused_from"].is_null()).collect();
    assert_eq!(reused.len(), 3, "{retried}");
    assert!(reused.iter().all(|t| t["template_id"] == "each"), "{retried}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_a_running_run_without_its_actions_and_an_operator_with_them() {
    let app = TestApp::spawn("uiroles").await;
    let assignee = format!("ops-{}", unique());
    let id = format!("uiroles-{}", unique());
    app.put_definition(&held_definition(&id, &assignee)).await;
    let workflow_id = app.start_run(&id, &json!({})).await;
    app.waiting_human_task(&assignee).await;
    let key = |role: &'static str| {
        let app = &app;
        async move {
            let (status, created) = app
                .call(
                    Method::POST,
                    "/api/v1/keys",
                    Some(&json!({"name": format!("{role} in the browser"), "role": role})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            created["key"].as_str().unwrap().to_owned()
        }
    };
    let (viewer, operator) = (key("viewer").await, key("operator").await);
    let answer = authed_client(&viewer).get(format!("{}/api/v1/whoami", app.api_url)).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.json::<Value>().await.unwrap(), json!({"name": "viewer in the browser", "role": "viewer"}));

    let seen = Browser::start_as("roles", &app, &workflow_id, &viewer).report().await;
    assert_eq!(seen["buttons"], json!([]), "a viewer gets no action: {seen}");
    assert!(seen["note"].as_str().unwrap().contains("is a viewer"), "{seen}");
    let seen = Browser::start_as("roles", &app, &workflow_id, &operator).report().await;
    assert_eq!(seen["buttons"], json!(["cancel-run"]), "{seen}");
}
