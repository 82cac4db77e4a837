//! A bounded fuzz of the HTTP API: mutated definitions (JSON and YAML), validations,
//! dry-runs, events (JSON and raw bytes), run queries (runs, a run, its events and graph,
//! decisions, previews) and backfills, for about 30 s with a
//! fixed seed. No answer may be a 5xx, every 4xx must carry the error envelope, and the API
//! must still answer `/readyz` afterwards.
//!
//! Longer or other runs: `TASKFACTORY_FUZZ_SEED=123 TASKFACTORY_FUZZ_SECS=300 cargo test -p
//! taskfactory --test e2e fuzz -- --nocapture` (a failure prints the seed and the requests).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskfactory_activities::egress::Egress;

use crate::support::{TestApp, unique};
use taskfactory::startup::EventRate;

/// The seed when `TASKFACTORY_FUZZ_SEED` is not set.
const DEFAULT_SEED: u64 = 0x7a5c_f00d_2026_1201;
/// Concurrent request loops (each with its own stream of the seed).
const LOOPS: u64 = 3;

/// splitmix64: small, fast, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Pieces random strings are made of: control characters, U+0000 and the store's escape,
/// template syntax, SQL, paths, dates (the extremes too), durations, cron, big numbers.
const PIECES: &[&str] = &[
    "",
    "a",
    "x",
    "\u{0}",
    "\u{1}",
    "\u{7}",
    "\u{1b}[31m",
    "\u{7f}",
    "\u{85}",
    "\u{2400}",
    "\u{2400}0",
    "\t",
    "\n",
    "\r\n",
    " ",
    "é",
    "😀",
    "\u{202e}",
    "\u{feff}",
    "{{",
    "}}",
    "{{ item.x }}",
    "{{ trigger.payload.a }}",
    "{{ secret.API_TOKEN }}",
    "{{ context.items | length }}",
    "{% for x in y %}",
    "{#",
    "'",
    "\"",
    "\\",
    "%00",
    "%",
    "%zz",
    "../",
    "/",
    "tf:",
    ":",
    "#",
    "?",
    "&",
    "=",
    "+",
    "select 1",
    "; drop table api_keys",
    "$1",
    "null",
    "true",
    "-1",
    "0",
    "1e308",
    "9223372036854775807",
    "0 9 * * MON-FRI",
    "* * * * *",
    "@daily",
    "61 25 * * *",
    "Europe/Berlin",
    "Mars/Olympus",
    "30s",
    "0s",
    "99999999h",
    "1h30m",
    "2026-12-01T00:00:00Z",
    "2026-12-01T00:00:00+14:00",
    "+262142-12-31T23:59:59Z",
    "-262143-01-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "noop",
    "http",
    "workflow",
    "human",
    "activity",
    "sql",
    "static",
    "trigger",
    "cron",
    "event",
    "manual",
    "http://127.0.0.1:1/",
    "fz.event",
    "fz-a",
];

fn random_string(rng: &mut Rng) -> String {
    // Often exactly one piece: a whole date, cron or kind is what reaches deep code.
    if rng.chance(50) {
        return rng.pick::<&str>(PIECES).to_string();
    }
    let mut s = String::new();
    for _ in 0..=rng.below(4) {
        s.push_str(rng.pick::<&str>(PIECES));
    }
    if rng.chance(3) {
        s.push_str(&"x".repeat(rng.below(5000)));
    }
    s
}

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 8 } else { 11 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(*rng.pick(&[
            0i64,
            -1,
            1,
            2,
            63,
            64,
            255,
            256,
            1000,
            1001,
            50_001,
            i64::MAX,
            i64::MIN,
            i32::MAX as i64 + 1
        ])),
        3 => json!(*rng.pick(&[0.5f64, -0.0, 1e300, -1e300, 3.25])),
        4..=7 => Value::String(random_string(rng)),
        8 => Value::Array((0..rng.below(4)).map(|_| random_value(rng, depth + 1)).collect()),
        9 => Value::Object((0..rng.below(4)).map(|_| (random_string(rng), random_value(rng, depth + 1))).collect()),
        _ => {
            // Deep nesting, below and around serde's recursion limit.
            let mut v = json!("deep");
            for _ in 0..rng.below(140) {
                v = json!([v]);
            }
            v
        }
    }
}

