//! The README's first command, as a newcomer runs it: `taskfactory dev` with its data dir under
//! a 0700 directory (as root, the common container setup, that is root's home: the `postgres`
//! user cannot enter it), then the commands its start-up text prints, run exactly as printed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::{authed_client, eventually, scratch_root, unique};
use taskfactory::devstack::{self, postgres::relocated_dir};

/// The lines `taskfactory dev` printed up to "Ctrl-C stops everything." (deadline 240 s: a
/// cold start initialises a cluster and a dev server with its UI).
async fn startup_text(stdout: tokio::process::ChildStdout) -> Vec<String> {
    let mut lines = BufReader::new(stdout).lines();
    let mut text = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("reading dev's output") {
            let done = line.contains("Ctrl-C stops everything.");
            text.push(line);
            if done {
                return;
            }
        }
        panic!("taskfactory dev exited during start-up; it printed:\n{}", text.join("\n"));
    };
    tokio::time::timeout(Duration::from_secs(240), read)
        .await
        .expect("taskfactory dev did not finish starting within 240 s");
    // Keep draining, or a full pipe would stall dev.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    text
}

/// The commands under "try it, in another terminal:".
fn printed_commands(text: &[String]) -> Vec<String> {
    let start = text.iter().position(|l| l.starts_with("try it")).expect("dev prints commands to try") + 1;
    text[start..].iter().take_while(|l| l.starts_with("  ")).map(|l| l.trim().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_under_a_private_directory_runs_the_example_with_the_commands_it_prints() {
    let private = scratch_root().join(format!("private-{}", unique()));
    std::fs::create_dir_all(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let data_dir = private.join("data");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let api_port = devstack::server_port().unwrap();
    let mut dev = Command::new(env!("CARGO_BIN_EXE_taskfactory"))
        .arg("dev")
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--examples")
        .arg(&examples)
        .args(["--api-addr", &format!("127.0.0.1:{api_port}")])
        .args(["--temporal-port", &devstack::server_port().unwrap().to_string()])
        .args(["--temporal-ui-port", &devstack::server_port().unwrap().to_string()])
        .env_remove("DATABASE_URL")
        .env_remove("TASKFACTORY_API_KEY")
        .env_remove("TASKFACTORY_API_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting taskfactory dev");
    let text = startup_text(dev.stdout.take().unwrap()).await;
    let output = text.join("\n");

    // Root runs Postgres as `postgres`, who cannot enter
    // `private`; the cluster must then live where that user can reach it, and dev says where.
    let as_root =
        std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    let relocated = relocated_dir(&std::fs::canonicalize(&data_dir).unwrap().join("postgres"));
    if as_root {
        assert!(output.contains(&format!("its files are in {}", relocated.display())), "{output}");
        assert!(
            output.contains(&format!(
                "the postgres user cannot enter {}",
                std::fs::canonicalize(&private).unwrap().display()
            )),
            "{output}"
        );
        assert!(relocated.join("pgdata/PG_VERSION").is_file());
    } else {
        assert!(data_dir.join("postgres/pgdata/PG_VERSION").is_file(), "{output}");
    }

    // The printed commands, run as printed by a shell that knows nothing else.
    let commands = printed_commands(&text);
    assert!(commands.iter().any(|c| c.ends_with("trigger hello-fanout")), "{commands:?}");
    let shell = Command::new("sh")
        .arg("-c")
        .arg(format!("set -e\n{}", commands.join("\n")))
        .env_remove("TASKFACTORY_API_KEY")
        .env_remove("TASKFACTORY_API_URL")
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&shell.stdout).into_owned();
    assert!(shell.status.success(), "{commands:?} failed: {said}{}", String::from_utf8_lossy(&shell.stderr));
    let workflow_id = said
        .lines()
        .find_map(|l| l.strip_prefix("started: "))
        .unwrap_or_else(|| panic!("no run started: {said}"))
        .trim()
        .to_owned();
    assert!(workflow_id.starts_with("tf:hello-fanout:manual:"), "{workflow_id}");

    // The run completes on dev's worker.
    let key = commands.iter().find_map(|c| c.strip_prefix("export TASKFACTORY_API_KEY=")).expect("the key is printed");
    let http = authed_client(key);
    eventually(Duration::from_secs(120), "hello-fanout to complete", || async {
        let response = http.get(format!("http://127.0.0.1:{api_port}/api/v1/runs/{workflow_id}")).send().await.unwrap();
        // 404 until the run's first activity has recorded it.
        assert!([StatusCode::OK, StatusCode::NOT_FOUND].contains(&response.status()), "{}", response.status());
        let run: serde_json::Value = response.json().await.unwrap();
        if run["status"] == "completed" {
            return Ok(());
        }
        assert!(!["failed", "cancelled", "terminated"].contains(&run["status"].as_str().unwrap_or("")), "{run}");
        Err(run)
    })
    .await;

    // Ctrl-C's twin stops everything cleanly.
    let pid = dev.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().await.unwrap().success());
    let status =
        tokio::time::timeout(Duration::from_secs(60), dev.wait()).await.expect("dev did not stop within 60 s").unwrap();
    assert!(status.success(), "dev exited with {status}");
    let _ = std::fs::remove_dir_all(&relocated);
    let _ = std::fs::remove_dir_all(&private);
}

/// A listener holding a port drawn like a server's, as an unrelated process would.
fn squatter() -> (std::net::TcpListener, u16) {
    let port = devstack::server_port().unwrap();
    (std::net::TcpListener::bind(("127.0.0.1", port)).unwrap(), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_whose_port_was_taken_start_again_on_new_ones() {
    let root = scratch_root().join(format!("ports-{}", unique()));
    let (mut temporal, mut postgres) = crate::support::server_configs(&root, false).unwrap();

    let (_held, taken) = squatter();
    postgres.port = taken;
    let cluster = tokio::task::block_in_place(|| devstack::PostgresCluster::spawn_on_free_port(&mut postgres))
        .expect("postgres on a new port");
    assert_ne!(cluster.port, taken);
    assert_eq!(postgres.port, cluster.port, "the config keeps the port that worked, for restarts");
    let pool = sqlx::PgPool::connect(&cluster.url("postgres")).await.expect("the cluster answers");
    assert_eq!(sqlx::query_scalar::<_, i32>("select 1").fetch_one(&pool).await.unwrap(), 1);
    pool.close().await;

    let (_held_metrics, taken_metrics) = squatter();
    temporal.metrics_port = taken_metrics;
    let server = tokio::task::block_in_place(|| {
        devstack::TemporalDevServer::spawn_retrying(&mut temporal, devstack::TemporalConfig::repick_ports)
    })
    .expect("the dev server on new ports");
    assert_ne!(temporal.metrics_port, taken_metrics);
    taskfactory::temporal::wait_ready(&server.address, "default", Duration::from_secs(60))
        .await
        .expect("the dev server answers");
    drop((server, cluster));
    let _ = std::fs::remove_dir_all(&root);
}
