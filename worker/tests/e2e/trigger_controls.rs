//! Trigger controls end to end: concurrency keys (queue, skip, cancel_running; a worker
//! SIGKILLed while runs are queued loses no slot), debounced and batched event triggers, and
//! event ingress that accepts while Temporal is down and starts the runs once it is back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::crash::worker_process;
use crate::operators::temporal_cli;
use crate::restarts::OwnServers;
use crate::support::{TestApp, eventually, save_history_if_asked, unique};

/// A local service whose `/work/{key}/{n}` answers after `hold`, counting the runs (`n`) with
/// a request in flight per key (and the peak), and the order they came in. A request a
/// killed worker left behind and its retry are one run.
#[derive(Clone, Default)]
struct Target {
    state: Arc<Mutex<TargetState>>,
}

#[derive(Default)]
struct TargetState {
    in_flight: BTreeMap<String, BTreeMap<u64, usize>>,
    peak: BTreeMap<String, usize>,
    arrivals: BTreeMap<String, Vec<u64>>,
}

/// Counts a request out of `in_flight` when dropped.
struct Leaving {
    target: Target,
    key: String,
    n: u64,
}

impl Drop for Leaving {
    fn drop(&mut self) {
        let mut s = self.target.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let runs = s.in_flight.entry(self.key.clone()).or_default();
        if let Some(left) = runs.get_mut(&self.n) {
            *left -= 1;
            if *left == 0 {
                runs.remove(&self.n);
            }
        }
    }
}

