//! A private PostgreSQL cluster: initialised on first use, started on a given port, stopped on
//! drop.
//!
//! `initdb` and `postgres` refuse to run as root, so as root the cluster runs as the `postgres`
//! user. That user cannot enter a directory under a 0700 one (root's home, `mktemp -d`): then
//! the cluster is kept in a directory of its own that it can reach, `/var/tmp/taskfactory-
//! postgres-<hash of the requested path>` (owned by `postgres`, mode 0700), found again on the
//! next start by the same name; a `CLUSTER_LOCATION` file in the requested directory says where.

use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use sha2::Digest;

use super::ports::{self, server_port};
use super::{die_with_parent, is_port_in_use, stop_child, wait_until_ready};

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
    candidates.sort_by_key(|d| {
        d.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    candidates.pop().context(
        "PostgreSQL server binaries not found: run `apt-get install -y postgresql` (or set DATABASE_URL, or PG_BIN)",
    )
}

/// The user Postgres runs as when we are root.
#[derive(Clone, Copy, Debug)]
struct Identity {
    uid: u32,
    gid: u32,
}

/// The uid and gid to run Postgres as: ourselves (`None`), or the `postgres` user when we are
/// root (initdb and postgres refuse to run as root).
fn postgres_identity() -> anyhow::Result<Option<Identity>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let id = |flag: &str| -> anyhow::Result<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output()?;
        if !out.status.success() {
            bail!(
                "running as root needs a `postgres` user for the private cluster: run `useradd --system postgres` (or set DATABASE_URL)"
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok(Some(Identity { uid: id("-u")?, gid: id("-g")? }))
}

/// Whether `who` can enter `dir` (every ancestor searchable), asked of the kernel by a process
/// running as that user.
fn can_enter(who: Identity, dir: &Path) -> bool {
    Command::new("test")
        .arg("-x")
        .arg(dir)
        .uid(who.uid)
        .gid(who.gid)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The first ancestor of `dir` that `who` cannot enter (for the message).
fn first_blocked_ancestor(who: Identity, dir: &Path) -> PathBuf {
    let mut ancestors: Vec<&Path> = dir.ancestors().collect();
    ancestors.reverse();
    ancestors.into_iter().find(|a| !can_enter(who, a)).unwrap_or(dir).to_owned()
}

/// Where a cluster asked for at `requested` (absolute) is kept when `postgres` cannot reach it.
pub fn relocated_dir(requested: &Path) -> PathBuf {
    let digest = sha2::Sha256::digest(requested.as_os_str().as_encoded_bytes());
    let base = if Path::new("/var/tmp").is_dir() { Path::new("/var/tmp") } else { Path::new("/tmp") };
    base.join(format!("taskfactory-postgres-{}", &hex::encode(digest)[..16]))
}

/// Creates (or checks, when it exists) a relocated cluster directory: a real directory owned
/// by `who` with mode 0700, so nobody else on the machine can plant or read it.
fn prepare_relocated(dir: &Path, who: Identity) -> anyhow::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(meta) => {
            if !meta.file_type().is_dir() || meta.uid() != who.uid {
                bail!(
                    "{} exists but is not a directory owned by the postgres user: remove it (`rm -rf {}`) and start again",
                    dir.display(),
                    dir.display()
                );
            }
        }
        Err(_) => {
            fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
            std::os::unix::fs::chown(dir, Some(who.uid), Some(who.gid))?;
        }
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// Settings of a private cluster.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// Server binaries.
    pub bin_dir: PathBuf,
    /// Data directory (created and initialised when empty). When the `postgres` user cannot
    /// reach it, the cluster lives in [`relocated_dir`] instead (see the module docs).
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
    /// Where the cluster's files are: the configured data dir, or the directory it was moved to.
    pub location: PathBuf,
    /// Why the cluster is not in the configured data dir (`None` when it is).
    pub relocated_because: Option<String>,
    log_file: PathBuf,
}

impl PostgresCluster {
    /// Initialises the data directory if needed and starts the server on exactly the
    /// configured port (a port taken by another process fails with [`super::PortInUse`]).
    pub fn spawn(config: &PostgresConfig) -> anyhow::Result<Self> {
        let identity = postgres_identity()?;
        fs::create_dir_all(&config.data_dir).with_context(|| format!("creating {}", config.data_dir.display()))?;
        let requested = fs::canonicalize(&config.data_dir)?;
        let (location, relocated_because) = match identity {
            Some(who) if !can_enter(who, &requested) => {
                let blocked = first_blocked_ancestor(who, &requested);
                let dir = relocated_dir(&requested);
                prepare_relocated(&dir, who)?;
                let why = format!("the postgres user cannot enter {}", blocked.display());
                fs::write(
                    requested.join("CLUSTER_LOCATION"),
                    format!("The Postgres cluster of this directory lives in {} ({why}).\n", dir.display()),
                )?;
                (dir, Some(why))
            }
            _ => (requested, None),
        };
        let socket_dir = location.join("sockets");
        let pgdata = location.join("pgdata");
        fs::create_dir_all(&socket_dir)?;
        if let Some(who) = identity {
            for dir in [&location, &socket_dir] {
                std::os::unix::fs::chown(dir, Some(who.uid), Some(who.gid))?;
            }
        }
        let as_postgres = |cmd: &mut Command| {
            if let Some(who) = identity {
                cmd.uid(who.uid).gid(who.gid);
            }
        };
        if !pgdata.join("PG_VERSION").is_file() {
            let mut initdb = Command::new(config.bin_dir.join("initdb"));
            initdb.arg("-D").arg(&pgdata).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ]);
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
        let mut cluster =
            Self { child, port: config.port, location, relocated_because, log_file: config.log_file.clone() };
        // Not just "the port accepts": a process squatting on it would accept too.
        wait_until_ready(
            &mut cluster.child,
            config.port,
            Some("ready to accept connections"),
            &cluster.log_file,
            "postgres",
        )?;
        Ok(cluster)
    }

    /// [`Self::spawn`] on a port from [`server_port`]: when another process took it before
    /// Postgres bound it, a new port is drawn and the server started again (up to
    /// [`ports::START_ATTEMPTS`] times). `config.port` keeps the port that worked.
    pub fn spawn_on_free_port(config: &mut PostgresConfig) -> anyhow::Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::spawn(config) {
                Err(e) if is_port_in_use(&e) && attempt < ports::START_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "postgres lost its port; starting it on a new one");
                    config.port = server_port()?;
                    attempt += 1;
                }
                other => return other,
            }
        }
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
