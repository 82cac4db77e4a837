//! Task code reporting into its run (`POST /api/v1/task-events`) by its Temporal identity:
//! progress, log lines and artifacts land on the task's node, artifacts are served with their
//! media type, resends are written once, and a `reporter` key may report but do nothing else.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskfactory_activities::auth_store::Role;

use crate::support::{TestApp, authed_client, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_code_reports_progress_logs_and_artifacts_on_its_node() {
    let app = TestApp::spawn("reports").await;
    let assignee = format!("reports-{}", unique());
    let id = format!("reports-{}", unique());
    let definition = json!({
        "id": id, "name": "Reports", "trigger": {"kind": "manual"},
        "tasks": [
            {"id": "quick", "kind": "noop"},
            {"id": "wait", "kind": "human", "title": "Wait", "assignee": assignee}
        ]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;
    app.waiting_human_task(&assignee).await;
    let (_, run) = app.call(Method::GET, &format!("/api/v1/runs/{workflow_id}"), None).await;
    let task = |t: &str| run["tasks"].as_array().unwrap().iter().find(|x| x["template_id"] == t).unwrap().clone();
    let (wait, quick) = (task("wait"), task("quick"));
    let wait_id = wait["id"].as_str().unwrap();

    // A reporter key, as the docs tell workers to use.
    let (_, reporter_key) = app.store.create_key("worker", Role::Reporter, None).await.unwrap();
    let reporter = authed_client(&reporter_key);
    let post = |body: Value| {
        let (reporter, url) = (reporter.clone(), format!("{}/api/v1/task-events", app.api_url));
        async move {
            let response = reporter.post(url).json(&body).send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // The human task's own workflow (workflow mode) and the noop's batch activity (activity mode).
    let own = json!({"workflow_id": wait_id});
    let batched = json!({"workflow_id": quick["temporal_workflow_id"], "activity_id": quick["id"]});
    let reports = json!([
        {"temporal": own, "type": "progress", "current": 1, "total": 3, "message": "reading"},
        {"temporal": own, "type": "progress", "current": 2, "total": 3},
        {"temporal": own, "type": "log", "message": "halfway", "level": "warn", "fields": {"rows": 10}},
        {"temporal": own, "type": "artifact", "name": "report.csv", "data": "a,b\n1,2\n", "media_type": "text/csv"},
        {"temporal": own, "type": "artifact", "name": "dashboard", "url": "https://example.com/d/1"},
        {"temporal": batched, "type": "log", "message": "from the batch"}
    ]);
    let (code, answer) = post(reports.clone()).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    assert_eq!((answer["accepted"].clone(), answer["new"].clone()), (json!(6), json!(6)));
    let artifacts = answer["artifacts"].as_array().unwrap().clone();
    assert_eq!(artifacts.len(), 2);
    // Sent again (a retried request): nothing new.
    let (_, again) = post(reports).await;
    assert_eq!((again["new"].clone(), again["artifacts"].clone()), (json!(0), json!(artifacts)));

    let events = app.all_events(&workflow_id, 1000).await;
    assert!(events.iter().enumerate().all(|(i, e)| e["seq"] == json!(i + 1)), "gapless");
    let on = |node: &str, kind: &str| -> Vec<Value> {
        events.iter().filter(|e| e["node_id"] == node && e["type"] == kind).cloned().collect()
    };
    let progress = on(wait_id, "NODE_PROGRESS");
    assert_eq!(progress.len(), 2);
    assert_eq!(progress[0]["payload"], json!({"current": 1.0, "total": 3.0, "message": "reading"}));
    assert_eq!(progress[0]["message"], "progress 1/3: reading");
    let logs = on(wait_id, "NODE_LOG");
    assert_eq!((logs[0]["message"].clone(), logs[0]["level"].clone()), (json!("halfway"), json!("warn")));
    assert_eq!(logs[0]["payload"]["fields"], json!({"rows": 10}));
    assert_eq!(on(wait_id, "NODE_ARTIFACT").len(), 2);
    assert_eq!(on(quick["id"].as_str().unwrap(), "NODE_LOG").len(), 1, "the activity-mode task got its line");

    // The artifacts: listed with the run, inline content served with its media type.
    let (_, run) = app.call(Method::GET, &format!("/api/v1/runs/{workflow_id}"), None).await;
    assert_eq!(run["artifacts"].as_array().unwrap().len(), 2, "{run}");
    let csv = app
        .http
        .get(format!("{}/api/v1/artifacts/{}", app.api_url, artifacts[0].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert_eq!(csv.headers()["content-type"], "text/csv");
    assert!(csv.headers()["content-security-policy"].to_str().unwrap().contains("sandbox"));
    assert_eq!(csv.text().await.unwrap(), "a,b\n1,2\n");
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let link = no_redirects
        .get(format!("{}/api/v1/artifacts/{}", app.api_url, artifacts[1].as_str().unwrap()))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(link.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(link.headers()["location"], "https://example.com/d/1");

    // Refused, naming why: an identity of no task, a bad level, content over 1 MiB.
    let (code, body) = post(json!({"temporal": {"workflow_id": "nope"}, "type": "log", "message": "x"})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"][0]["path"], "[0].temporal.workflow_id", "{body}");
    let (code, body) = post(json!([{"temporal": own, "type": "log", "message": "x", "level": "loud"}])).await;
    assert_eq!(
        (code, body["error"]["details"][0]["path"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("[0].level"))
    );
    let big = "x".repeat(1024 * 1024 + 1);
    let (code, body) = post(json!({"temporal": own, "type": "artifact", "name": "big", "data": big})).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("1048576 bytes (1 MiB)"), "{body}");

    // The reporter key reports and does nothing else.
    let events_url = format!("{}/api/v1/events", app.api_url);
    let sent = reporter.post(events_url).json(&json!({"type": "nothing.listens"})).send().await.unwrap();
    assert_eq!(sent.status(), StatusCode::OK);
    let external = format!("{}/api/v1/runs/{workflow_id}/external-events", app.api_url);
    let job = json!({"type": "job_started", "job_id": "j1"});
    assert_eq!(reporter.post(external).json(&job).send().await.unwrap().status(), StatusCode::OK);
    for (method, path) in [
        (Method::GET, format!("/api/v1/runs/{workflow_id}")),
        (Method::GET, "/api/v1/definitions".to_owned()),
        (Method::PUT, format!("/api/v1/definitions/{id}")),
        (Method::POST, format!("/api/v1/definitions/{id}/runs")),
        (Method::POST, format!("/api/v1/runs/{workflow_id}/cancel")),
    ] {
        let response =
            reporter.request(method.clone(), format!("{}{path}", app.api_url)).json(&definition).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method} {path}");
    }
}