impl Target {
    async fn spawn(hold: Duration) -> (Self, String) {
        let target = Self::default();
        let shared = target.clone();
        let app = axum::Router::new().route(
            "/work/{key}/{n}",
            get(move |Path((key, n)): Path<(String, u64)>| {
                let shared = shared.clone();
                async move {
                    {
                        let mut s = shared.state.lock().unwrap();
                        let now = {
                            let runs = s.in_flight.entry(key.clone()).or_default();
                            *runs.entry(n).or_default() += 1;
                            runs.len()
                        };
                        let peak = s.peak.entry(key.clone()).or_default();
                        *peak = (*peak).max(now);
                        let arrived = s.arrivals.entry(key.clone()).or_default();
                        if !arrived.contains(&n) {
                            arrived.push(n);
                        }
                    }
                    // Counted out however the request ends: answered, or dropped with the
                    // connection of a killed worker.
                    let _counted = Leaving { target: shared.clone(), key, n };
                    // The service takes its time: that is what makes runs overlap.
                    tokio::time::sleep(hold).await;
                    "done"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (target, base)
    }

    fn peak(&self) -> BTreeMap<String, usize> {
        self.state.lock().unwrap().peak.clone()
    }

    fn arrivals(&self) -> BTreeMap<String, Vec<u64>> {
        self.state.lock().unwrap().arrivals.clone()
    }
}

fn limited(id: &str, base: &str, limit: u32, on_limit: &str) -> Value {
    json!({
        "id": id, "name": "One per customer", "trigger": {"kind": "manual"},
        "concurrency": {"key": "{{ trigger.payload.customer }}", "limit": limit, "on_limit": on_limit},
        "tasks": [{"id": "work", "kind": "http", "method": "GET",
            "url": format!("{base}/work/{{{{ trigger.payload.customer }}}}/{{{{ trigger.payload.n }}}}")}]
    })
}

async fn put_ok(app: &TestApp, definition: &Value) {
    let (status, body) = app.put_definition(definition).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn status_of(app: &TestApp, workflow_id: &str) -> Value {
    let (_, run) = app.call(Method::GET, &format!("/api/v1/runs/{workflow_id}"), None).await;
    run
}

/// Waits (deadline `limit`) until the run exists and has ended; answers it.
async fn finished(app: &TestApp, workflow_id: &str, limit: Duration) -> Value {
    eventually(limit, format!("run {workflow_id} to end"), || async {
        let (code, run) = app.call(Method::GET, &format!("/api/v1/runs/{workflow_id}"), None).await;
        let open = matches!(run["status"].as_str(), Some("running" | "queued"));
        if code == StatusCode::OK && !open { Ok(run) } else { Err(format!("{code} {}", run["status"])) }
    })
    .await
}

/// Waits (deadline 60 s) until the run log says `status`.
async fn wait_for_status(app: &TestApp, workflow_id: &str, status: &str) -> Value {
    eventually(Duration::from_secs(60), format!("run {workflow_id} {status}"), || async {
        let run = status_of(app, workflow_id).await;
        if run["status"] == status { Ok(run) } else { Err(format!("status {}", run["status"])) }
    })
    .await
}

async fn decisions(app: &TestApp, id: &str) -> Vec<Value> {
    let (_, log) = app.call(Method::GET, &format!("/api/v1/definitions/{id}/decisions?limit=200"), None).await;
    log["decisions"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_queued_runs_of_two_keys_keep_the_limit_run_in_order_and_survive_a_worker_kill() {
    let app = TestApp::spawn_with("concurrency", false).await;
    let mut worker = worker_process(&app);
    let (target, base) = Target::spawn(Duration::from_millis(1500)).await;
    let id = format!("conc-{}", unique());
    put_ok(&app, &limited(&id, &base, 1, "queue")).await;

    // Three runs per customer, each started once the previous one is recorded (running or
    // queued), so the queue's order is the start order.
    let mut runs = Vec::new();
    for n in 0..6u64 {
        let customer = if n % 2 == 0 { "a" } else { "b" };
        let run = app.start_run(&id, &json!({"key": format!("r{n}"), "payload": {"customer": customer, "n": n}})).await;
        let expected = if n < 2 { "running" } else { "queued" };
        wait_for_status(&app, &run, expected).await;
        runs.push(run);
    }
    let queued = status_of(&app, &runs[4]).await;
    assert_eq!(queued["status"], "queued", "{queued}");
    let (_, list) = app.call(Method::GET, &format!("/api/v1/runs?definition_id={id}&status=queued"), None).await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 4, "{list}");
    let log = decisions(&app, &id).await;
    let queued_decision = log.iter().find(|d| d["outcome"] == "queued" && d["workflow_id"] == runs[4].as_str());
    let message = queued_decision.unwrap_or_else(|| panic!("no queued decision: {log:#?}"))["message"].clone();
    assert_eq!(message, "queued: key \"a\": 1/1 running, position 2", "{log:#?}");

    // The worker dies while four runs wait; a new one takes over.
    worker.start_kill().unwrap();
    worker.wait().await.unwrap();
    let _worker = worker_process(&app);

    for run in &runs {
        let done = app.wait_for_run_within(run, Duration::from_secs(180)).await;
        assert_eq!(done["status"], "completed", "{done}");
    }
    assert_eq!(target.peak(), BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 1)]), "never two of a key at once");
    assert_eq!(
        target.arrivals(),
        BTreeMap::from([("a".to_owned(), vec![0, 2, 4]), ("b".to_owned(), vec![1, 3, 5])]),
        "first in, first out per key"
    );
    // A queued run's log says it waited, then got its slot.
    let events = app.all_events(&runs[4], 100).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"WORKFLOW_QUEUED") && types.contains(&"WORKFLOW_ADMITTED"), "{types:?}");
    // The queued path of the run workflow (admitted once signalled), for the replay tests.
    let history = taskfactory::temporal::history_json(&app.client, &runs[4]).await.unwrap();
    save_history_if_asked(&history, "orchestrator/tests/histories/run_activity_workflow_queued.json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_ends_the_run_skipped_and_cancel_running_cancels_the_oldest() {
    let app = TestApp::spawn("concurrency-skip").await;
    let (target, base) = Target::spawn(Duration::from_secs(4)).await;

    let skip = format!("conc-skip-{}", unique());
    put_ok(&app, &limited(&skip, &base, 1, "skip")).await;
    let first = app.start_run(&skip, &json!({"key": "s0", "payload": {"customer": "s", "n": 0}})).await;
    wait_for_status(&app, &first, "running").await;
    let second = app.start_run(&skip, &json!({"key": "s1", "payload": {"customer": "s", "n": 1}})).await;
    let skipped = app.wait_for_run(&second).await;
    assert_eq!(skipped["status"], "skipped", "{skipped}");
    assert_eq!(skipped["tasks"], json!([]), "a skipped run does no work: {skipped}");
    let log = decisions(&app, &skip).await;
    let decision = log.iter().find(|d| d["workflow_id"] == second.as_str() && d["outcome"] == "skipped");
    assert_eq!(decision.unwrap_or_else(|| panic!("{log:#?}"))["reason"], "concurrency");
    assert_eq!(app.wait_for_run(&first).await["status"], "completed");

    let cancel = format!("conc-cancel-{}", unique());
    put_ok(&app, &limited(&cancel, &base, 1, "cancel_running")).await;
    let old = app.start_run(&cancel, &json!({"key": "c0", "payload": {"customer": "c", "n": 0}})).await;
    eventually(Duration::from_secs(60), "the old run's request in flight", || async {
        if target.arrivals().get("c").is_some_and(|a| a == &[0]) {
            Ok(())
        } else {
            Err(format!("{:?}", target.arrivals()))
        }
    })
    .await;
    let new = app.start_run(&cancel, &json!({"key": "c1", "payload": {"customer": "c", "n": 1}})).await;
    let cancelled = app.wait_for_run(&old).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert!(cancelled["error"].as_str().unwrap_or_default().contains("cancel_running"), "{cancelled}");
    let done = app.wait_for_run(&new).await;
    assert_eq!(done["status"], "completed", "{done}");
    for (workflow, file) in [(&second, "run_activity_workflow_skipped"), (&new, "run_activity_workflow_cancel_running")]
    {
        let history = taskfactory::temporal::history_json(&app.client, workflow).await.unwrap();
        save_history_if_asked(&history, &format!("orchestrator/tests/histories/{file}.json"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_run_terminated_in_temporal_is_recorded_and_gives_up_its_place() {
    let app = TestApp::spawn("concurrency-terminate").await;
    let (target, base) = Target::spawn(Duration::from_secs(3)).await;
    let id = format!("conc-term-{}", unique());
    put_ok(&app, &limited(&id, &base, 1, "queue")).await;
    let mut runs = Vec::new();
    for n in 0..3u64 {
        let run = app.start_run(&id, &json!({"key": format!("t{n}"), "payload": {"customer": "t", "n": n}})).await;
        wait_for_status(&app, &run, if n == 0 { "running" } else { "queued" }).await;
        runs.push(run);
    }
    // An operator terminates the first queued run in Temporal: no workflow code runs, the
    // run log still says so, and the run behind it moves up.
    temporal_cli("terminate", &runs[1], &["--reason", "not needed"]).await;
    let terminated = wait_for_status(&app, &runs[1], "terminated").await;
    assert!(terminated["error"].as_str().unwrap_or_default().contains("not needed"), "{terminated}");
    let log = decisions(&app, &id).await;
    let position = log.iter().find(|d| d["outcome"] == "queued" && d["workflow_id"] == runs[2].as_str());
    assert!(position.is_some(), "{log:#?}");
    for run in [&runs[0], &runs[2]] {
        let done = app.wait_for_run_within(run, Duration::from_secs(120)).await;
        assert_eq!(done["status"], "completed", "{done}");
    }
    assert_eq!(target.arrivals(), BTreeMap::from([("t".to_owned(), vec![0, 2])]), "the terminated run did no work");
    assert_eq!(target.peak(), BTreeMap::from([("t".to_owned(), 1)]));
    let events = app.all_events(&runs[1], 100).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.last(), Some(&"WORKFLOW_TERMINATED"), "{types:?}");
    assert!(!types.contains(&"WORKFLOW_ADMITTED"), "{types:?}");
}

fn grouped(id: &str, event_type: &str, grouping: Value) -> Value {
    let mut trigger = json!({"kind": "event", "event_type": event_type});
    trigger.as_object_mut().unwrap().extend(grouping.as_object().unwrap().clone());
    json!({
        "id": id, "name": "Grouped", "trigger": trigger,
        "context": [{"name": "pushes", "kind": "trigger"}],
        "tasks": [{"id": "each", "kind": "noop", "for_each": "trigger.events", "key": "{{ item.key }}",
                   "params": {"n": "{{ item.payload.n }}"}}]
    })
}

async fn send(app: &TestApp, event_type: &str, key: &str, n: u64) -> Value {
    let (status, body) = app
        .call(Method::POST, "/api/v1/events", Some(&json!({"type": event_type, "key": key, "payload": {"n": n}})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"][0]["outcomes"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_events_in_a_second_become_one_debounced_run_carrying_all_ten() {
    let app = TestApp::spawn("debounce").await;
    let id = format!("debounce-{}", unique());
    let event_type = format!("file.saved.{}", unique());
    let definition = grouped(&id, &event_type, json!({"debounce": {"period": "2s", "max_wait": "1m"}}));
    put_ok(&app, &definition).await;
    let mut runs = Vec::new();
    for n in 0..10 {
        let outcome = send(&app, &event_type, &format!("save-{n}"), n).await;
        assert_eq!(outcome["outcome"], "debounced", "{outcome}");
        runs.push(outcome["workflow_id"].as_str().unwrap().to_owned());
    }
    runs.dedup();
    assert_eq!(runs, [format!("tf:{id}:event:save-0")], "one run for all ten");
    // A repeated delivery is still deduplicated per event.
    assert_eq!(send(&app, &event_type, "save-3", 3).await["outcome"], "duplicate");

    let run = finished(&app, &runs[0], Duration::from_secs(60)).await;
    assert_eq!(run["status"], "completed", "{run}");
    let carried: Vec<u64> =
        run["trigger"]["events"].as_array().unwrap().iter().map(|e| e["payload"]["n"].as_u64().unwrap()).collect();
    assert_eq!(carried, (0..10).collect::<Vec<_>>(), "every event, in arrival order: {run}");
    assert_eq!(run["trigger"]["event"]["key"], "save-9", "the last one");
    assert_eq!(run["tasks"].as_array().unwrap().len(), 10, "for_each: trigger.events");
    assert_eq!(run["context_snapshot"]["pushes"]["events"].as_array().map(Vec::len), Some(10), "{run}");
    let log = decisions(&app, &id).await;
    let debounced = log.iter().filter(|d| d["outcome"] == "debounced" && d["workflow_id"] == runs[0].as_str()).count();
    assert_eq!(debounced, 10, "{log:#?}");
    let (_, list) = app.call(Method::GET, &format!("/api/v1/runs?definition_id={id}"), None).await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_closes_by_size_and_another_by_time() {
    let app = TestApp::spawn("batch").await;
    let id = format!("batch-{}", unique());
    let event_type = format!("order.placed.{}", unique());
    let definition = grouped(&id, &event_type, json!({"batch": {"max_size": 3, "max_wait": "3s"}}));
    put_ok(&app, &definition).await;
    let mut outcomes = Vec::new();
    for n in 0..5 {
        outcomes.push(send(&app, &event_type, &format!("o{n}"), n).await);
    }
    assert!(outcomes.iter().all(|o| o["outcome"] == "batched"), "{outcomes:?}");
    let by_size = outcomes[0]["workflow_id"].as_str().unwrap().to_owned();
    let by_time = outcomes[3]["workflow_id"].as_str().unwrap().to_owned();
    assert_eq!(
        (outcomes[2]["workflow_id"].as_str(), outcomes[4]["workflow_id"].as_str()),
        (Some(by_size.as_str()), Some(by_time.as_str()))
    );
    assert_ne!(by_size, by_time);

    let full = finished(&app, &by_size, Duration::from_secs(60)).await;
    let timed = finished(&app, &by_time, Duration::from_secs(60)).await;
    let ns = |run: &Value| -> Vec<u64> {
        run["trigger"]["events"].as_array().unwrap().iter().map(|e| e["payload"]["n"].as_u64().unwrap()).collect()
    };
    assert_eq!((ns(&full), ns(&timed)), (vec![0, 1, 2], vec![3, 4]));
    let started = |run: &Value| chrono::DateTime::parse_from_rfc3339(run["fired_at"].as_str().unwrap()).unwrap();
    assert!(started(&timed) - started(&full) >= chrono::Duration::seconds(2), "the second batch waited for max_wait");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_accepted_while_temporal_is_down_start_once_it_is_back() {
    let mut own = OwnServers::start("ingress-down", true);
    let app = TestApp::spawn_on(&own.servers, "ingressdown", true).await;
    let id = format!("down-{}", unique());
    let event_type = format!("repo.pushed.{}", unique());
    let definition = json!({"id": id, "name": "Down", "trigger": {"kind": "event", "event_type": event_type},
        "tasks": [{"id": "t", "kind": "noop"}]});
    put_ok(&app, &definition).await;

    own.stop_temporal();
    // Twenty deliveries of ten keys, all answered at once from Postgres.
    let mut accepted = Vec::new();
    for n in 0..20 {
        let outcome = send(&app, &event_type, &format!("k{}", n % 10), n).await;
        match outcome["outcome"].as_str() {
            Some("accepted") => accepted.push(outcome["workflow_id"].as_str().unwrap().to_owned()),
            Some("duplicate") => {}
            other => panic!("{other:?}: {outcome}"),
        }
    }
    assert_eq!(accepted.len(), 10);
    let log = decisions(&app, &id).await;
    assert_eq!(log.iter().filter(|d| d["outcome"] == "accepted").count(), 10, "{log:#?}");
    own.start_temporal();

    for run in &accepted {
        let done = app.wait_for_run_within(run, Duration::from_secs(180)).await;
        assert_eq!(done["status"], "completed", "{done}");
    }
    eventually(Duration::from_secs(60), "every accepted decision turned into fired", || async {
        let log = decisions(&app, &id).await;
        let fired = log.iter().filter(|d| d["outcome"] == "fired").count();
        let left = log.iter().filter(|d| d["outcome"] == "accepted").count();
        if (fired, left) == (10, 0) { Ok(()) } else { Err(format!("fired {fired}, accepted {left}")) }
    })
    .await;
    let (_, list) = app.call(Method::GET, &format!("/api/v1/runs?definition_id={id}"), None).await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 10, "one run per key, none twice: {list}");
    app.wait_for_visibility(&format!("TfDefinitionId = '{id}' AND TfKind = 'run'"), 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_trigger_controls_are_refused_naming_the_field() {
    let app = TestApp::spawn_with("controls-bad", false).await;
    let base = json!({"id": format!("bad-{}", unique()), "name": "Bad", "tasks": [{"id": "t", "kind": "noop"}]});
    let cases = [
        (json!({"trigger": {"kind": "manual"}, "concurrency": {"limit": 0}}), "concurrency.limit"),
        (json!({"trigger": {"kind": "manual"}, "concurrency": {"on_limit": "wait"}}), "concurrency.on_limit"),
        (json!({"trigger": {"kind": "manual"}, "concurrency": {"key": "{{ trigger.payload.x"}}), "concurrency.key"),
        (json!({"trigger": {"kind": "cron", "cron": ["* * * * *"], "debounce": {"period": "2s"}}}), "trigger.debounce"),
        (
            json!({"trigger": {"kind": "event", "event_type": "x", "debounce": {"period": "0s"}}}),
            "trigger.debounce.period",
        ),
        (
            json!({"trigger": {"kind": "event", "event_type": "x", "batch": {"max_size": 0, "max_wait": "1s"}}}),
            "trigger.batch.max_size",
        ),
    ];
    for (extra, path) in cases {
        let mut definition = base.clone();
        definition.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let (status, body) = app.put_definition(&definition).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{definition}: {body}");
        let paths: Vec<&str> = body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["path"].as_str().unwrap_or_default())
            .collect();
        assert!(paths.iter().any(|p| p.starts_with(path)), "{path} not in {paths:?}: {body}");
    }
}
