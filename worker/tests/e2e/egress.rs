//! The SSRF guard follows redirects itself: every hop is checked and pinned like the first, a
//! chain longer than the limit is refused, and credentials stay with the origin they were
//! meant for. The seam: `Egress::allowed` makes the test server on 127.0.0.1 count as public,
//! while 127.0.0.2 (loopback too) stays private.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode as AxumStatus, header};
use axum::response::IntoResponse;
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};
use taskfactory_activities::egress::{self, Egress, MAX_REDIRECTS};
use taskfactory_activities::secrets::SecretStore;
use taskfactory_schemas::run::HttpRequestInput;
use temporalio_sdk::activities::ActivityError;

use crate::support::{TestApp, unique};

fn redirect(to: String) -> impl IntoResponse {
    (AxumStatus::FOUND, [(header::LOCATION, to)])
}

/// The "private" service on 127.0.0.2; answers its secret and counts the calls.
async fn spawn_private_service() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/latest/meta-data/",
        get(move || async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Json(json!({"secret": "instance credentials"}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.expect("binding 127.0.0.2 (loopback)");
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, hits)
}

/// The "public" service on 127.0.0.1: redirects to the private one, to the metadata address,
/// through a chain of `n` hops, or to another origin that echoes the `authorization` it got.
async fn spawn_public_service(private: String, echo: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hops = base.clone();
    let app = axum::Router::new()
        .route("/to-private", get(move || async move { redirect(format!("{private}/latest/meta-data/")) }))
        .route("/to-metadata", get(|| async { redirect("http://169.254.169.254/latest/meta-data/".to_owned()) }))
        .route(
            "/hop/{n}",
            get(move |Path(n): Path<usize>| async move {
                if n == 0 {
                    Json(json!({"arrived": true})).into_response()
                } else {
                    redirect(format!("{hops}/hop/{}", n - 1)).into_response()
                }
            }),
        )
        .route(
            "/elsewhere",
            get(move || async move { (AxumStatus::TEMPORARY_REDIRECT, [(header::LOCATION, format!("{echo}/echo"))]) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// Another origin (127.0.0.1, another port): answers the `authorization` header it was sent.
async fn spawn_echo_service() -> String {
    let app = axum::Router::new().route(
        "/echo",
        get(|headers: HeaderMap| async move {
            Json(json!({"authorization": headers.get("authorization").and_then(|v| v.to_str().ok())}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn strict_egress() -> Egress {
    Egress { allow_private: false, allowed: Arc::from(vec!["127.0.0.1".parse::<IpAddr>().unwrap()]) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_checked_at_every_hop_and_limited() {
    let app = TestApp::spawn("redirects").await;
    let (private, hits) = spawn_private_service().await;
    let echo = spawn_echo_service().await;
    let public = spawn_public_service(private.clone(), echo).await;
    let (strict, _stop) = app
        .spawn_api_with(|mut config| {
            config.context.egress = strict_egress();
            config
        })
        .await;
    let dry_run = |path: &str| {
        let (app, strict, public, path) = (&app, strict.clone(), public.clone(), path.to_owned());
        async move {
            let id = format!("redir-{}", unique());
            let definition = json!({"id": id, "name": "Redirects", "trigger": {"kind": "manual"},
                "context": [{"name": "doc", "kind": "http", "url": format!("{public}{path}")}],
                "tasks": [{"id": "t", "kind": "noop"}]});
            assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
            let response = app
                .http
                .post(format!("{strict}/api/v1/definitions/{id}/dry-run"))
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };

    // The first host counts as public; the redirect to the private one is refused unsent.
    let (status, body) = dry_run("/to-private").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let detail = &body["error"]["details"][0];
    assert_eq!(detail["path"], "context[0].url");
    let message = detail["message"].as_str().unwrap();
    assert!(message.contains("redirect 1") && message.contains("refusing to call 127.0.0.2"), "{message}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the private service was never called");
    // The private service itself is refused directly as well.
    let direct =
        egress::send(&egress::http_client(), &strict_egress(), outgoing(&format!("{private}/latest/meta-data/"), None))
            .await;
    assert!(matches!(direct, Err(egress::EgressError::Refused(_))), "{direct:?}");

    // An IP-literal target needs no DNS, and is checked all the same.
    let (status, body) = dry_run("/to-metadata").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["details"][0]["message"].as_str().unwrap().contains("169.254.169.254"), "{body}");

    // A chain at the limit arrives; one hop more is refused.
    let (status, body) = dry_run(&format!("/hop/{MAX_REDIRECTS}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["context"]["doc"], json!({"arrived": true}));
    let (status, body) = dry_run(&format!("/hop/{}", MAX_REDIRECTS + 1)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["error"]["details"][0]["message"].as_str().unwrap();
    assert!(message.contains(&format!("more than {MAX_REDIRECTS} redirects")), "{message}");

    // `http` tasks send through the same guard: refused permanently, not retried.
    let secrets = SecretStore::default();
    let task = |url: String, headers: &[(&str, &str)]| HttpRequestInput {
        method: "GET".into(),
        url,
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        body: None,
        timeout_secs: 5,
    };
    let refused = taskfactory_activities::kinds::http::send(
        &egress::http_client(),
        &strict_egress(),
        &secrets,
        &task(format!("{public}/to-private"), &[]),
    )
    .await;
    let (message, permanent) = failure(refused.expect_err("a redirect to a private address fails the task"));
    assert!(message.contains("refusing to call 127.0.0.2") && permanent, "{message}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let chain = taskfactory_activities::kinds::http::send(
        &egress::http_client(),
        &strict_egress(),
        &secrets,
        &task(format!("{public}/hop/{}", MAX_REDIRECTS + 1), &[]),
    )
    .await;
    let (message, permanent) = failure(chain.expect_err("too many redirects"));
    assert!(message.contains("more than") && permanent, "{message}");

    // Credentials stay with the origin they were meant for.
    let moved = taskfactory_activities::kinds::http::send(
        &egress::http_client(),
        &strict_egress(),
        &secrets,
        &task(format!("{public}/elsewhere"), &[("authorization", "Bearer t0ken")]),
    )
    .await
    .expect("a redirect to another public origin is followed");
    assert_eq!(moved["body"], json!({"authorization": null}), "{moved}");
}

/// The message of an activity failure, and whether it is permanent.
fn failure(e: ActivityError) -> (String, bool) {
    match e {
        ActivityError::Application(f) => (f.source_error().to_string(), f.is_non_retryable()),
        other => (format!("{other:?}"), false),
    }
}

fn outgoing(url: &str, body: Option<Value>) -> egress::Outgoing {
    egress::Outgoing {
        method: reqwest::Method::GET,
        url: url.parse().unwrap(),
        headers: Default::default(),
        body,
        timeout: std::time::Duration::from_secs(5),
    }
}
