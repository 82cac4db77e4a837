//! Fleet operations by tag or search: pause, resume, trigger and backfill every matching
//! definition, each reported per definition; checked against what Temporal's schedules and
//! the run log really show.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskfactory_api::schedules::DISABLED_NOTE;

use crate::support::{TestApp, unique};

/// A cron definition that does not fire by itself during the test (1 January, 03:00 UTC).
fn yearly(id: &str, name: &str, tags: &[&str]) -> Value {
    json!({
        "id": id, "name": name, "tags": tags,
        "trigger": {"kind": "cron", "cron": ["0 3 1 1 *"], "timezone": "UTC", "overlap": "allow_all"},
        "tasks": [{"id": "t", "kind": "noop", "params": {"slot": "{{ trigger.scheduled_for }}"}}]
    })
}

/// `POST /api/v1/fleet/{action}`.
async fn fleet(app: &TestApp, action: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, &format!("/api/v1/fleet/{action}"), Some(&body)).await
}

/// `definition id -> (outcome, detail)` of a fleet answer, checking `matched` counts them.
fn outcomes(answer: &Value) -> BTreeMap<String, (String, String)> {
    let results = answer["results"].as_array().unwrap_or_else(|| panic!("no results: {answer}"));
    assert_eq!(answer["matched"], json!(results.len()), "{answer}");
    results
        .iter()
        .map(|r| {
            let text = |field: &str| r[field].as_str().unwrap_or_default().to_owned();
            (text("definition_id"), (text("outcome"), text("detail")))
        })
        .collect()
}

/// `(paused, note)` of a definition's schedule, as Temporal describes it.
async fn schedule_state(app: &TestApp, id: &str) -> (bool, String) {
    let (status, described) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/schedule"), None).await;
    assert_eq!(status, StatusCode::OK, "{described}");
    (described["paused"].as_bool().unwrap(), described["note"].as_str().unwrap_or_default().to_owned())
}

