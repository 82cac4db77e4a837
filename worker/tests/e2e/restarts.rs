//! Restarting the servers under a running run. These tests start a Temporal dev server and a
//! Postgres cluster of their own (the suite's shared ones must stay up for every other test),
//! stop one of them mid-run, keep it down for a few seconds, and start it again on the same
//! port and files. The run must complete with every task once and a gapless log.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use taskfactory::devstack::{PostgresCluster, PostgresConfig, TemporalConfig, TemporalDevServer};

use crate::support::{Servers, SseClient, TestApp, eventually, scratch_root, server_configs, unique};

/// How long a stopped server stays down: long enough that workers, pools and clients see
/// connections refused and must retry.
const OUTAGE: Duration = Duration::from_secs(3);

/// A Temporal dev server and a Postgres cluster of one test.
pub(crate) struct OwnServers {
    pub(crate) servers: Servers,
    temporal: Option<TemporalDevServer>,
    postgres: Option<PostgresCluster>,
    temporal_config: TemporalConfig,
    postgres_config: PostgresConfig,
    root: PathBuf,
}

impl OwnServers {
    pub(crate) fn start(name: &str, temporal_db_file: bool) -> Self {
        let root = scratch_root().join(format!("own-{name}-{}", unique()));
        let (mut temporal_config, mut postgres_config) =
            server_configs(&root, temporal_db_file).expect("server settings");
        let temporal = TemporalDevServer::spawn_retrying(&mut temporal_config, TemporalConfig::repick_ports)
            .expect("starting a Temporal dev server");
        let postgres = PostgresCluster::spawn_on_free_port(&mut postgres_config).expect("starting Postgres");
        let servers = Servers { temporal_address: temporal.address.clone(), postgres_port: postgres.port };
        Self { servers, temporal: Some(temporal), postgres: Some(postgres), temporal_config, postgres_config, root }
    }

    /// Stops Postgres (fast shutdown: every connection is cut), waits [`OUTAGE`], starts it again.
    fn restart_postgres(&mut self) {
        tokio::task::block_in_place(|| {
            self.postgres.take().expect("running").stop();
            std::thread::sleep(OUTAGE);
            self.postgres = Some(PostgresCluster::spawn(&self.postgres_config).expect("restarting Postgres"));
        });
    }

    /// Stops the dev server (SIGTERM), waits [`OUTAGE`], starts it again on the same SQLite file.
    fn restart_temporal(&mut self) {
        self.restart_temporal_after(OUTAGE);
    }

    /// Stops the dev server (SIGTERM) until [`Self::start_temporal`].
    pub(crate) fn stop_temporal(&mut self) {
        tokio::task::block_in_place(|| self.temporal.take().expect("running").stop());
    }

    /// Starts the dev server stopped by [`Self::stop_temporal`] again, on the same file.
    pub(crate) fn start_temporal(&mut self) {
        tokio::task::block_in_place(|| {
            self.temporal =
                Some(TemporalDevServer::spawn(&self.temporal_config).expect("restarting the Temporal dev server"));
        });
    }

    /// Stops the dev server, keeps it down for `outage`, starts it again on the same file.
    fn restart_temporal_after(&mut self, outage: Duration) {
        tokio::task::block_in_place(|| {
            self.temporal.take().expect("running").stop();
            std::thread::sleep(outage);
            self.temporal =
                Some(TemporalDevServer::spawn(&self.temporal_config).expect("restarting the Temporal dev server"));
        });
    }
}

