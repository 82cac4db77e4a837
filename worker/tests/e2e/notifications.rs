//! Notifications end to end: a local webhook target receives what a definition's `notify`
//! entries ask for — once per (run, kind, entry), a reset of the run included — through the
//! worker's real `tf.notify` activity; retries and failures are recorded on the rows and never change a run's outcome;
//! a cron slot that passes without a run (the schedule paused in Temporal behind our back)
//! sends `schedule_silent` through a `NotifyWorkflow` the API's observer starts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::{get, post};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskfactory_schemas::notify::{NotifyEntry, NotifyKind, NotifyRunInput};
use taskfactory_schemas::run::Status as RunStatus;

use crate::support::{TEST_SECRET, TestApp, eventually, save_history_if_asked, servers, unique};

/// One request a hook received.
#[derive(Clone, Debug)]
struct Received {
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Value,
}

/// The webhook target: `POST /hook/{name}` records the request; `flaky*` hooks answer 500
/// twice, then 200; `down*` hooks always 500; the others 200. `GET /task` is an `http` task's
/// target, 404 while `broken`.
#[derive(Default)]
struct Target {
    received: Mutex<HashMap<String, Vec<Received>>>,
    broken: AtomicBool,
}

impl Target {
    fn of(&self, hook: &str) -> Vec<Received> {
        self.received.lock().unwrap().get(hook).cloned().unwrap_or_default()
    }

    fn kinds(&self, hook: &str) -> Vec<String> {
        let mut kinds: Vec<String> =
            self.of(hook).iter().map(|r| r.body["kind"].as_str().unwrap_or("?").to_owned()).collect();
        kinds.sort();
        kinds
    }
}