/// Changes one place of `value`: descends to a random node and replaces, removes, renames,
/// duplicates or adds something there.
fn mutate(value: &mut Value, rng: &mut Rng) {
    match value {
        Value::Object(map) if !map.is_empty() && rng.chance(70) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = rng.pick(&keys).clone();
            match rng.below(10) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    let v = map.remove(&key).unwrap_or(Value::Null);
                    map.insert(random_string(rng), v);
                }
                2 => {
                    map.insert(random_string(rng), random_value(rng, 0));
                }
                _ => mutate(map.get_mut(&key).unwrap(), rng),
            }
        }
        Value::Array(items) if !items.is_empty() && rng.chance(70) => match rng.below(8) {
            0 => {
                items.remove(rng.below(items.len()));
            }
            1 => {
                let copy = items[rng.below(items.len())].clone();
                items.push(copy);
            }
            2 => items.push(random_value(rng, 0)),
            _ => {
                let i = rng.below(items.len());
                mutate(&mut items[i], rng);
            }
        },
        other => *other = random_value(rng, 0),
    }
}

fn mutated(seed: &Value, rng: &mut Rng) -> Value {
    let mut value = seed.clone();
    for _ in 0..=rng.below(3) {
        mutate(&mut value, rng);
    }
    value
}

/// Raw bytes: JSON cut short, bytes flipped, NUL and invalid UTF-8 spliced in.
fn raw_bytes(seed: &Value, rng: &mut Rng) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(seed).unwrap();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 => bytes.truncate(at),
            1 => bytes.insert(at, 0),
            2 => bytes.splice(at..at, [0xff, 0xfe, 0xc3]).for_each(drop),
            3 if at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
            _ => {
                let piece: &[u8] = rng.pick::<&[u8]>(&[b"\\u0000", b"\\ud800", b"{", b"]", b"\"", b",,", b"1e999999"]);
                bytes.splice(at..at, piece.iter().copied()).for_each(drop);
            }
        }
    }
    bytes
}

/// Every byte but unreserved ones percent-encoded, so any string makes a valid URL part.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const IDS: &[&str] = &["fz-a", "fz-b", "fz-c", "fz-cron", "fz-event", "fz-sql"];
const EVENT_TYPE: &str = "fz.event";

/// Valid documents the mutations start from.
fn seed_definitions() -> Vec<Value> {
    vec![
        json!({"id": "fz-a", "name": "Fan-out", "tags": ["fuzz"], "trigger": {"kind": "manual"},
            "context": [{"name": "items", "kind": "static", "value": [{"x": 1, "s": "a"}, {"x": 2, "s": "b"}]}],
            "tasks": [{"id": "each", "kind": "noop", "for_each": "items", "key": "{{ item.x }}", "when": "{{ item.x > 1 }}", "params": {"s": "{{ item.s | upper }}"}},
                      {"id": "end", "kind": "noop", "depends_on": ["each"], "params": {"n": "{{ tasks.each.count }}"}}]}),
        json!({"id": "fz-cron", "name": "Yearly", "trigger": {"kind": "cron", "cron": ["0 0 1 1 *"], "timezone": "Europe/Berlin", "jitter": "1s", "overlap": "skip", "catchup_window": "1h"},
            "tasks": [{"id": "t", "kind": "noop"}]}),
        json!({"id": "fz-event", "name": "On event", "trigger": {"kind": "event", "event_type": EVENT_TYPE, "filter": "event.payload.n > 1", "dedupe_key": "{{ event.key }}"},
            "context": [{"name": "event", "kind": "trigger"}],
            "tasks": [{"id": "t", "kind": "human", "title": "Look at {{ trigger.payload.n }}", "assignee": "ops", "timeout": "1h"}]}),
        json!({"id": "fz-sql", "name": "SQL", "trigger": {"kind": "manual"}, "failure_policy": "fail_fast", "max_parallel": 2,
            "context": [{"name": "rows", "kind": "sql", "query": "select 1 as n where $1::text is not null", "params": ["{{ trigger.payload.a }}"], "sensitive": true}],
            "tasks": [{"id": "t", "kind": "workflow", "workflow_type": "Nope", "task_queue": "fz", "for_each": "rows", "key": "{{ item.n }}", "retry": {"max_attempts": 1}}]}),
    ]
}

