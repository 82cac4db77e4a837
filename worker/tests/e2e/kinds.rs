//! Task kinds `http` and `human`, and `http` context sources, end to end (`workflow` and
//! `activity` tasks: `tasks.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::http::StatusCode as AxumStatus;
use axum::routing::{get, post};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, unique};

#[derive(Default)]
struct Calls {
    ok: AtomicUsize,
    flaky: AtomicUsize,
    bad: AtomicUsize,
}

/// A local HTTP service: `/ok` answers, `/flaky` fails twice with 500 then echoes, `/bad` is 404.
async fn spawn_test_service() -> (String, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let (ok, flaky, bad) = (calls.clone(), calls.clone(), calls.clone());
    let app = axum::Router::new()
        .route(
            "/ok",
            get(move || async move {
                ok.ok.fetch_add(1, Ordering::SeqCst);
                Json(json!({"hello": "world"}))
            }),
        )
        .route(
            "/flaky",
            post(move |Json(body): Json<Value>| async move {
                if flaky.flaky.fetch_add(1, Ordering::SeqCst) < 2 {
                    return (AxumStatus::INTERNAL_SERVER_ERROR, Json(json!({"error": "try again"})));
                }
                (AxumStatus::OK, Json(json!({"echo": body})))
            }),
        )
        .route("/data", get(|| async { Json(json!({"data": {"items": [{"id": "x"}, {"id": "y"}]}})) }))
        .route(
            "/bad",
            get(move || async move {
                bad.bad.fetch_add(1, Ordering::SeqCst);
                (AxumStatus::NOT_FOUND, "no such thing")
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_tasks_retry_5xx_and_fail_4xx_at_once() {
    let app = TestApp::spawn("httptask").await;
    let (base, calls) = spawn_test_service().await;
    let id = format!("http-{}", unique());
    let retry = json!({"initial_interval": "100ms", "max_attempts": 5});
    let definition = json!({
        "id": id, "name": "HTTP", "trigger": {"kind": "manual"},
        "tasks": [
            {"id": "ok", "kind": "http", "url": format!("{base}/ok")},
            {"id": "flaky", "kind": "http", "method": "post", "url": format!("{base}/flaky"), "body": {"n": "{{ 1 + 1 }}"},
             "headers": {"x-run": "{{ run.workflow_id }}"}, "retry": retry},
            {"id": "bad", "kind": "http", "url": format!("{base}/bad"), "retry": retry}
        ]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let run = app.wait_for_run(&app.start_run(&id, &json!({})).await).await;
    assert_eq!(run["status"], "failed", "{run}");
    let task = |t: &str| run["tasks"].as_array().unwrap().iter().find(|x| x["template_id"] == t).unwrap().clone();
    assert_eq!(task("ok")["output"], json!({"status": 200, "body": {"hello": "world"}}));
    assert_eq!(task("flaky")["output"], json!({"status": 200, "body": {"echo": {"n": 2}}}));
    assert_eq!(calls.flaky.load(Ordering::SeqCst), 3, "two 500s retried, then success");
    // Activity mode (the default for http): the attempts are the activity's, and counted.
    assert_eq!((task("flaky")["execution"].clone(), task("flaky")["attempt"].clone()), (json!("activity"), json!(3)));
    // The 404's batch recorded the final failure itself (the activity cannot know it is final).
    let batch = task("bad")["temporal_workflow_id"].as_str().unwrap().to_owned();
    let history = taskfactory::temporal::history_json(&app.client, &batch).await.unwrap();
    let markers = String::from_utf8_lossy(&history).matches("MarkerRecordedEventAttributes").count();
    assert_eq!(markers, 2, "two local activities: loading the batch, writing the failure");
    crate::support::save_history_if_asked(
        &history,
        "orchestrator/tests/histories/task_batch_workflow_http_failure.json",
    );
    assert_eq!(task("bad")["status"], "failed");
    assert!(task("bad")["error"].as_str().unwrap().contains("HTTP 404"), "{}", task("bad"));
    assert_eq!(calls.bad.load(Ordering::SeqCst), 1, "a 4xx is not retried");
}

fn approval(id: &str, assignee: &str, timeout: &str) -> Value {
    json!({
        "id": id, "name": "Approval", "trigger": {"kind": "manual"},
        "context": [{"name": "invoices", "kind": "static", "value": [1, 2, 3]}],
        "tasks": [
            {"id": "approve", "kind": "human", "title": "Approve {{ context.invoices | length }} invoices", "assignee": assignee,
             "timeout": timeout, "params": {"invoices": "{{ context.invoices }}"}},
            {"id": "after", "kind": "noop", "depends_on": ["approve"], "params": {"answer": "{{ tasks.approve.output.ok }}"}}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_tasks_wait_for_a_person_or_the_timeout() {
    let app = TestApp::spawn("humantask").await;
    let assignee = format!("ops-{}", unique());
    let id = format!("approve-{}", unique());
    assert_eq!(app.put_definition(&approval(&id, &assignee, "5m")).await.0, StatusCode::CREATED);

    // Completed: the payload is the task's output, read by the dependent task.
    let workflow_id = app.start_run(&id, &json!({})).await;
    let task = app.waiting_human_task(&assignee).await;
    assert_eq!(task["title"], "Approve 3 invoices");
    assert_eq!(task["form"], json!({"invoices": [1, 2, 3]}));
    let human_id = task["id"].as_str().unwrap();
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/human-tasks/{human_id}/complete"),
            Some(&json!({"payload": {"ok": true}, "by": "ann"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) =
        app.call(Method::POST, &format!("/api/v1/human-tasks/{human_id}/reject"), Some(&json!({}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "a decided task cannot be decided again: {body}");
    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    let after = run["tasks"].as_array().unwrap().iter().find(|t| t["template_id"] == "after").unwrap();
    assert_eq!(after["params"], json!({"answer": true}));
    let events = app.all_events(&workflow_id, 1000).await;
    assert!(events.iter().any(|e| e["type"] == "NODE_WAITING"), "waiting is in the run log");

    // Rejected: the task fails with who and why.
    let (_, started) = app.trigger(&id, &json!({})).await;
    let task = app.waiting_human_task(&assignee).await;
    let human_id = task["id"].as_str().unwrap();
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/human-tasks/{human_id}/reject"),
            Some(&json!({"by": "bob", "reason": "too many"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let run = app.wait_for_run(started["workflow_id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "failed");
    let approve = run["tasks"].as_array().unwrap().iter().find(|t| t["template_id"] == "approve").unwrap();
    assert_eq!(approve["error"], "rejected by bob: too many");

    // Nobody decides: the timeout fails the task and closes the inbox entry.
    let slow = format!("slow-{}", unique());
    let late = format!("late-{}", unique());
    app.put_definition(&approval(&slow, &late, "1s")).await;
    let run = app.wait_for_run(&app.start_run(&slow, &json!({})).await).await;
    assert_eq!(run["status"], "failed");
    let (_, inbox) = app.call(Method::GET, &format!("/api/v1/human-tasks?assignee={late}"), None).await;
    assert_eq!(inbox["human_tasks"][0]["status"], "timed_out", "{inbox}");
    let (status, _) = app.call(Method::POST, "/api/v1/human-tasks/nope/complete", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_context_selects_with_a_json_pointer() {
    let app = TestApp::spawn("httpctx").await;
    let (base, _) = spawn_test_service().await;
    let id = format!("httpctx-{}", unique());
    let definition = |select: &str| {
        json!({
            "id": id, "name": "HTTP context", "trigger": {"kind": "manual"},
            "context": [{"name": "items", "kind": "http", "url": format!("{base}/data"), "select": select}],
            "tasks": [{"id": "each", "kind": "noop", "for_each": "items", "key": "{{ item.id }}"}]
        })
    };
    assert_eq!(app.put_definition(&definition("/data/items")).await.0, StatusCode::CREATED);
    let run = app.wait_for_run(&app.start_run(&id, &json!({})).await).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["context_snapshot"]["items"], json!([{"id": "x"}, {"id": "y"}]));
    assert_eq!(run["tasks_completed"], 2);

    app.put_definition(&definition("/data/nothing")).await;
    let run = app.wait_for_run(&app.start_run(&id, &json!({})).await).await;
    assert_eq!(run["status"], "failed");
    assert!(run["error"].as_str().unwrap().contains("context[0].select"), "{}", run["error"]);
    let (status, body) = app.put_definition(&definition("data/items")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"][0]["path"], "context[0].select");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_unless_allowed() {
    let app = TestApp::spawn("ssrf").await;
    let (base, _) = spawn_test_service().await;
    // An API whose context clients keep the default rule: public targets only.
    let (strict, _stop) = app
        .spawn_api_with(|mut config| {
            config.context.egress.allow_private = false;
            config
        })
        .await;
    let id = format!("ssrf-{}", unique());
    let definition = json!({"id": id, "name": "SSRF", "trigger": {"kind": "manual"},
        "context": [{"name": "meta", "kind": "http", "url": format!("{base}/data")}],
        "tasks": [{"id": "t", "kind": "noop"}]});
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let response =
        app.http.post(format!("{strict}/api/v1/definitions/{id}/dry-run")).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["details"][0]["path"], "context[0].url");
    assert!(body["error"]["details"][0]["message"].as_str().unwrap().contains("refusing to call 127.0.0.1"), "{body}");
    // The suite's own API allows loopback, so the same dry-run goes through there.
    let (status, _) = app.call(Method::POST, &format!("/api/v1/definitions/{id}/dry-run"), Some(&json!({}))).await;
    assert_eq!(status, StatusCode::OK);
}