impl Drop for OwnServers {
    fn drop(&mut self) {
        drop(self.temporal.take());
        drop(self.postgres.take());
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Asserts the run finished after `back` (the moment the server was up again), so the
/// restart really happened mid-run.
fn assert_finished_after(run: &Value, back: chrono::DateTime<chrono::Utc>) {
    let finished: chrono::DateTime<chrono::Utc> = run["finished_at"].as_str().expect("finished").parse().unwrap();
    assert!(finished > back, "the run finished at {finished}, before the server was back at {back}");
}

/// A run of `n` noop tasks and a final one after them.
fn wide_definition(id: &str, n: usize) -> Value {
    let items: Vec<Value> = (0..n).map(|i| json!(i)).collect();
    json!({"id": id, "name": "Restart", "trigger": {"kind": "manual"},
        "context": [{"name": "items", "kind": "static", "value": items}],
        "tasks": [{"id": "work", "kind": "noop", "for_each": "items", "key": "{{ item }}"}, {"id": "end", "kind": "noop", "depends_on": ["work"]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_run_loses_no_event() {
    let mut own = OwnServers::start("pg", false);
    let app = TestApp::spawn_on(&own.servers, "pgrestart", true).await;
    let id = format!("pgrestart-{}", unique());
    assert_eq!(app.put_definition(&wide_definition(&id, 300)).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;
    // A live stream open across the restart: it must deliver every event, in order, once.
    let mut stream =
        SseClient::open(&format!("{}/api/v1/runs/{workflow_id}/stream", app.api_url), &app.api_key, None).await;
    let reader = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while let Some(event) = stream.next().await {
            seqs.push(event.id.expect("every event has an id").parse::<i64>().unwrap());
        }
        seqs
    });

    app.wait_for_completed_tasks(&workflow_id, 30).await;
    own.restart_postgres();
    let back = chrono::Utc::now();

    let run = app.wait_for_run_within(&workflow_id, Duration::from_secs(300)).await;
    assert_eq!(run["status"], "completed", "{}", run["error"]);
    assert_eq!((run["tasks_planned"].clone(), run["tasks_completed"].clone()), (json!(301), json!(301)));
    assert_finished_after(&run, back);
    let events = app.assert_log_gapless_each_task_once(&workflow_id, 301).await;
    app.assert_each_task_one_activity(&workflow_id, 301).await;
    let streamed = reader.await.unwrap();
    assert_eq!(
        streamed,
        (1..=events.len() as i64).collect::<Vec<_>>(),
        "the stream delivered every event once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporal_restart_mid_run_is_survived_by_worker_and_api() {
    let mut own = OwnServers::start("temporal", true);
    let app = TestApp::spawn_on(&own.servers, "tmprestart", true).await;
    let id = format!("tmprestart-{}", unique());
    assert_eq!(app.put_definition(&wide_definition(&id, 300)).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;

    app.wait_for_completed_tasks(&workflow_id, 30).await;
    own.restart_temporal();
    let back = chrono::Utc::now();

    let run = app.wait_for_run_within(&workflow_id, Duration::from_secs(300)).await;
    assert_eq!(run["status"], "completed", "{}", run["error"]);
    assert_eq!((run["tasks_planned"].clone(), run["tasks_completed"].clone()), (json!(301), json!(301)));
    assert_finished_after(&run, back);
    app.assert_log_gapless_each_task_once(&workflow_id, 301).await;
    app.assert_each_task_one_activity(&workflow_id, 301).await;

    // The API's client reconnected too: it starts and the worker runs a new run.
    let again = app.start_run(&id, &json!({"key": "after-restart"})).await;
    let run = app.wait_for_run_within(&again, Duration::from_secs(120)).await;
    assert_eq!(run["status"], "completed", "{}", run["error"]);
}

/// A schedule slot that passes while Temporal is down, and is not caught up because the
/// catch-up window is shorter than the outage: Temporal counts it as missed, and the decision
/// log says `skipped`, reason `catchup_window`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_missed_while_temporal_is_down_is_logged_as_a_catch_up_skip() {
    let mut own = OwnServers::start("catchup", true);
    let app = TestApp::spawn_on(&own.servers, "catchup", true).await;
    let id = format!("catchup-{}", unique());
    let definition = json!({"id": id, "name": "Every minute", "tasks": [{"id": "t", "kind": "noop"}],
        "trigger": {"kind": "cron", "cron": ["* * * * *"], "catchup_window": "10s"}});
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    // The schedule must be in Temporal, with its next fires planned, before the server goes
    // down: a slot the scheduler never planned is neither run nor counted as missed.
    let path = format!("/api/v1/definitions/{id}/schedule");
    eventually(Duration::from_secs(60), "the schedule in Temporal", || async {
        let (code, described) = app.call(reqwest::Method::GET, &path, None).await;
        let planned = described["next_fire_times"].as_array().is_some_and(|f| !f.is_empty());
        if code == StatusCode::OK && planned { Ok(()) } else { Err(format!("{code} {described}")) }
    })
    .await;
    // Take the server down 3 s before a minute's slot at least 13 s away (so the schedule is
    // settled well before), and bring it back 15 s after the slot: the slot is then later than
    // the 10 s catch-up window when the scheduler sees it.
    let now = chrono::Utc::now();
    let mut slot = chrono::DurationRound::duration_trunc(now, chrono::Duration::minutes(1)).unwrap()
        + chrono::Duration::minutes(1);
    if slot - now < chrono::Duration::seconds(13) {
        slot += chrono::Duration::minutes(1);
    }
    let down_at = slot - chrono::Duration::seconds(3);
    tokio::time::sleep((down_at - chrono::Utc::now()).to_std().unwrap_or_default()).await;
    let back_after = (slot - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(15);
    own.restart_temporal_after(back_after);

    // Generous: after the restart the API's connection to Temporal must come back first.
    let slot_text = slot.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    eventually(Duration::from_secs(240), format!("a decision for the slot {slot_text}"), || async {
        // While the API reconnects to Temporal the observer may fail (any status): keep asking.
        let (_, log) = app.call(reqwest::Method::GET, &format!("/api/v1/definitions/{id}/decisions"), None).await;
        let found =
            log["decisions"].as_array().into_iter().flatten().find(|d| d["slot"] == slot_text.as_str()).cloned();
        let Some(decision) = found else {
            return Err(format!("no decision for the slot {slot_text}: {log:#}"));
        };
        assert_ne!(decision["outcome"], "fired", "the slot fired although Temporal was down: {log:#}");
        assert_eq!(
            (decision["outcome"].as_str(), decision["reason"].as_str()),
            (Some("skipped"), Some("catchup_window")),
            "{log:#}"
        );
        assert!(log["schedule"]["missed_catchup_window"].as_i64() >= Some(1), "{log:#}");
        Ok(())
    })
    .await;
}
