//! API keys and roles on every route, and the audit log of mutating calls.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskfactory_activities::auth_store::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TestApp, authed_client, unique};
use taskfactory::startup::EventRate;

async fn call(
    client: &reqwest::Client,
    method: Method,
    url: String,
    body: Option<&Value>,
) -> (StatusCode, Value, String) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let request_id =
        response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), request_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_a_key_with_the_right_role_and_changes_are_audited() {
    let app = TestApp::spawn("auth").await;
    let base = app.api_url.clone();
    let anonymous = reqwest::Client::new();

    // Open: health and the UI's files. Everything else: 401 without a key.
    assert_eq!(call(&anonymous, Method::GET, format!("{base}/healthz"), None).await.0, StatusCode::OK);
    assert_eq!(call(&anonymous, Method::GET, format!("{base}/"), None).await.0, StatusCode::OK);
    let (status, body, _) = call(&anonymous, Method::GET, format!("{base}/api/v1/definitions"), None).await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::UNAUTHORIZED, json!("unauthorized")));
    let bogus = authed_client("tfk_nothing_here");
    assert_eq!(call(&bogus, Method::GET, format!("{base}/api/v1/runs"), None).await.0, StatusCode::UNAUTHORIZED);

    // Keys of each role, made by the admin through the API; the secret is answered once.
    let mut keys = std::collections::HashMap::new();
    for role in ["viewer", "operator"] {
        let (status, body) =
            app.call(Method::POST, "/api/v1/keys", Some(&json!({"name": format!("{role} key"), "role": role}))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        keys.insert(role, (body["key"].as_str().unwrap().to_owned(), body["info"]["id"].as_str().unwrap().to_owned()));
    }
    let (_, listed) = app.call(Method::GET, "/api/v1/keys", None).await;
    assert!(!listed.to_string().contains(&keys["viewer"].0), "secrets are never listed");
    let (status, body) = app.call(Method::POST, "/api/v1/keys", Some(&json!({"name": "x", "role": "root"}))).await;
    assert_eq!(
        (status, body["error"]["details"][0]["path"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("role"))
    );

    let viewer = authed_client(&keys["viewer"].0);
    let operator = authed_client(&keys["operator"].0);
    let id = format!("auth-{}", unique());
    let definition =
        json!({"id": id, "name": "Auth", "trigger": {"kind": "manual"}, "tasks": [{"id": "t", "kind": "noop"}]});
    let put = format!("{base}/api/v1/definitions/{id}");

    let (status, body, refused_id) = call(&viewer, Method::PUT, put.clone(), Some(&definition)).await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::FORBIDDEN, json!("forbidden")));
    assert_eq!(call(&operator, Method::PUT, put.clone(), Some(&definition)).await.0, StatusCode::FORBIDDEN);
    let (status, _, saved_id) = call(&app.http, Method::PUT, put.clone(), Some(&definition)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(call(&viewer, Method::GET, put.clone(), None).await.0, StatusCode::OK);
    assert_eq!(
        call(&viewer, Method::POST, format!("{base}/api/v1/definitions/{id}/runs"), Some(&json!({}))).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&operator, Method::POST, format!("{base}/api/v1/definitions/{id}/runs"), Some(&json!({}))).await.0,
        StatusCode::CREATED
    );
    assert_eq!(call(&operator, Method::GET, format!("{base}/api/v1/keys"), None).await.0, StatusCode::FORBIDDEN);

    // Revoked and expired keys stop working at once.
    let (status, _) = app.call(Method::DELETE, &format!("/api/v1/keys/{}", keys["viewer"].1), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(call(&viewer, Method::GET, put.clone(), None).await.0, StatusCode::UNAUTHORIZED);
    let (_, expired) =
        app.store.create_key("old", Role::Admin, Some(chrono::Utc::now() - chrono::Duration::hours(1))).await.unwrap();
    assert_eq!(call(&authed_client(&expired), Method::GET, put.clone(), None).await.0, StatusCode::UNAUTHORIZED);

    // The audit log has who, what, the answer and the request id of both PUTs.
    let (_, audit) = app.call(Method::GET, "/api/v1/audit?limit=100", None).await;
    let entries = audit["audit"].as_array().unwrap();
    let refused = entries.iter().find(|e| e["request_id"] == refused_id.as_str()).expect("the refused PUT is audited");
    assert_eq!((refused["key_name"].clone(), refused["status"].clone()), (json!("viewer key"), json!(403)));
    assert_eq!(refused["action"], format!("PUT /api/v1/definitions/{id}"));
    let saved = entries.iter().find(|e| e["request_id"] == saved_id.as_str()).expect("the PUT is audited");
    assert_eq!(
        (saved["key_name"].clone(), saved["role"].clone(), saved["status"].clone()),
        (json!("e2e"), json!("admin"), json!(201))
    );
    assert!(
        entries.iter().all(|e| e["action"].as_str().unwrap().split(' ').next() != Some("GET")),
        "reads are not audited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_ingress_is_rate_limited_per_key_and_bodies_are_capped() {
    let app = TestApp::spawn("limits").await;
    let (api, _stop) = app
        .spawn_api_with(|mut config| {
            config.event_rate = Some(EventRate { per_second: 0.01, burst: 5.0 });
            config
        })
        .await;
    let events: Vec<Value> = (0..5).map(|i| json!({"type": "nobody.listens", "key": format!("k{i}")})).collect();
    let (status, body, _) = call(&app.http, Method::POST, format!("{api}/api/v1/events"), Some(&json!(events))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response =
        app.http.post(format!("{api}/api/v1/events")).json(&json!({"type": "nobody.listens"})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_some());
    // Another key has a bucket of its own.
    let (_, other) = app.store.create_key("other", Role::Operator, None).await.unwrap();
    let (status, _, _) = call(
        &authed_client(&other),
        Method::POST,
        format!("{api}/api/v1/events"),
        Some(&json!({"type": "nobody.listens"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Bodies over the limit are refused before they are read: the request announces one byte
    // more than the limit and sends none of it, and the answer still comes. (Sending the body
    // through a client races the server closing the connection: a broken pipe, not an answer.)
    let address = app.api_url.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         authorization: Bearer {}\r\ncontent-length: {}\r\n\r\n",
        app.api_key,
        taskfactory_api::MAX_BODY_BYTES + 1
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), socket.read(&mut answer))
        .await
        .expect("the server answers without waiting for the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

/// Keys are remembered for a few seconds per API process: one revoked through this API is
/// refused at once, one revoked behind its back (the CLI writes Postgres directly) within
/// `KEY_CACHE_TTL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_at_once_here_and_soon_everywhere() {
    let app = TestApp::spawn("revoke").await;
    let base = app.api_url.clone();
    let mut made = Vec::new();
    for name in ["through the api", "through the cli"] {
        let (status, body) =
            app.call(Method::POST, "/api/v1/keys", Some(&json!({"name": name, "role": "viewer"}))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let client = authed_client(body["key"].as_str().unwrap());
        // Used once, so this process remembers it.
        assert_eq!(call(&client, Method::GET, format!("{base}/api/v1/runs"), None).await.0, StatusCode::OK);
        made.push((client, body["info"]["id"].as_str().unwrap().to_owned()));
    }
    let (status, _) = app.call(Method::DELETE, &format!("/api/v1/keys/{}", made[0].1), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(call(&made[0].0, Method::GET, format!("{base}/api/v1/runs"), None).await.0, StatusCode::UNAUTHORIZED);

    app.store.revoke_key(&made[1].1).await.unwrap();
    let deadline = taskfactory_api::auth::KEY_CACHE_TTL + std::time::Duration::from_secs(5);
    crate::support::eventually(deadline, "the key revoked behind the API's back to be refused", || async {
        call(&made[1].0, Method::GET, format!("{base}/api/v1/runs"), None).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
}
