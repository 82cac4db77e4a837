//! Child processes for local development, benchmarks and tests: a Temporal dev server and a
//! private PostgreSQL cluster.
//!
//! - [`ports`]: ports for servers that bind later, chosen so that no other server's random
//!   pick can take them (and retried when an unrelated process does);
//! - [`temporal`]: `temporal server start-dev` with every port explicit;
//! - [`postgres`]: a private cluster, run as the `postgres` user when we are root, relocated
//!   to a directory that user can reach when the requested one is under a 0700 directory.
//!
//! Both servers are started from binaries found on the machine (never downloaded), with their
//! output in log files, and are stopped on drop. They also get `PR_SET_PDEATHSIG`, so a killed
//! parent (a test binary that exits, a `taskfactory dev` hit by SIGKILL) never leaves them
//! behind. Every failure to find or start one ends in a one-line fix.

#![allow(unsafe_code)] // pre_exec/prctl and kill(2); each use has a SAFETY note.

pub mod ports;
pub mod postgres;
pub mod temporal;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::bail;

pub use ports::{PortInUse, server_port};
pub use postgres::{PostgresCluster, PostgresConfig, find_pg_bin};
pub use temporal::{TemporalConfig, TemporalDevServer, find_temporal};

/// Creates database `name` on the cluster at `admin_url` unless it exists.
pub async fn ensure_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await
        .context("connecting to Postgres")?;
    let exists: Option<i32> =
        sqlx::query_scalar("select 1 from pg_database where datname = $1").bind(name).fetch_optional(&pool).await?;
    if exists.is_none() {
        sqlx::query(&format!("create database \"{name}\"")).execute(&pool).await?;
    }
    pool.close().await;
    Ok(())
}

/// Arranges for `signal` to reach the child when the spawning thread exits.
fn die_with_parent(cmd: &mut Command, signal: libc::c_int) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else { return };
    // SAFETY: kill(2) on our own child's pid; at worst it fails with ESRCH.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Sends `sig`, waits up to `grace`, then kills.
fn stop_child(child: &mut Child, sig: libc::c_int, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    signal(child, sig);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits (up to 60 s) until port `port` accepts connections and, when given, `ready_line`
/// is in the child's log; fails early, with the end of its log, when the child exits — with
/// [`PortInUse`] when the log says it lost a port.
fn wait_until_ready(
    child: &mut Child,
    port: u16,
    ready_line: Option<&str>,
    log_file: &Path,
    what: &str,
) -> anyhow::Result<()> {
    let address = format!("127.0.0.1:{port}");
    let limit = Duration::from_secs(60);
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            let tail = log_tail(log_file, 2000);
            if ports::log_says_port_in_use(&tail) {
                return Err(PortInUse { what: what.to_owned(), port }.into());
            }
            bail!("{what} exited ({status}); its log ends with:\n{tail}");
        }
        let logged = ready_line.is_none_or(|line| log_tail(log_file, 64 * 1024).contains(line));
        if logged && std::net::TcpStream::connect(&address).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not open {address} within {limit:?}; see {}", log_file.display())
}

/// Whether `error` is a server start that lost its port.
fn is_port_in_use(error: &anyhow::Error) -> bool {
    error.chain().any(|e| e.is::<PortInUse>())
}

/// The last `max` bytes of a log file, for error messages.
pub fn log_tail(path: &Path, max: u64) -> String {
    let Ok(mut file) = File::open(path) else { return String::new() };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    text
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}
