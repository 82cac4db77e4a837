//! Bad input gets a 4xx naming the field, never a 500, a partial write or a lost event; and
//! U+0000, which valid JSON may carry but Postgres cannot store, reaches runs unchanged.

use axum::http::StatusCode as AxumStatus;
use axum::routing::get;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, unique};

/// `/nul` answers JSON with U+0000 in it; `/nul-error` a 400 whose body has a raw NUL byte.
async fn spawn_nul_service() -> String {
    let app = axum::Router::new()
        .route("/nul", get(|| async { axum::Json(json!({"v": "x\u{0}y"})) }))
        .route("/nul-error", get(|| async { (AxumStatus::BAD_REQUEST, "bad\u{0}thing") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_an_event_payload_reaches_the_run_unchanged() {
    let app = TestApp::spawn("nulevent").await;
    let base = spawn_nul_service().await;
    let event_type = format!("nul.{}", unique());
    let id = format!("nul-{}", unique());
    let definition = json!({"id": id, "name": "NUL", "trigger": {"kind": "event", "event_type": event_type},
    "failure_policy": "continue",
    "context": [{"name": "event", "kind": "trigger"}, {"name": "remote", "kind": "http", "url": format!("{base}/nul")}],
    "tasks": [
        {"id": "echo", "kind": "noop", "params": {"text": "{{ trigger.payload.text }}", "nested": "{{ trigger.payload.nested }}", "remote": "{{ context.remote.v }}"}},
        {"id": "call", "kind": "http", "url": format!("{base}/nul")},
        {"id": "refused", "kind": "http", "url": format!("{base}/nul-error")}
    ]});
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    // A second definition turns the event away with a filter that reads the payload, and a
    // third renders its dedupe key from it.
    let filtered = format!("nulf-{}", unique());
    app.put_definition(&json!({"id": filtered, "name": "Filtered", "trigger": {"kind": "event", "event_type": event_type, "filter": "event.payload.text == 'nope'"},
        "tasks": [{"id": "t", "kind": "noop"}]})).await;
    let keyed = format!("nulk-{}", unique());
    app.put_definition(&json!({"id": keyed, "name": "Keyed", "trigger": {"kind": "event", "event_type": event_type, "dedupe_key": "{{ event.payload.text }}"},
        "tasks": [{"id": "t", "kind": "noop"}]})).await;

    // Valid JSON a webhook can send: U+0000 in a value and a key, and the escape character.
    let payload = json!({"text": "a\u{0}b", "nested": {"k\u{0}": "\u{2400}0 and \u{0}\u{2400}"}});
    let body = json!({"type": event_type, "key": "k1", "payload": payload});
    assert!(body.to_string().contains("\\u0000"));
    let (status, answer) = app.call(Method::POST, "/api/v1/events", Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let outcomes = answer["results"][0]["outcomes"].as_array().unwrap();
    let outcome =
        |d: &str| outcomes.iter().find(|o| o["definition_id"] == d).unwrap_or_else(|| panic!("{answer}")).clone();
    assert_eq!(outcome(&id)["outcome"], "accepted", "{answer}");
    assert_eq!(outcome(&filtered)["outcome"], "filtered", "{answer}");
    assert_eq!(outcome(&keyed)["outcome"], "error", "{answer}");
    assert!(outcome(&keyed)["reason"].as_str().unwrap().contains("control character"), "{answer}");

    let workflow_id = outcome(&id)["workflow_id"].as_str().unwrap().to_owned();
    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["trigger"]["payload"], payload, "the run log keeps the payload as sent");
    assert_eq!(run["context_snapshot"]["event"], payload);
    assert_eq!(run["context_snapshot"]["remote"], json!({"v": "x\u{0}y"}));
    let task = |t: &str| run["tasks"].as_array().unwrap().iter().find(|x| x["template_id"] == t).unwrap().clone();
    assert_eq!(task("echo")["status"], "completed", "{run}");
    assert_eq!(
        task("echo")["output"],
        json!({"text": "a\u{0}b", "nested": payload["nested"], "remote": "x\u{0}y"}),
        "the task got the payload unchanged"
    );
    assert_eq!(task("call")["output"]["body"], json!({"v": "x\u{0}y"}));
    // An error text with a NUL fails the task (4xx: at once), shown with ␀, and the run ends.
    assert_eq!(task("refused")["status"], "failed");
    assert!(task("refused")["error"].as_str().unwrap().contains("bad\u{2400}thing"), "{}", task("refused")["error"]);
    assert_eq!(run["status"], "failed", "one task failed; the run finished rather than retrying a write forever");
    let events = app.all_events(&workflow_id, 100).await;
    let completed = events
        .iter()
        .find(|e| e["type"] == "NODE_COMPLETED" && e["node_id"].as_str().unwrap().contains("/echo/"))
        .unwrap();
    assert_eq!(completed["payload"]["output"]["text"], "a\u{0}b");

    // The decision log keeps the event as received; a redelivery is a duplicate.
    let (_, decisions) = app.call(Method::GET, &format!("/api/v1/definitions/{filtered}/decisions"), None).await;
    assert_eq!(decisions["decisions"][0]["detail"]["event"]["payload"], payload, "{decisions}");
    let (status, again) = app.call(Method::POST, "/api/v1/events", Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        again["results"][0]["outcomes"].as_array().unwrap().iter().find(|o| o["definition_id"] == id.as_str()).unwrap()
            ["outcome"],
        "duplicate"
    );

    // A manual run's payload is taken the same way.
    let manual = format!("nulm-{}", unique());
    app.put_definition(&json!({"id": manual, "name": "Manual", "trigger": {"kind": "manual"},
        "tasks": [{"id": "t", "kind": "noop", "params": {"text": "{{ trigger.payload.text }}"}}]}))
        .await;
    let run = app.wait_for_run(&app.start_run(&manual, &json!({"payload": {"text": "m\u{0}n"}})).await).await;
    assert_eq!(run["tasks"][0]["output"], json!({"text": "m\u{0}n"}), "{run}");
}

/// `path` answered with `status` and the error envelope naming `field`.
async fn assert_refused(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
    status: StatusCode,
    field: &str,
) {
    let (got, answer) = app.call(method.clone(), path, body).await;
    assert_eq!(got, status, "{method} {path}: {answer}");
    assert!(answer["error"]["code"].is_string() && answer["error"]["message"].is_string(), "{method} {path}: {answer}");
    let paths: Vec<&str> =
        answer["error"]["details"].as_array().unwrap().iter().filter_map(|d| d["path"].as_str()).collect();
    assert!(paths.contains(&field), "{method} {path}: {field} not in {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_retention_is_refused_naming_the_field() {
    let app = TestApp::spawn("badretention").await;
    let id = format!("ret-{}", unique());
    let put = format!("/api/v1/definitions/{id}");
    for (retention, field) in [
        (json!({"days": 0}), "retention.days"),
        (json!({"days": 36_501}), "retention.days"),
        (json!({"days": "30d"}), "retention.days"),
        (json!({"last_runs": 0}), "retention.last_runs"),
        (json!({"last_runs": 1_000_001}), "retention.last_runs"),
        (json!({"days": 30, "last_runs": 10}), "retention"),
        (json!({}), "retention"),
        (json!({"months": 1}), "retention.months"),
    ] {
        let definition = json!({"id": id, "name": "Kept", "trigger": {"kind": "manual"},
            "tasks": [{"id": "t", "kind": "noop"}], "retention": retention});
        assert_refused(&app, Method::PUT, &put, Some(&definition), StatusCode::UNPROCESSABLE_ENTITY, field).await;
        assert_refused(
            &app,
            Method::POST,
            "/api/v1/validate",
            Some(&definition),
            StatusCode::UNPROCESSABLE_ENTITY,
            field,
        )
        .await;
    }
    let (status, _) = app.call(Method::GET, &put, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was saved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_are_refused_naming_the_field() {
    let app = TestApp::spawn("nulfields").await;
    let id = format!("ctl-{}", unique());
    let definition = |name: &str, param: &str| {
        json!({"id": id, "name": name, "trigger": {"kind": "manual"},
        "tasks": [{"id": "t", "kind": "noop", "params": {"x": param}}]})
    };
    let put = format!("/api/v1/definitions/{id}");
    assert_refused(
        &app,
        Method::PUT,
        &put,
        Some(&definition("a\u{0}b", "ok")),
        StatusCode::UNPROCESSABLE_ENTITY,
        "name",
    )
    .await;
    assert_refused(
        &app,
        Method::PUT,
        &put,
        Some(&definition("ok", "\u{0}")),
        StatusCode::UNPROCESSABLE_ENTITY,
        "tasks[0].params.x",
    )
    .await;
    assert_refused(
        &app,
        Method::POST,
        "/api/v1/validate",
        Some(&definition("ok", "\u{1b}[2J")),
        StatusCode::UNPROCESSABLE_ENTITY,
        "tasks[0].params.x",
    )
    .await;
    let yaml = app
        .http
        .put(format!("{}{put}", app.api_url))
        .header("content-type", "application/yaml")
        .body(format!("id: {id}\nname: \"a\\0b\"\ntrigger: {{kind: manual}}\ntasks: [{{id: t, kind: noop}}]\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(yaml.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        app.store.load_for_run(&taskfactory_schemas::DefinitionId::parse(&id).unwrap(), None).await.is_err(),
        "nothing was saved"
    );
    assert_eq!(
        app.put_definition(&definition("Fine\tname", "line\nbreaks")).await.0,
        StatusCode::CREATED,
        "tabs and line breaks are fine"
    );

    // Events: the type, key and source are names; a bad one in a batch leaves the others.
    assert_refused(
        &app,
        Method::POST,
        "/api/v1/events",
        Some(&json!({"type": "a\u{0}", "payload": {}})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "type",
    )
    .await;
    assert_refused(
        &app,
        Method::POST,
        "/api/v1/events",
        Some(&json!({"type": "a", "source": "s\u{0}", "payload": {}})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "source",
    )
    .await;
    let (status, answer) = app
        .call(
            Method::POST,
            "/api/v1/events",
            Some(&json!([{"type": "ok.type", "payload": {"a": "\u{0}"}}, {"type": "x", "key": "k\u{0}"}])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["results"][0]["status"], "accepted");
    assert_eq!(answer["results"][1]["error"]["path"], "[1].key", "{answer}");

    // Other bodies, query parameters and path segments.
    let trigger = format!("/api/v1/definitions/{id}/runs");
    assert_refused(
        &app,
        Method::POST,
        &trigger,
        Some(&json!({"key": "k\u{0}"})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "key",
    )
    .await;
    assert_refused(
        &app,
        Method::POST,
        "/api/v1/keys",
        Some(&json!({"name": "n\u{0}", "role": "viewer"})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "name",
    )
    .await;
    assert_refused(
        &app,
        Method::POST,
        "/api/v1/human-tasks/x/complete",
        Some(&json!({"by": "b\u{0}"})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "by",
    )
    .await;
    assert_refused(
        &app,
        Method::POST,
        "/api/v1/fleet/pause",
        Some(&json!({"search": "s\u{0}"})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "search",
    )
    .await;
    assert_refused(
        &app,
        Method::GET,
        "/api/v1/runs?definition_id=a%00b",
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
        "definition_id",
    )
    .await;
    assert_refused(
        &app,
        Method::GET,
        "/api/v1/definitions?search=%00",
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
        "search",
    )
    .await;
    assert_refused(&app, Method::GET, "/api/v1/runs/tf%3Ax%00", None, StatusCode::UNPROCESSABLE_ENTITY, "(url path)")
        .await;

    // Axum's own rejections, unknown routes and wrong methods answer the envelope too.
    for (method, path, status) in [
        (Method::GET, "/api/v1/runs/x/events?after=abc", StatusCode::BAD_REQUEST),
        (Method::GET, "/api/v1/nothing-here", StatusCode::NOT_FOUND),
        (Method::DELETE, "/api/v1/events", StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let (got, answer) = app.call(method.clone(), path, None).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert!(
            answer["error"]["code"].is_string() && answer["error"]["message"].is_string(),
            "{method} {path}: {answer}"
        );
    }
}
