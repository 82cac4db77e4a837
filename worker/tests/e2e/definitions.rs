//! Definitions through the API: validation names the field, versions are immutable.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, unique};

fn details(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details in {body}"))
        .iter()
        .map(|d| format!("{}: {}", d["path"].as_str().unwrap(), d["message"].as_str().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_name_the_field_and_write_nothing() {
    let app = TestApp::spawn("validation").await;
    let id = format!("bad-{}", unique());
    let bad = json!({
        "id": id,
        "name": "Bad",
        "trigger": {"kind": "cron", "cron": ["0 9 * *"], "timezone": "Europe/Berlin"},
        "context": [{"name": "regions", "kind": "static", "value": []}],
        "tasks": [
            {"id": "remind", "kind": "noop", "for_each": "invoices"},
            {"id": "after", "kind": "workflow", "depends_on": ["remind", "ghost"]}
        ]
    });
    let (status, body) = app.put_definition(&bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid");
    let found = details(&body);
    for expected in [
        "trigger.cron[0]: expected 5 fields (minute hour day-of-month month day-of-week), got 4",
        "tasks[0].for_each: unknown context \"invoices\"",
        "tasks[1].workflow_type: required for kind \"workflow\"",
        "tasks[1].depends_on[1]: unknown task \"ghost\"",
    ] {
        assert!(found.contains(&expected.to_string()), "missing {expected:?} in {found:#?}");
    }
    let (status, _) = app.call(Method::GET, &format!("/api/v1/definitions/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a rejected definition is not stored");

    // Structure errors carry the path too; YAML bodies are accepted.
    let response = app
        .http
        .put(format!("{}/api/v1/definitions/{id}", app.api_url))
        .header("content-type", "application/yaml")
        .body("name: X\ntrigger: {kind: manual}\ntasks:\n  - id: a\n    kind: teleport\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert!(details(&body)[0].starts_with("tasks[0].kind: unknown variant `teleport`"), "{body}");

    // The id in the body must match the URL.
    let mismatched =
        json!({"id": "other", "name": "X", "trigger": {"kind": "manual"}, "tasks": [{"id": "a", "kind": "noop"}]});
    let (status, body) = app.call(Method::PUT, &format!("/api/v1/definitions/{id}"), Some(&mismatched)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(details(&body)[0].starts_with("id: "), "{body}");

    // Bad trigger bodies are named too.
    let (status, body) =
        app.call(Method::POST, &format!("/api/v1/definitions/{id}/runs"), Some(&json!({"kye": "x"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("unknown field `kye`"), "{body}");
    let (status, body) = app.call(Method::GET, "/api/v1/definitions/Not_A_Slug", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_a_new_immutable_version() {
    let app = TestApp::spawn("versions").await;
    let id = format!("ver-{}", unique());
    let mut doc =
        json!({"id": id, "name": "V1", "trigger": {"kind": "manual"}, "tasks": [{"id": "a", "kind": "noop"}]});
    let (status, body) = app.put_definition(&doc).await;
    assert_eq!(
        (status, body["version"].clone(), body["changed"].clone()),
        (StatusCode::CREATED, json!(1), json!(true))
    );
    let (status, body) = app.put_definition(&doc).await;
    assert_eq!((status, body["version"].clone(), body["changed"].clone()), (StatusCode::OK, json!(1), json!(false)));
    doc["name"] = json!("V2");
    let (_, body) = app.put_definition(&doc).await;
    assert_eq!(body["version"], 2);

    let (_, versions) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/versions"), None).await;
    let names: Vec<&str> =
        versions["versions"].as_array().unwrap().iter().map(|v| v["document"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["V2", "V1"]);
    let (_, current) = app.call(Method::GET, &format!("/api/v1/definitions/{id}"), None).await;
    assert_eq!(current["version"], 2);
    assert_eq!(current["definition"]["enabled"], true, "defaults are filled in");
    let (_, list) = app.call(Method::GET, "/api/v1/definitions", None).await;
    assert!(list["definitions"].as_array().unwrap().iter().any(|d| d["id"] == id.as_str() && d["version"] == 2));

    let (_, v1) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/versions/1"), None).await;
    assert_eq!(v1["version"]["document"]["name"], "V1");
    let (_, diff) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/diff?from=1&to=2"), None).await;
    assert_eq!(diff["changes"], json!([{"path": "name", "op": "changed", "from": "V1", "to": "V2"}]), "{diff}");
    let (status, body) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/diff?from=one"), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"][0]["path"], "from");
    let (status, _) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/versions/9"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = app.call(Method::DELETE, &format!("/api/v1/definitions/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.call(Method::GET, &format!("/api/v1/definitions/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.trigger(&id, &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a deleted definition cannot be triggered");
    // Versions stay readable; saving again revives the definition with the next version.
    let (_, body) = app.put_definition(&doc).await;
    assert_eq!(body["version"], 3);

    doc["enabled"] = json!(false);
    app.put_definition(&doc).await;
    let (status, body) = app.trigger(&id, &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "definition_disabled");
}