async fn hook(
    State(target): State<Arc<Target>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> AxumStatus {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (authorization, idempotency_key) = (header("authorization"), header("idempotency-key"));
    let calls = {
        let mut received = target.received.lock().unwrap();
        let calls = received.entry(name.clone()).or_default();
        calls.push(Received { authorization, idempotency_key, body });
        calls.len()
    };
    if name.starts_with("down") || (name.starts_with("flaky") && calls <= 2) {
        AxumStatus::INTERNAL_SERVER_ERROR
    } else {
        AxumStatus::OK
    }
}

async fn spawn_target() -> (String, Arc<Target>) {
    let target = Arc::new(Target::default());
    let app = axum::Router::new()
        .route("/hook/{name}", post(hook))
        .route(
            "/task",
            get(|State(target): State<Arc<Target>>| async move {
                if target.broken.load(Ordering::SeqCst) { AxumStatus::NOT_FOUND } else { AxumStatus::OK }
            }),
        )
        .with_state(target.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, target)
}

/// A manual definition with one `http` task against the target's `/task`.
fn definition(id: &str, base: &str, notify: Value) -> Value {
    json!({
        "id": id, "name": "Notified", "trigger": {"kind": "manual"},
        "tasks": [{"id": "call", "kind": "http", "url": format!("{base}/task"), "retry": {"max_attempts": 1}}],
        "notify": notify
    })
}

async fn notifications(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, list) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/notifications"), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["notifications"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_notifies_once_and_the_next_completed_run_recovers_once() {
    let app = TestApp::spawn("notify-recover").await;
    let (base, target) = spawn_target().await;
    let id = format!("notified-{}", unique());
    let notify = json!([
        {"on": ["run_failed", "run_recovered", "task_failed"],
         "webhook": {"url": format!("{base}/hook/main"), "headers": {"Authorization": "Bearer {{ secret.API_TOKEN }}"}}},
        {"on": ["run_failed"], "webhook": {"url": format!("{base}/hook/slack"), "format": "slack"}}
    ]);
    assert_eq!(app.put_definition(&definition(&id, &base, notify)).await.0, StatusCode::CREATED);

    target.broken.store(true, Ordering::SeqCst);
    let failed = app.start_run(&id, &json!({})).await;
    let run = app.wait_for_run(&failed).await;
    assert_eq!(run["status"], "failed", "{run}");
    // The deliveries are part of the run workflow: done when it closes.
    assert_eq!(target.kinds("main"), ["run_failed", "task_failed"]);
    let main = target.of("main");
    assert!(main.iter().all(|r| r.authorization.as_deref() == Some(&format!("Bearer {TEST_SECRET}"))), "{main:?}");
    let task_failed = main.iter().find(|r| r.body["kind"] == "task_failed").unwrap().body.clone();
    assert_eq!(task_failed["failed_tasks"], json!([format!("{failed}/call/_")]), "{task_failed}");
    assert_eq!(task_failed["failed_task_count"], 1);
    let keyed = main.iter().find(|r| r.body["kind"] == "task_failed").unwrap();
    assert_eq!(keyed.idempotency_key.as_deref(), Some(format!("run:{failed}:task_failed:0").as_str()));
    assert_eq!(task_failed["definition_id"], id.as_str());
    assert_eq!(task_failed["run_workflow_id"], failed.as_str());
    assert_eq!(task_failed["status"], "failed");
    assert!(task_failed["run_url"].as_str().unwrap().contains("/#/runs/tf%3A"), "{task_failed}");
    let slack = target.of("slack");
    assert_eq!(slack.len(), 1);
    assert!(slack[0].body["text"].as_str().unwrap().contains("failed"), "{:?}", slack[0].body);
    assert!(slack[0].body["blocks"].as_array().is_some_and(|b| !b.is_empty()), "{:?}", slack[0].body);
    let history = taskfactory::temporal::history_json(&app.client, &failed).await.unwrap();
    save_history_if_asked(&history, "orchestrator/tests/histories/run_activity_workflow_notify.json");

    // A reset runs the workflow again, notifications included: the delivered rows stop them.
    crate::operators::temporal_cli("reset", &failed, &["--type", "FirstWorkflowTask", "--reason", "e2e reset"]).await;
    eventually(Duration::from_secs(60), "the reset run recorded its failure", || async {
        let (_, run) = app.call(Method::GET, &format!("/api/v1/runs/{failed}"), None).await;
        if run["resets"] == 1 && run["status"] == "failed" { Ok(()) } else { Err(format!("{run}")) }
    })
    .await;
    let handle = app.client.get_workflow_handle::<taskfactory_orchestrator::RunActivityWorkflow>(&failed);
    let _ = handle.get_result(temporalio_client::WorkflowGetResultOptions::default()).await;
    let reset = taskfactory::temporal::history_json(&app.client, &failed).await.unwrap();
    let reset = String::from_utf8_lossy(&reset);
    assert_eq!(reset.matches(r#""name":"tf.notify""#).count(), 3, "the reset run delivered again: {reset}");
    assert_eq!(target.kinds("main"), ["run_failed", "task_failed"], "nothing posted again after the reset");
    assert_eq!(target.of("slack").len(), 1);

    target.broken.store(false, Ordering::SeqCst);
    let fixed = app.start_run(&id, &json!({})).await;
    assert_eq!(app.wait_for_run(&fixed).await["status"], "completed");
    assert_eq!(target.kinds("main"), ["run_failed", "run_recovered", "task_failed"]);
    let recovered = target.of("main").into_iter().find(|r| r.body["kind"] == "run_recovered").unwrap().body;
    assert_eq!(recovered["run_workflow_id"], fixed.as_str());

    let again = app.start_run(&id, &json!({})).await;
    assert_eq!(app.wait_for_run(&again).await["status"], "completed");
    assert_eq!(target.kinds("main"), ["run_failed", "run_recovered", "task_failed"], "no second recovery");
    assert_eq!(target.of("slack").len(), 1);

    let rows = notifications(&app, &id).await;
    assert_eq!(rows.len(), 4, "{rows:#?}");
    assert!(rows.windows(2).all(|w| w[0]["id"].as_i64() > w[1]["id"].as_i64()), "newest first");
    assert_eq!(rows[0]["kind"], "run_recovered");
    for row in &rows {
        assert_eq!((row["status"].as_str(), row["attempts"].as_i64()), (Some("delivered"), Some(1)), "{row}");
        assert_eq!(row["http_status"], 200);
        assert!(!row.to_string().contains(TEST_SECRET), "no secret stored: {row}");
    }
    let (status, page) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/notifications?limit=3"), None).await;
    assert_eq!(status, StatusCode::OK);
    let before = page["next_before"].as_i64().expect("a second page");
    let (_, rest) =
        app.call(Method::GET, &format!("/api/v1/definitions/{id}/notifications?before={before}"), None).await;
    assert_eq!(rest["notifications"].as_array().unwrap().len(), 1, "{rest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_retries_are_recorded_and_a_dead_webhook_never_fails_the_run() {
    let app = TestApp::spawn("notify-retry").await;
    let (base, target) = spawn_target().await;
    let id = format!("retried-{}", unique());
    let notify = json!([
        {"on": ["run_failed"], "webhook": {"url": format!("{base}/hook/flaky")}},
        {"on": ["run_recovered"], "webhook": {"url": format!("{base}/hook/down")}}
    ]);
    assert_eq!(app.put_definition(&definition(&id, &base, notify)).await.0, StatusCode::CREATED);

    target.broken.store(true, Ordering::SeqCst);
    let failed = app.start_run(&id, &json!({})).await;
    let run = app.wait_for_run_within(&failed, Duration::from_secs(120)).await;
    assert_eq!((run["status"].as_str(), run["error"].as_str()), (Some("failed"), Some("1 of 1 tasks failed")));
    assert_eq!(target.of("flaky").len(), 3, "two 500s, then delivered");

    target.broken.store(false, Ordering::SeqCst);
    let fixed = app.start_run(&id, &json!({})).await;
    let run = app.wait_for_run_within(&fixed, Duration::from_secs(120)).await;
    assert_eq!(run["status"], "completed", "a failed notification leaves the run completed: {run}");
    assert!(run["error"].is_null(), "{run}");
    let handle = app.client.get_workflow_handle::<taskfactory_orchestrator::RunActivityWorkflow>(&fixed);
    let outcome = handle.get_result(temporalio_client::WorkflowGetResultOptions::default()).await;
    assert!(outcome.is_ok(), "the workflow completed in Temporal too: {outcome:?}");
    assert_eq!(target.of("down").len(), 5, "every attempt was made");

    let rows = notifications(&app, &id).await;
    let row = |kind: &str| rows.iter().find(|r| r["kind"] == kind).unwrap().clone();
    let flaky = row("run_failed");
    assert_eq!((flaky["status"].as_str(), flaky["attempts"].as_i64()), (Some("delivered"), Some(3)), "{flaky}");
    assert!(flaky["error"].is_null(), "{flaky}");
    let down = row("run_recovered");
    assert_eq!((down["status"].as_str(), down["attempts"].as_i64()), (Some("failed"), Some(5)), "{down}");
    assert_eq!(down["http_status"], 500);
    assert!(down["error"].as_str().unwrap().contains("HTTP 500"), "{down}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_cron_slot_sends_one_schedule_silent_notification() {
    let app = TestApp::spawn("notify-silent").await;
    let (base, target) = spawn_target().await;
    let id = format!("silent-{}", unique());
    let definition = json!({
        "id": id, "name": "Minutely", "trigger": {"kind": "cron", "cron": ["* * * * *"]},
        "tasks": [{"id": "t", "kind": "noop"}],
        "notify": [{"on": ["schedule_silent"], "webhook": {"url": format!("{base}/hook/silent")}}]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    // Paused in Temporal, not through taskfactory: the next minute's slot starts no run.
    let binary =
        taskfactory::devstack::find_temporal(std::env::var_os("TEMPORAL_BIN").map(std::path::PathBuf::from).as_deref())
            .unwrap();
    let output = tokio::process::Command::new(binary)
        .args(["schedule", "toggle", "--address", &servers().temporal_address, "--namespace", "default"])
        .args(["--schedule-id", &format!("tf:{id}"), "--pause", "--reason", "behind taskfactory's back"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "temporal schedule toggle: {}", String::from_utf8_lossy(&output.stderr));

    // Reading the decision log observes the schedule (the test API runs no observer loop).
    let decisions = format!("/api/v1/definitions/{id}/decisions");
    let received = eventually(Duration::from_secs(150), "a schedule_silent notification", || async {
        let (status, log) = app.call(Method::GET, &decisions, None).await;
        assert_eq!(status, StatusCode::OK, "{log}");
        let received = target.of("silent");
        if received.is_empty() { Err(format!("decisions: {}", log["decisions"])) } else { Ok(received) }
    })
    .await;
    let body = &received[0].body;
    assert_eq!((body["kind"].as_str(), body["definition_id"].as_str()), (Some("schedule_silent"), Some(id.as_str())));
    assert!(body["run_workflow_id"].is_null(), "{body}");
    let slot: chrono::DateTime<chrono::Utc> = body["slot"].as_str().unwrap().parse().unwrap();
    assert_eq!(slot.timestamp() % 60, 0, "a minute slot: {body}");
    assert!(body["run_url"].as_str().unwrap().ends_with(&format!("/#/definitions/{id}")), "{body}");

    // Observing again starts nothing new for that slot: its NotifyWorkflow exists once.
    app.call(Method::GET, &decisions, None).await;
    let workflow_id = taskfactory_api::notify::workflow_id(&id, slot);
    let handle = app.client.get_workflow_handle::<taskfactory_orchestrator::NotifyWorkflow>(&workflow_id);
    let delivered = handle.get_result(temporalio_client::WorkflowGetResultOptions::default()).await.unwrap();
    assert_eq!(delivered, 1);
    app.wait_for_visibility(
        &format!("WorkflowId = '{workflow_id}' AND TfDefinitionId = '{id}' AND TfKind = 'notify'"),
        1,
    )
    .await;
    let rows = notifications(&app, &id).await;
    let for_slot: Vec<&Value> = rows.iter().filter(|r| r["payload"]["slot"] == body["slot"]).collect();
    assert_eq!(for_slot.len(), 1, "{rows:#?}");
    assert_eq!(
        (for_slot[0]["status"].as_str(), for_slot[0]["run_workflow_id"].clone()),
        (Some("delivered"), Value::Null)
    );
    assert_eq!(target.of("silent").iter().filter(|r| r.body["slot"] == body["slot"]).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_notify_settings_are_422_naming_the_field() {
    let app = TestApp::spawn("notify-invalid").await;
    let id = format!("invalid-{}", unique());
    let hook = json!({"url": "https://hooks.example.com/x"});
    for (trigger, notify, path, says) in [
        (
            json!({"kind": "manual"}),
            json!([{"on": ["run_failed", "x"], "webhook": hook}]),
            "notify[0].on[1]",
            "unknown kind \"x\"; one of run_failed, run_recovered, task_failed, schedule_silent",
        ),
        (
            json!({"kind": "event", "event_type": "e"}),
            json!([{"on": ["schedule_silent"], "webhook": hook}]),
            "notify[0].on[0]",
            "schedule_silent needs a cron trigger",
        ),
        (
            json!({"kind": "manual"}),
            json!([{"on": ["run_failed"], "webhook": {"url": "ftp://x"}}]),
            "notify[0].webhook.url",
            "not an http or https URL",
        ),
        (json!({"kind": "manual"}), json!([{"on": [], "webhook": hook}]), "notify[0].on", "at least one kind"),
    ] {
        let definition = json!({"id": id, "name": "Bad", "trigger": trigger, "tasks": [{"id": "t", "kind": "noop"}], "notify": notify});
        let (status, body) = app.put_definition(&definition).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let details = body["error"]["details"].as_array().unwrap();
        assert!(
            details.iter().any(|d| d["path"] == path && d["message"].as_str().unwrap().contains(says)),
            "{path}: {body}"
        );
    }
    let (status, body) = app.call(Method::GET, "/api/v1/definitions/nope/notifications", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_execution_times_out_notifies_run_failed_once() {
    let app = TestApp::spawn("notify-timeout").await;
    let (base, target) = spawn_target().await;
    let assignee = format!("timeout-{}", unique());
    let id = format!("notify-timeout-{}", unique());
    let mut definition = crate::support::held_definition(&id, &assignee);
    definition["notify"] = json!([{"on": ["run_failed"], "webhook": {"url": format!("{base}/hook/timeout")}}]);
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    // Started as an operator would from Temporal, with an execution timeout: no workflow code
    // runs when it expires, so the run reconciler records it and sends the notification.
    let workflow_id = crate::run_control::start_timing_out(&app, &id).await;
    app.waiting_human_task(&assignee).await;
    let sent = eventually(Duration::from_secs(60), "run_failed of the timed-out run", || async {
        let (_, run) = app.call(Method::GET, &format!("/api/v1/runs/{workflow_id}"), None).await;
        let received = target.of("timeout");
        if run["status"] == "timed_out" && !received.is_empty() { Ok(received) } else { Err(format!("{run}")) }
    })
    .await;
    let body = &sent[0].body;
    assert_eq!((body["kind"].clone(), body["status"].clone()), (json!("run_failed"), json!("timed_out")), "{body}");
    assert_eq!(body["run_workflow_id"], workflow_id.as_str());
    assert_eq!(sent[0].idempotency_key.as_deref(), Some(format!("run:{workflow_id}:run_failed:0").as_str()));
    // Listed like any other delivery, and sent once: reading the run again starts nothing new.
    eventually(Duration::from_secs(30), "the delivery recorded", || async {
        let listed = notifications(&app, &id).await;
        if listed.len() == 1 && listed[0]["status"] == "delivered" { Ok(()) } else { Err(format!("{listed:?}")) }
    })
    .await;
    app.call(Method::GET, &format!("/api/v1/runs/{workflow_id}"), None).await;
    assert_eq!(target.of("timeout").len(), 1);
    // Found in Temporal by its definition, like the run.
    app.wait_for_visibility(&format!("TfDefinitionId = '{id}' AND TfKind = 'notify'"), 1).await;
}

/// What `run_recovered` looks back to: the definition's last run with a verdict (completed,
/// failed, timed out), passing over runs an operator or a concurrency limit ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_looks_past_cancelled_terminated_and_skipped_runs_to_the_last_verdict() {
    let app = TestApp::spawn("notify-verdict").await;
    let notify = json!([{"on": ["run_recovered"], "webhook": {"url": "http://127.0.0.1:9/hook"}}]);
    let entries: Vec<NotifyEntry> = serde_json::from_value(notify.clone()).unwrap();
    // The runs before the completed one, oldest first, and whether it is a recovery.
    let cases: [(&[&str], bool); 5] = [
        (&["failed", "cancelled", "terminated"], true),
        (&["timed_out", "skipped"], true),
        (&["failed", "completed", "cancelled"], false),
        (&["completed", "failed"], true),
        (&["cancelled"], false),
    ];
    for (before, recovered) in cases {
        let id = format!("verdict-{}", unique());
        assert_eq!(
            app.put_definition(&definition(&id, "http://127.0.0.1:9", notify.clone())).await.0,
            StatusCode::CREATED
        );
        let runs: Vec<(String, &str)> = before
            .iter()
            .map(|s| (format!("tf:{id}:manual:{}", unique()), *s))
            .chain([(format!("tf:{id}:manual:now"), "completed")])
            .collect();
        for (minutes_ago, (run, status)) in (0..runs.len()).rev().zip(&runs) {
            sqlx::query(
                "insert into activity_runs (workflow_id, run_id, definition_id, trigger_kind, trigger, fired_at, status, finished_at, last_seq) \
                 values ($1, 'r', $2, 'manual', '{}'::jsonb, now() - make_interval(mins => $3), $4, now() - make_interval(mins => $3) + interval '10 seconds', 0)",
            )
            .bind(run)
            .bind(&id)
            .bind(i32::try_from(minutes_ago).unwrap())
            .bind(status)
            .execute(app.store.pool())
            .await
            .unwrap();
        }
        let input = NotifyRunInput {
            run_workflow_id: runs.last().unwrap().0.clone(),
            definition_id: id.clone(),
            definition_name: "Notified".into(),
            status: RunStatus::Completed,
            error: None,
            entries: entries.clone(),
        };
        let planned = taskfactory_activities::notify::plan(&app.store, &input).await.unwrap();
        let kinds: Vec<NotifyKind> = planned.iter().map(|n| n.event.kind).collect();
        assert_eq!(kinds == [NotifyKind::RunRecovered], recovered, "after {before:?}: {kinds:?}");
    }
}
