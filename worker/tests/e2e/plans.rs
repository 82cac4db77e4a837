//! Dry-runs: the plan a run would make, without starting anything, equal to the real one.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, unique};

fn definition(id: &str) -> Value {
    json!({
        "id": id,
        "name": "Orders",
        "trigger": {"kind": "event", "event_type": format!("order.placed.{id}"), "filter": "event.payload.total > 0"},
        "context": [
            {"name": "order", "kind": "trigger"},
            {"name": "warehouses", "kind": "static", "value": [{"code": "ber", "open": true}, {"code": "muc", "open": false}]}
        ],
        "tasks": [
            {"id": "pick", "kind": "noop", "for_each": "warehouses", "key": "{{ item.code }}", "when": "item.open",
             "params": {"order": "{{ context.order.id }}", "warehouse": "{{ item.code }}"}},
            {"id": "bill", "kind": "noop", "depends_on": ["pick"], "params": {"total": "{{ trigger.payload.total }}"}}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_explains_the_plan_and_equals_the_real_one() {
    let app = TestApp::spawn("dryrun").await;
    let id = format!("orders-{}", unique());
    assert_eq!(app.put_definition(&definition(&id)).await.0, StatusCode::CREATED);
    let event = json!({"type": format!("order.placed.{id}"), "key": "o-1", "payload": {"id": "o-1", "total": 40}});
    let run_workflow_id = format!("tf:{id}:event:o-1");

    let (status, dry) = app
        .call(
            Method::POST,
            &format!("/api/v1/definitions/{id}/dry-run"),
            Some(&json!({"event": event, "run_workflow_id": run_workflow_id})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["filter"]["holds"], true);
    assert_eq!(dry["summary"], json!({"spawn": 2, "skip": 1, "deferred": 0}));
    let decisions = dry["plan"]["decisions"].as_array().unwrap();
    assert!(
        decisions
            .iter()
            .any(|d| d["item_key"] == "muc" && d["outcome"] == "skip" && d["reason"] == "condition false: item.open")
    );
    assert_eq!(dry["plan"]["tasks"][0]["params"], json!({"order": "o-1", "warehouse": "ber"}));
    let (_, runs) = app.call(Method::GET, &format!("/api/v1/runs?definition_id={id}"), None).await;
    assert_eq!(runs["runs"], json!([]), "a dry-run starts nothing");

    // The real run of the same event stores the same plan.
    let (_, ingested) = app.call(Method::POST, "/api/v1/events", Some(&event)).await;
    assert_eq!(ingested["results"][0]["outcomes"][0]["workflow_id"], run_workflow_id.as_str(), "{ingested}");
    let run = app.wait_for_run(&run_workflow_id).await;
    assert_eq!(run["plan"], dry["plan"]);

    // Overridden context and a failing filter are explained too.
    let sample = json!({"event": {"type": format!("order.placed.{id}"), "payload": {"id": "o-2", "total": 0}},
                        "context": {"warehouses": [{"code": "ham", "open": true}]}});
    let (_, dry) = app.call(Method::POST, &format!("/api/v1/definitions/{id}/dry-run"), Some(&sample)).await;
    assert_eq!(dry["filter"]["holds"], false, "{dry}");
    assert_eq!(dry["plan"]["tasks"][0]["item_key"], "ham");

    // Bad input names the field.
    let (status, body) =
        app.call(Method::POST, &format!("/api/v1/definitions/{id}/dry-run"), Some(&json!({"evnt": {}}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let broken = json!({"context": {"warehouses": {"not": "a list"}}});
    let (status, body) = app.call(Method::POST, &format!("/api/v1/definitions/{id}/dry-run"), Some(&broken)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"][0]["path"], "tasks[0].for_each");
}
