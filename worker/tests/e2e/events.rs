//! Event ingress: exactly one run per dedupe key, however often and concurrently an event is
//! delivered, and still after Temporal has forgotten the workflow.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, unique};

fn push_definition(id: &str, event_type: &str) -> Value {
    json!({
        "id": id,
        "name": "Reindex on push",
        "trigger": {"kind": "event", "event_type": event_type, "filter": "event.payload.branch == 'main'"},
        "context": [{"name": "push", "kind": "trigger"}],
        "tasks": [{"id": "reindex", "kind": "noop", "for_each": "push.files", "key": "{{ item }}", "params": {"file": "{{ item }}"}}]
    })
}

fn outcomes(body: &Value, index: usize) -> Vec<(String, String)> {
    body["results"][index]["outcomes"]
        .as_array()
        .unwrap_or_else(|| panic!("no outcomes in {body}"))
        .iter()
        .map(|o| (o["outcome"].as_str().unwrap().to_owned(), o["workflow_id"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_deliveries_start_one_run() {
    let app = TestApp::spawn("events").await;
    let id = format!("push-{}", unique());
    let event_type = format!("repo.pushed.{}", unique());
    assert_eq!(app.put_definition(&push_definition(&id, &event_type)).await.0, StatusCode::CREATED);
    let event = json!({"type": event_type, "key": "abc123", "source": "github", "payload": {"branch": "main", "files": ["a.rs", "src/b.rs"]}});

    // 200 identical deliveries from 20 concurrent senders.
    let mut senders = Vec::new();
    for _ in 0..20 {
        let (http, url, event) = (app.http.clone(), format!("{}/api/v1/events", app.api_url), event.clone());
        senders.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..10 {
                let response = http.post(&url).json(&event).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                let body: Value = response.json().await.unwrap();
                seen.extend(outcomes(&body, 0));
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for sender in senders {
        all.extend(sender.await.unwrap());
    }
    assert_eq!(all.len(), 200);
    let expected_id = format!("tf:{id}:event:abc123");
    assert_eq!(all.iter().filter(|(o, _)| o == "accepted").count(), 1, "{all:?}");
    assert!(all.iter().all(|(o, w)| (o == "accepted" || o == "duplicate") && *w == expected_id), "{all:?}");

    let run = app.wait_for_run(&expected_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["trigger_kind"], "event");
    let files: Vec<&str> =
        run["tasks"].as_array().unwrap().iter().map(|t| t["params"]["file"].as_str().unwrap()).collect();
    assert_eq!(files, ["a.rs", "src/b.rs"]);
    app.wait_for_visibility(&format!("TfDefinitionId = '{id}' AND TfKind = 'run' AND TfTrigger = 'event'"), 1).await;

    // Another key starts a second run; a filtered event starts none.
    let mut other = event.clone();
    other["key"] = json!("def456");
    let (status, body) = app.call(Method::POST, "/api/v1/events", Some(&other)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(outcomes(&body, 0), [("accepted".to_owned(), format!("tf:{id}:event:def456"))]);
    let mut filtered = event.clone();
    filtered["key"] = json!("ghi789");
    filtered["payload"]["branch"] = json!("dev");
    let (_, body) = app.call(Method::POST, "/api/v1/events", Some(&filtered)).await;
    assert_eq!(body["results"][0]["outcomes"][0]["outcome"], "filtered", "{body}");
    assert_eq!(
        body["results"][0]["outcomes"][0]["reason"],
        "filter false: event.payload.branch == 'main' (saw event.payload.branch = \"dev\")"
    );
    app.wait_for_run(&format!("tf:{id}:event:def456")).await;
    let (_, list) = app.call(Method::GET, &format!("/api/v1/runs?definition_id={id}"), None).await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 2, "{list}");

    // Temporal forgets the first run; the receipt still deduplicates its key.
    app.forget_in_temporal(&expected_id).await;
    let (_, body) = app.call(Method::POST, "/api/v1/events", Some(&event)).await;
    assert_eq!(outcomes(&body, 0), [("duplicate".to_owned(), expected_id)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_event_in_a_batch_is_reported_without_losing_the_others() {
    let app = TestApp::spawn("eventbatch").await;
    let id = format!("batch-{}", unique());
    let event_type = format!("order.paid.{}", unique());
    let definition = json!({
        "id": id, "name": "Orders", "trigger": {"kind": "event", "event_type": event_type, "dedupe_key": "order-{{ event.payload.order }}"},
        "tasks": [{"id": "ship", "kind": "noop"}]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let batch = json!([
        {"type": event_type, "payload": {"order": 1}},
        {"payload": {"order": 2}},
        {"type": event_type, "key": "", "payload": {"order": 3}},
        {"type": event_type, "payload": {"order": 4}},
        {"type": "nobody.listens", "payload": {}}
    ]);
    let (status, body) = app.call(Method::POST, "/api/v1/events", Some(&batch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(outcomes(&body, 0), [("accepted".to_owned(), format!("tf:{id}:event:order-1"))]);
    assert_eq!(body["results"][1]["status"], "invalid");
    assert_eq!(body["results"][1]["error"]["path"], "[1]");
    assert!(body["results"][1]["error"]["message"].as_str().unwrap().contains("missing field `type`"), "{body}");
    assert_eq!(body["results"][2]["error"]["path"], "[2].key");
    assert_eq!(outcomes(&body, 3), [("accepted".to_owned(), format!("tf:{id}:event:order-4"))]);
    assert_eq!(body["results"][4]["outcomes"], json!([]));

    // A single malformed event is a 422 naming the field; so is an all-bad batch.
    let (status, body) =
        app.call(Method::POST, "/api/v1/events", Some(&json!({"type": event_type, "payload": {}, "extra": 1}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("unknown field `extra`"), "{body}");
    let (status, body) = app.call(Method::POST, "/api/v1/events", Some(&json!({"type": 7}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"][0]["path"], "type");
    let (status, _) = app.call(Method::POST, "/api/v1/events", Some(&json!([]))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    app.wait_for_run(&format!("tf:{id}:event:order-4")).await;
}

/// Each API process caches the definitions an event type reaches; a change made through
/// another process (a new definition, a new version, a disable) applies to the very next
/// event, because every write of an outcome commits only against current definitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_changed_through_another_api_process_apply_to_the_next_event() {
    let app = TestApp::spawn("eventcache").await;
    let (other, _stop) = app.spawn_api().await;
    let id = format!("cache-{}", unique());
    let event_type = format!("repo.pushed.{}", unique());
    async fn put_through(app: &TestApp, api: &str, definition: &Value) {
        let url = format!("{api}/api/v1/definitions/{}", definition["id"].as_str().unwrap());
        let response = app.http.put(url).json(definition).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.text().await.unwrap());
    }
    async fn send(app: &TestApp, event_type: &str, key: &str) -> Value {
        let event = json!({"type": event_type, "key": key, "payload": {"branch": "main", "files": []}});
        app.call(Method::POST, "/api/v1/events", Some(&event)).await.1
    }

    // The type is read (and cached) while nothing listens to it.
    assert_eq!(send(&app, &event_type, "k1").await["results"][0]["outcomes"], json!([]));
    // A definition created through the other process takes the next event.
    let mut definition = push_definition(&id, &event_type);
    put_through(&app, &other, &definition).await;
    assert_eq!(
        outcomes(&send(&app, &event_type, "k2").await, 0),
        [("accepted".to_owned(), format!("tf:{id}:event:k2"))]
    );
    // A new version's filter applies to the next event.
    definition["trigger"]["filter"] = json!("event.payload.branch == 'release'");
    put_through(&app, &other, &definition).await;
    assert_eq!(outcomes(&send(&app, &event_type, "k3").await, 0), [("filtered".to_owned(), String::new())]);
    // Disabled: no outcome, and the decision log says the event came.
    definition["enabled"] = json!(false);
    put_through(&app, &other, &definition).await;
    assert_eq!(send(&app, &event_type, "k4").await["results"][0]["outcomes"], json!([]));
    let (_, decisions) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/decisions"), None).await;
    let newest = &decisions["decisions"][0];
    assert_eq!(
        (newest["outcome"].as_str(), newest["reason"].as_str()),
        (Some("skipped"), Some("disabled")),
        "{decisions}"
    );
    assert_eq!(newest["detail"]["event"]["key"], "k4");
    app.wait_for_run(&format!("tf:{id}:event:k2")).await;
}
