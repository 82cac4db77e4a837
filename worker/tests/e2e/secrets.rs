//! Secrets reach the services they are meant for and nothing else: not the run log, not the
//! plan, not an error message, not a Temporal history.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::get;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TEST_SECRET, TestApp, unique};

/// What the service was sent: the `authorization` header and the `t` query parameter.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// `/echo` answers with what it was sent; `/fail` answers 500 with the same, as an error body.
async fn spawn_echo_service() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let (echo, fail) = (seen.clone(), seen.clone());
    let record = |seen: &Seen, headers: &HeaderMap, query: &std::collections::HashMap<String, String>| {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let t = query.get("t").cloned().unwrap_or_default();
        seen.lock().unwrap().push((auth.clone(), t.clone()));
        json!({"auth": auth, "t": t, "items": [{"id": "a"}]})
    };
    let app = axum::Router::new()
        .route(
            "/echo",
            get(move |headers: HeaderMap, Query(q): Query<_>| async move { Json(record(&echo, &headers, &q)) }),
        )
        .route(
            "/fail",
            get(move |headers: HeaderMap, Query(q): Query<_>| async move {
                (AxumStatus::INTERNAL_SERVER_ERROR, record(&fail, &headers, &q).to_string())
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

/// Every text of a history, payloads decoded (they are base64 in the JSON).
fn history_text(history: &[u8]) -> String {
    fn walk(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    if key == "data"
                        && let Some(encoded) = v.as_str()
                        && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded)
                    {
                        out.push_str(&String::from_utf8_lossy(&bytes));
                    }
                    walk(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            Value::String(s) => out.push_str(s),
            _ => {}
        }
    }
    let mut out = String::new();
    walk(&serde_json::from_slice(history).expect("history JSON"), &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_the_request_and_are_redacted_everywhere_else() {
    let app = TestApp::spawn("secrets").await;
    let (base, seen) = spawn_echo_service().await;
    let id = format!("secrets-{}", unique());
    let auth = "Bearer {{ secret.API_TOKEN }}";
    let definition = json!({
        "id": id, "name": "Secrets", "trigger": {"kind": "manual"},
        "failure_policy": "continue",
        "context": [
            {"name": "remote", "kind": "http", "url": format!("{base}/echo?t={{{{ secret.API_TOKEN }}}}"), "headers": {"authorization": auth}},
            {"name": "rows", "kind": "sql", "query": "select $1::text as token, 1 as n", "params": ["{{ secret.API_TOKEN }}"]}
        ],
        "tasks": [
            {"id": "call", "kind": "http", "url": format!("{base}/echo?t={{{{ secret.API_TOKEN }}}}"), "headers": {"authorization": auth}},
            {"id": "fails", "kind": "http", "url": format!("{base}/fail?t={{{{ secret.API_TOKEN }}}}"), "headers": {"authorization": auth},
             "retry": {"max_attempts": 1}},
            {"id": "unset", "kind": "http", "url": format!("{base}/echo?t={{{{ secret.NOT_SET }}}}")}
        ]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;
    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "failed", "two tasks fail: {run}");

    // The service got the real value, from the context source and from both tasks.
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().all(|(auth, t)| auth == &format!("Bearer {TEST_SECRET}") && t == TEST_SECRET), "{got:?}");

    // What came back is redacted: the context snapshot, a task's output, an error.
    let placeholder = "⟦secret:API_TOKEN⟧";
    assert_eq!(run["context_snapshot"]["remote"]["auth"], format!("Bearer {placeholder}"));
    assert_eq!(run["context_snapshot"]["rows"], json!([{"token": placeholder, "n": 1}]));
    let task = |t: &str| run["tasks"].as_array().unwrap().iter().find(|x| x["template_id"] == t).unwrap().clone();
    assert_eq!(task("call")["status"], "completed");
    assert_eq!(task("call")["output"]["body"]["t"], placeholder);
    let error = task("fails")["error"].as_str().unwrap().to_owned();
    assert!(error.contains("HTTP 500") && error.contains(placeholder), "{error}");
    let error = task("unset")["error"].as_str().unwrap().to_owned();
    assert!(error.contains("secret NOT_SET is not set"), "{error}");

    // Nowhere in the run log, the plan, the audit log or any table is the value.
    let tables: Vec<String> = sqlx::query_scalar("select tablename::text from pg_tables where schemaname = 'public'")
        .fetch_all(app.store.pool())
        .await
        .unwrap();
    assert!(tables.len() >= 5, "{tables:?}");
    for table in &tables {
        let hits: i64 =
            sqlx::query_scalar(&format!("select count(*) from {table} t where t::text like '%' || $1 || '%'"))
                .bind(TEST_SECRET)
                .fetch_one(app.store.pool())
                .await
                .unwrap();
        assert_eq!(hits, 0, "table {table} holds the secret");
    }
    // Nor the API's answers, nor any Temporal history of the run or its tasks.
    for path in [
        format!("/api/v1/runs/{workflow_id}"),
        format!("/api/v1/runs/{workflow_id}/events"),
        format!("/api/v1/runs/{workflow_id}/graph"),
    ] {
        let (status, body) = app.call(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!body.to_string().contains(TEST_SECRET), "{path}");
    }
    let mut histories = vec![workflow_id.clone()];
    // Each task's workflow: its own in workflow mode, its batch in activity mode.
    for task in run["tasks"].as_array().unwrap() {
        let holder = task["temporal_workflow_id"].as_str().unwrap().to_owned();
        if !histories.contains(&holder) {
            histories.push(holder);
        }
    }
    for wf in &histories {
        let text = history_text(&taskfactory::temporal::history_json(&app.client, wf).await.unwrap());
        assert!(text.contains("secret:API_TOKEN") || wf != &workflow_id, "the run's history holds placeholders");
        assert!(!text.contains(TEST_SECRET), "the history of {wf} holds the secret");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_refused_where_they_would_be_stored() {
    let app = TestApp::spawn("secretsbad").await;
    let id = format!("secretsbad-{}", unique());
    let definition = json!({
        "id": id, "name": "Leaky", "trigger": {"kind": "manual"},
        "tasks": [{"id": "t", "kind": "noop", "params": {"token": "{{ secret.API_TOKEN }}"}},
                  {"id": "h", "kind": "http", "url": "https://example.com/", "headers": {"x": "{{ secret.API_TOKEN | lower }}"}}]
    });
    let (status, body) = app.put_definition(&definition).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let details = body["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 1, "the filter is only found when the request is planned: {body}");
    assert_eq!(details[0]["path"], "tasks[0].params");
    assert!(details[0]["message"].as_str().unwrap().contains("secrets may only be used"), "{body}");

    // A filter over a secret fails the plan (it would transform the placeholder), naming the field.
    let definition = json!({
        "id": id, "name": "Filtered", "trigger": {"kind": "manual"},
        "tasks": [{"id": "h", "kind": "http", "url": "https://example.com/", "headers": {"x": "{{ secret.API_TOKEN | lower }}"}}]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let (status, body) = app.call(Method::POST, &format!("/api/v1/definitions/{id}/dry-run"), Some(&json!({}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body.to_string().contains("tasks[0].headers.x") && body.to_string().contains("transformed by a filter"),
        "{body}"
    );
    assert!(!body.to_string().contains(TEST_SECRET));
}
