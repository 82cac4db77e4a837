//! `GET /api/v1/openapi.json`: served without a key, the same document as the checked-in
//! `api/openapi.json`, and real answers have the fields their documented schemas require.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, unique};

/// The `required` property names of the schema of `method path`'s `status` answer.
fn required_fields(document: &Value, method: &str, path: &str, status: &str) -> Vec<String> {
    let schema = &document["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"];
    let target =
        schema["$ref"].as_str().unwrap_or_else(|| panic!("{method} {path} {status} has no schema reference: {schema}"));
    let schema = document.pointer(target.trim_start_matches('#')).unwrap_or_else(|| panic!("{target} resolves"));
    schema["required"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_owned()).collect()
}

fn assert_has_fields(body: &Value, fields: &[String], what: &str) {
    assert!(!fields.is_empty(), "{what}: the schema requires nothing, so this checks nothing");
    for field in fields {
        assert!(body.get(field).is_some(), "{what}: the answer lacks the documented field {field:?}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_served_openly_and_matches_real_answers() {
    let app = TestApp::spawn_with("openapi", false).await;

    // No key needed, like /healthz.
    let response = reqwest::get(format!("{}/api/v1/openapi.json", app.api_url)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."), "{}", document["openapi"]);
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/healthz",
        "/api/v1/definitions/{id}",
        "/api/v1/events",
        "/api/v1/runs/{workflow_id}/stream",
        "/api/v1/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    let methods: Vec<&String> = paths["/api/v1/definitions/{id}"].as_object().unwrap().keys().collect();
    assert_eq!(methods, ["get", "put", "delete"]);
    let checked_in: Value = serde_json::from_str(include_str!("../../../api/openapi.json")).unwrap();
    assert!(document == checked_in, "the served document is the checked-in api/openapi.json");

    // Real answers carry what their schemas require: a save, a read, a trigger, an error.
    let id = format!("openapi-{}", unique());
    let definition =
        json!({"id": id, "name": "OpenAPI", "trigger": {"kind": "manual"}, "tasks": [{"id": "t", "kind": "noop"}]});
    let (status, saved) = app.put_definition(&definition).await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");
    assert_has_fields(&saved, &required_fields(&document, "put", "/api/v1/definitions/{id}", "201"), "PUT definition");
    let (status, read) = app.call(Method::GET, &format!("/api/v1/definitions/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_has_fields(&read, &required_fields(&document, "get", "/api/v1/definitions/{id}", "200"), "GET definition");
    let (status, listed) = app.call(Method::GET, "/api/v1/runs", None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_has_fields(&listed, &required_fields(&document, "get", "/api/v1/runs", "200"), "GET runs");
    let (status, missing) = app.call(Method::GET, "/api/v1/definitions/no-such-definition", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    assert_has_fields(&missing, &required_fields(&document, "get", "/api/v1/definitions/{id}", "404"), "404");
    assert_has_fields(&missing["error"], &["code".into(), "message".into(), "details".into()], "the error envelope");
}