fn seed_event() -> Value {
    json!({"type": EVENT_TYPE, "key": "k1", "source": "fuzz", "payload": {"n": 2, "text": "hello"}, "occurred_at": "2026-12-01T00:00:00Z"})
}

/// One request: method, path (with query), body, content type; and what it is, for reports.
struct Request {
    what: &'static str,
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
    content_type: &'static str,
}

fn next_request(rng: &mut Rng, definitions: &[Value], runs: &[String]) -> Request {
    let json_body = |v: &Value| Some(serde_json::to_vec(v).unwrap());
    let some_id =
        |rng: &mut Rng| if rng.chance(85) { rng.pick::<&str>(IDS).to_string() } else { encode(&random_string(rng)) };
    let some_run = |rng: &mut Rng| {
        if !runs.is_empty() && rng.chance(70) { encode(rng.pick::<String>(runs)) } else { encode(&random_string(rng)) }
    };
    let query_value = |rng: &mut Rng, pool: &[&str]| {
        if rng.chance(50) { rng.pick::<&str>(pool).to_string() } else { encode(&random_string(rng)) }
    };
    match rng.below(12) {
        0 | 1 => {
            let doc = mutated(rng.pick(definitions), rng);
            let id = doc.get("id").and_then(Value::as_str).map(encode).unwrap_or_else(|| some_id(rng));
            if rng.chance(15) {
                let yaml = serde_yaml_ng::to_string(&doc).unwrap_or_default();
                Request {
                    what: "put definition (yaml)",
                    method: Method::PUT,
                    path: format!("/api/v1/definitions/{id}"),
                    body: Some(yaml.into_bytes()),
                    content_type: "application/yaml",
                }
            } else if rng.chance(10) {
                Request {
                    what: "put definition (raw)",
                    method: Method::PUT,
                    path: format!("/api/v1/definitions/{id}"),
                    body: Some(raw_bytes(&doc, rng)),
                    content_type: "application/json",
                }
            } else {
                Request {
                    what: "put definition",
                    method: Method::PUT,
                    path: format!("/api/v1/definitions/{id}"),
                    body: json_body(&doc),
                    content_type: "application/json",
                }
            }
        }
        2 => Request {
            what: "validate",
            method: Method::POST,
            path: "/api/v1/validate".into(),
            body: json_body(&mutated(rng.pick(definitions), rng)),
            content_type: "application/json",
        },
        3 | 4 => {
            let seed = json!({"event": seed_event(), "payload": {"a": "x"}, "context": {"items": [{"x": 3, "s": "c"}]}, "version": 1, "run_workflow_id": "tf:fz-a:dry-run"});
            let mut body = seed.clone();
            for _ in 0..=rng.below(2) {
                mutate(&mut body, rng);
            }
            if rng.chance(50)
                && let Some(o) = body.as_object_mut()
            {
                o.retain(|k, _| k != "context" && k != "version");
            }
            Request {
                what: "dry-run",
                method: Method::POST,
                path: format!("/api/v1/definitions/{}/dry-run", some_id(rng)),
                body: json_body(&body),
                content_type: "application/json",
            }
        }
        5 | 6 => {
            // Keys from a small pool: most events are duplicates, so few runs start.
            let mut event = mutated(&seed_event(), rng);
            if let Some(o) = event.as_object_mut().filter(|o| o.get("key").is_some_and(Value::is_string)) {
                o.insert("key".into(), json!(format!("k{}", rng.below(8))));
            }
            let body = if rng.chance(30) {
                Value::Array((0..=rng.below(3)).map(|_| mutated(&seed_event(), rng)).collect())
            } else {
                event
            };
            if rng.chance(25) {
                Request {
                    what: "events (raw)",
                    method: Method::POST,
                    path: "/api/v1/events".into(),
                    body: Some(raw_bytes(&body, rng)),
                    content_type: "application/json",
                }
            } else {
                Request {
                    what: "events",
                    method: Method::POST,
                    path: "/api/v1/events".into(),
                    body: json_body(&body),
                    content_type: "application/json",
                }
            }
        }
        7 | 8 => {
            let mut params = Vec::new();
            for (name, pool) in [
                ("definition_id", IDS),
                ("status", &["running", "completed", "failed", "queued"][..]),
                ("trigger", &["schedule", "event", "manual"][..]),
                (
                    "since",
                    &[
                        "2026-01-01T00:00:00Z",
                        "2026-12-01T00:00:00%2B01:00",
                        "-262143-01-01T00:00:00Z",
                        "%2B262142-12-31T23:59:59Z",
                    ][..],
                ),
                ("until", &["2030-01-01T00:00:00Z", "0000-01-01T00:00:00Z", "%2B262142-12-31T23:59:59Z"][..]),
                ("limit", &["1", "500", "0", "-5", "abc", "99999999999999999999"][..]),
                ("cursor", &["zz", "00", "7c"][..]),
            ] {
                if rng.chance(35) {
                    params.push(format!("{name}={}", query_value(rng, pool)));
                }
            }
            Request {
                what: "list runs",
                method: Method::GET,
                path: format!("/api/v1/runs?{}", params.join("&")),
                body: None,
                content_type: "application/json",
            }
        }
        9 => {
            let run = some_run(rng);
            let dates = [
                "2026-12-01T00:00:00Z",
                "-262143-01-01T00:00:00Z",
                "%2B262142-12-31T23:59:59Z",
                "9999-12-31T23:59:59Z",
            ];
            let (what, path) = match rng.below(5) {
                3 => (
                    "decisions",
                    format!(
                        "/api/v1/definitions/{}/decisions?outcome={}&limit={}",
                        some_id(rng),
                        query_value(rng, &["fired", "filtered", "nope"]),
                        query_value(rng, &["1", "500", "0"])
                    ),
                ),
                4 => (
                    "preview",
                    format!(
                        "/api/v1/definitions/{}/preview?count={}&after={}",
                        some_id(rng),
                        query_value(rng, &["1", "1000", "0"]),
                        query_value(rng, &dates)
                    ),
                ),
                0 => ("get run", format!("/api/v1/runs/{run}")),
                1 => (
                    "run events",
                    format!(
                        "/api/v1/runs/{run}/events?after={}&limit={}",
                        query_value(rng, &["0", "5", "-1"]),
                        query_value(rng, &["1", "1000", "0"])
                    ),
                ),
                _ => (
                    "run graph",
                    format!("/api/v1/runs/{run}/graph?expand_up_to={}", query_value(rng, &["0", "200", "-3", "x"])),
                ),
            };
            Request { what, method: Method::GET, path, body: None, content_type: "application/json" }
        }
        _ => {
            let seed = json!({"start": "2026-01-01T00:00:00Z", "end": "2027-06-01T00:00:00Z"});
            Request {
                what: "backfill",
                method: Method::POST,
                path: format!(
                    "/api/v1/definitions/{}/schedule/backfill",
                    if rng.chance(70) { "fz-cron".to_owned() } else { some_id(rng) }
                ),
                body: json_body(&mutated(&seed, rng)),
                content_type: "application/json",
            }
        }
    }
}