/// Ids of `GET /api/v1/definitions{query}`.
async fn listed(app: &TestApp, query: &str) -> Vec<String> {
    let (status, body) = app.call(Method::GET, &format!("/api/v1/definitions{query}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["definitions"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect()
}

fn error_paths(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details: {body}"))
        .iter()
        .map(|d| d["path"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_operations_act_on_exactly_the_matching_definitions() {
    let app = TestApp::spawn("fleet").await;
    let p = format!("fl-{}", unique());
    let (a, b, c, d, e, m) =
        (format!("{p}-a"), format!("{p}-b"), format!("{p}-c"), format!("{p}-d"), format!("{p}-e"), format!("{p}-m"));
    let mut disabled = yearly(&d, "Disabled D", &["nightly"]);
    disabled["enabled"] = json!(false);
    let documents = [
        yearly(&a, "Invoices A", &["nightly", "billing"]),
        yearly(&b, "Reports B", &["nightly"]),
        yearly(&c, "Untagged C", &[]),
        disabled,
        json!({"id": e, "name": "Pushes E", "tags": ["nightly"], "trigger": {"kind": "event", "event_type": format!("{p}.pushed")},
               "context": [{"name": "event", "kind": "trigger"}], "tasks": [{"id": "t", "kind": "noop"}]}),
        json!({"id": m, "name": "Manual M", "tags": ["nightly"], "trigger": {"kind": "manual"},
               "tasks": [{"id": "t", "kind": "noop", "params": {"from": "{{ trigger.payload.from }}"}}]}),
    ];
    for document in &documents {
        let (status, body) = app.put_definition(document).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    // The list carries the tags and filters by them (all must match) and by search.
    let (_, all) = app.call(Method::GET, "/api/v1/definitions", None).await;
    let tags_of_a =
        all["definitions"].as_array().unwrap().iter().find(|x| x["id"] == a.as_str()).unwrap()["tags"].clone();
    assert_eq!(tags_of_a, json!(["nightly", "billing"]));
    assert_eq!(listed(&app, "?tag=nightly").await, [a.as_str(), &b, &d, &e, &m]);
    assert_eq!(listed(&app, "?tag=billing,nightly").await, [a.as_str()]);
    assert_eq!(listed(&app, "?search=REPORTS").await, [b.as_str()]);
    assert_eq!(listed(&app, &format!("?tag=nightly&search={p}-m")).await, [m.as_str()]);
    let (status, body) = app.call(Method::GET, "/api/v1/definitions?tag=nightly,Not-A-Tag", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_paths(&body), ["tag[1]"]);

    // A dry run reports what would happen and changes nothing.
    let (status, dry) = fleet(&app, "pause", json!({"tags": ["nightly"], "dry_run": true})).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!((dry["action"].as_str(), dry["dry_run"].as_bool()), (Some("pause"), Some(true)));
    let expected_dry: BTreeMap<String, (String, String)> = [
        (&a, "matched", "would pause"),
        (&b, "matched", "would pause"),
        (&d, "skipped", "definition disabled"),
        (&e, "skipped", "no schedule: kind event"),
        (&m, "skipped", "no schedule: kind manual"),
    ]
    .into_iter()
    .map(|(id, outcome, detail)| (id.clone(), (outcome.to_owned(), detail.to_owned())))
    .collect();
    assert_eq!(outcomes(&dry), expected_dry);
    for id in [&a, &b, &c] {
        assert!(!schedule_state(&app, id).await.0, "{id} after the dry run");
    }

    // Pause by tag: exactly the enabled, tagged cron definitions' schedules.
    let (status, paused) = fleet(&app, "pause", json!({"tags": ["nightly"], "note": "fleet maintenance"})).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    let results = outcomes(&paused);
    assert_eq!(results[&a], ("paused".to_owned(), format!("tf:{a}: fleet maintenance")));
    assert_eq!(results[&b].0, "paused");
    assert_eq!(results[&e], ("skipped".to_owned(), "no schedule: kind event".to_owned()));
    assert_eq!(results[&m], ("skipped".to_owned(), "no schedule: kind manual".to_owned()));
    assert_eq!(results[&d], ("skipped".to_owned(), "definition disabled".to_owned()));
    assert!(!results.contains_key(&c));
    assert_eq!(schedule_state(&app, &a).await, (true, "fleet maintenance".to_owned()));
    assert_eq!(schedule_state(&app, &b).await, (true, "fleet maintenance".to_owned()));
    assert!(!schedule_state(&app, &c).await.0, "the untagged schedule is left alone");
    assert_eq!(
        schedule_state(&app, &d).await,
        (true, DISABLED_NOTE.to_owned()),
        "the disabled definition's own pause stays"
    );

    // Resume by search: only the definition whose name matches.
    let (_, resumed) = fleet(&app, "resume", json!({"search": "reports b", "note": "b first"})).await;
    assert_eq!(
        outcomes(&resumed).into_iter().map(|(id, (o, _))| (id, o)).collect::<Vec<_>>(),
        [(b.clone(), "resumed".to_owned())]
    );
    assert_eq!(schedule_state(&app, &b).await, (false, "b first".to_owned()));
    assert!(schedule_state(&app, &a).await.0);

    // Resume by tag: the rest; the disabled definition stays paused.
    let (_, resumed) = fleet(&app, "resume", json!({"tags": ["nightly"]})).await;
    let results = outcomes(&resumed);
    assert_eq!((results[&a].0.as_str(), results[&b].0.as_str()), ("resumed", "resumed"));
    assert_eq!(results[&d], ("skipped".to_owned(), "definition disabled".to_owned()));
    assert!(!schedule_state(&app, &a).await.0);
    assert_eq!(schedule_state(&app, &d).await, (true, DISABLED_NOTE.to_owned()));

    // Trigger by tag: schedule runs for cron, manual runs (with the payload) for the others.
    let (status, triggered) = fleet(&app, "trigger", json!({"tags": ["nightly"], "payload": {"from": "fleet"}})).await;
    assert_eq!(status, StatusCode::OK, "{triggered}");
    let results = outcomes(&triggered);
    for id in [&a, &b, &e, &m] {
        assert_eq!(results[id].0, "triggered", "{id}: {triggered}");
    }
    assert_eq!(results[&d].0, "skipped");
    let workflow_of = |id: &str| {
        triggered["results"].as_array().unwrap().iter().find(|r| r["definition_id"] == id).unwrap()["workflow_id"]
            .clone()
    };
    assert_eq!(workflow_of(&a), Value::Null, "a schedule run's id is Temporal's to choose");
    for id in [&a, &b] {
        let runs = app.completed_runs(&format!("definition_id={id}&trigger=schedule"), 1).await;
        assert!(runs[0]["workflow_id"].as_str().unwrap().starts_with(&format!("tf:{id}:schedule-")), "{runs:?}");
    }
    for id in [&e, &m] {
        let workflow_id = workflow_of(id).as_str().unwrap().to_owned();
        assert!(workflow_id.starts_with(&format!("tf:{id}:manual:")), "{workflow_id}");
        let run = app.wait_for_run(&workflow_id).await;
        assert_eq!(
            (run["status"].as_str(), run["trigger_kind"].as_str()),
            (Some("completed"), Some("manual")),
            "{run}"
        );
        assert_eq!(run["trigger"]["payload"], json!({"from": "fleet"}), "{run}");
    }
    assert_eq!(app.completed_runs(&format!("definition_id={m}&trigger=manual"), 1).await[0]["tasks_completed"], 1);

    // Backfill by tag: two slots for each cron definition, skipped for the others.
    let range = json!({"tags": ["nightly"], "start": "2024-12-31T00:00:00Z", "end": "2026-01-02T00:00:00Z"});
    let (status, backfilled) = fleet(&app, "backfill", range).await;
    assert_eq!(status, StatusCode::OK, "{backfilled}");
    let results = outcomes(&backfilled);
    assert_eq!(results[&a], ("backfilled".to_owned(), format!("tf:{a}: 2 slot(s)")));
    assert_eq!(results[&b].0, "backfilled");
    assert_eq!(results[&m], ("skipped".to_owned(), "no schedule: kind manual".to_owned()));
    let slots =
        backfilled["results"].as_array().unwrap().iter().find(|r| r["definition_id"] == a.as_str()).unwrap()["slots"]
            .clone();
    assert_eq!(slots, json!(["2025-01-01T03:00:00Z", "2026-01-01T03:00:00Z"]));
    for id in [&a, &b] {
        assert_eq!(
            app.completed_runs(&format!("definition_id={id}&trigger=schedule"), 3).await.len(),
            3,
            "one triggered and two backfilled runs of {id}"
        );
    }
    let (_, untagged_runs) = app.call(Method::GET, &format!("/api/v1/runs?definition_id={c}"), None).await;
    assert_eq!(untagged_runs["runs"], json!([]), "the untagged definition never ran");

    // Deleted definitions never match.
    assert_eq!(app.call(Method::DELETE, &format!("/api/v1/definitions/{e}"), None).await.0, StatusCode::NO_CONTENT);
    let (_, dry) = fleet(&app, "trigger", json!({"tags": ["nightly"], "dry_run": true})).await;
    assert_eq!(outcomes(&dry).keys().collect::<Vec<_>>(), [&a, &b, &d, &m]);
    // A new version's tags replace the old ones in every filter.
    let mut retagged = documents[5].clone();
    retagged["tags"] = json!(["adhoc"]);
    assert_eq!(app.put_definition(&retagged).await.1["version"], 2);
    assert_eq!(listed(&app, "?tag=nightly").await, [a.as_str(), &b, &d]);
    assert_eq!(listed(&app, "?tag=adhoc").await, [m.as_str()]);

    // The CLI prints one line per definition and a summary.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskfactory"))
        .args(["fleet", "pause", "--tag", "billing", "--dry-run", "--api-url", &app.api_url, "--api-key", &app.api_key])
        .output()
        .await
        .expect("running taskfactory fleet");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        stdout.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(),
        [a.as_str(), "matched", "would", "pause"],
        "{stdout}"
    );
    assert!(
        stdout.contains("fleet pause (dry run, nothing changed): 1 definition(s) matched: 1 would pause"),
        "{stdout}"
    );
    assert!(!schedule_state(&app, &a).await.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_selectors_and_tags_are_checked_before_anything_happens() {
    let app = TestApp::spawn("fleetcheck").await;
    let id = format!("flc-{}", unique());
    assert_eq!(app.put_definition(&yearly(&id, "Checked", &["ops"])).await.0, StatusCode::CREATED);

    // No selector: refused, naming `tags`, for every action.
    for action in ["pause", "resume", "trigger", "backfill"] {
        let (status, body) = fleet(&app, action, json!({"dry_run": false})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{action}: {body}");
        assert_eq!(error_paths(&body), ["tags"], "{action}");
    }
    let (status, body) = app.call(Method::POST, "/api/v1/fleet/pause", None).await;
    assert_eq!((status, error_paths(&body)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["tags".to_owned()]));

    // Bad tags, unknown fields, fields an action does not use, a bad range.
    let cases = [
        ("pause", json!({"tags": ["ops", "Ops"]}), "tags[1]"),
        ("pause", json!({"tags": ["ops"], "tag": "ops"}), "tag"),
        ("resume", json!({"tags": ["ops"], "payload": {}}), "payload"),
        ("backfill", json!({"tags": ["ops"], "start": "2026-01-01T00:00:00Z"}), "end"),
        ("backfill", json!({"tags": ["ops"], "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}), "end"),
        ("backfill", json!({"tags": ["ops"], "start": "soon", "end": "2026-01-01T00:00:00Z"}), "start"),
    ];
    for (action, body, path) in cases {
        let (status, answer) = fleet(&app, action, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(error_paths(&answer), [path], "{body}");
    }
    assert!(!schedule_state(&app, &id).await.0, "nothing was paused");

    // A document's tags are validated with their index; nothing is saved.
    let (status, body) = app.put_definition(&yearly(&format!("{id}-x"), "Bad tags", &["ok", "Bad Tag", "ok"])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_paths(&body), ["tags[1]", "tags[2]"]);
    assert_eq!(listed(&app, "").await, [id.as_str()]);

    // A selector that matches nothing is an empty answer, not an error; the CLI exits 0.
    let (status, body) = fleet(&app, "pause", json!({"tags": ["nobody"]})).await;
    assert_eq!((status, body["matched"].clone(), body["results"].clone()), (StatusCode::OK, json!(0), json!([])));
    // The CLI exits non-zero when the API refuses the call.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskfactory"))
        .args(["fleet", "resume", "--api-url", &app.api_url, "--api-key", &app.api_key])
        .output()
        .await
        .expect("running taskfactory fleet");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("tags: name tags or a search text"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