/// What went wrong, for the report.
#[derive(Default)]
struct Tally {
    requests: usize,
    statuses: BTreeMap<u16, usize>,
    failures: Vec<String>,
}

fn seed_from_env() -> u64 {
    std::env::var("TASKFACTORY_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEED)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_requests_never_get_a_5xx_and_every_4xx_has_the_envelope() {
    let app = TestApp::spawn_with("fuzz", false).await;
    let seed = seed_from_env();
    let seconds: u64 = std::env::var("TASKFACTORY_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    // Public HTTP targets only (no network here: refused or unresolvable, never a hang), and
    // no event rate limit, so the fuzz reaches the handlers.
    let (api, _stop) = app
        .spawn_api_with(|mut config| {
            config.context.egress = Egress::default();
            config.event_rate = Some(EventRate { per_second: 1e9, burst: 1e9 });
            config
        })
        .await;
    let definitions = seed_definitions();
    for d in &definitions {
        let (status, body) = app.put_definition(d).await;
        assert!(status.is_success(), "seed {}: {body}", d["id"]);
    }
    // A few real runs for the run queries to find.
    let mut runs = Vec::new();
    for key in ["r1", "r2"] {
        runs.push(app.start_run("fz-a", &json!({"key": format!("{key}-{}", unique())})).await);
    }
    let (_, answer) = app.call(Method::POST, "/api/v1/events", Some(&seed_event())).await;
    runs.extend(
        answer["results"][0]["outcomes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["workflow_id"].as_str().map(str::to_owned)),
    );

    let tally = Arc::new(Mutex::new(Tally::default()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let loops: Vec<_> = (0..LOOPS)
        .map(|n| {
            let (tally, client, api, key, definitions, runs) =
                (tally.clone(), client.clone(), api.clone(), app.api_key.clone(), definitions.clone(), runs.clone());
            tokio::spawn(async move {
                let mut rng = Rng(seed ^ (n.wrapping_mul(0x2545_f491_4f6c_dd1d)));
                while tokio::time::Instant::now() < deadline {
                    let request = next_request(&mut rng, &definitions, &runs);
                    let mut builder =
                        client.request(request.method.clone(), format!("{api}{}", request.path)).bearer_auth(&key);
                    if let Some(body) = request.body.clone() {
                        builder = builder.header("content-type", request.content_type).body(body);
                    }
                    let outcome = builder.send().await;
                    let response = {
                        let mut counts = tally.lock().unwrap();
                        counts.requests += 1;
                        match outcome {
                            Ok(r) => {
                                *counts.statuses.entry(r.status().as_u16()).or_default() += 1;
                                r
                            }
                            Err(e) => {
                                counts.failures.push(format!(
                                    "{} {} {}: no answer: {e}",
                                    request.what, request.method, request.path
                                ));
                                continue;
                            }
                        }
                    };
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    let body = String::from_utf8_lossy(request.body.as_deref().unwrap_or_default())
                        .chars()
                        .take(300)
                        .collect::<String>();
                    let problem = if status.is_server_error() {
                        Some(format!("{status}"))
                    } else if status.is_client_error() {
                        let envelope: Option<Value> = serde_json::from_str(&text).ok();
                        let ok = envelope.as_ref().is_some_and(|v| {
                            v["error"]["code"].is_string()
                                && v["error"]["message"].is_string()
                                && v["error"]["details"].is_array()
                        });
                        (!ok).then(|| format!("{status} without the envelope"))
                    } else {
                        None
                    };
                    if let Some(problem) = problem {
                        let reply: String = text.chars().take(300).collect();
                        tally.lock().unwrap().failures.push(format!(
                            "{} {} {}: {problem}: {reply}\n    body: {body:?}",
                            request.what, request.method, request.path
                        ));
                    }
                }
            })
        })
        .collect();
    for l in loops {
        l.await.expect("a fuzz loop panicked");
    }

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    println!("fuzz: {} requests in {seconds} s (seed {seed}), statuses {:?}", tally.requests, tally.statuses);
    let ready = reqwest::get(format!("{api}/readyz")).await.expect("the API still answers");
    assert_eq!(ready.status(), StatusCode::OK, "/readyz after the fuzz");
    assert!(tally.requests > 100, "only {} requests were sent", tally.requests);
    assert!(
        tally.failures.is_empty(),
        "{} of {} answers broke the rules (seed {seed}; rerun with TASKFACTORY_FUZZ_SEED={seed}):\n{}",
        tally.failures.len(),
        tally.requests,
        tally.failures.iter().take(15).cloned().collect::<Vec<_>>().join("\n")
    );
}
