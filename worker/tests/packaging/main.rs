//! Packaging, checked without Docker or a Kubernetes cluster (this project's machines have
//! neither): what users deploy with is parsed and held against the repository and against
//! the binary's own command line (clap).
//!
//! - [`compose`]: `docker-compose.dev.yml`, the `Dockerfile`, `temporal-config/`;
//! - [`kubernetes`]: `deploy/kubernetes/`, validated with `kubernetes-validate --strict`.

// A test crate: helpers unwrap too (clippy allows it only inside #[test] fns and #[cfg(test)]).
#![allow(clippy::unwrap_used)]

mod compose;
mod kubernetes;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use serde_yaml_ng::Value;
use taskfactory::cli::Cli;

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_owned()
}

/// A file of the repository.
pub fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// A YAML scalar as text.
pub fn str_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// The environment variables `taskfactory <subcommand>` reads, and which of them it cannot
/// start without (required, no default).
pub fn env_of_subcommand(subcommand: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let cli = Cli::command();
    let sub = cli.find_subcommand(subcommand).unwrap_or_else(|| panic!("`taskfactory {subcommand}` does not exist"));
    let (mut reads, mut required) = (BTreeSet::new(), BTreeSet::new());
    for arg in cli.get_arguments().filter(|a| a.is_global_set()).chain(sub.get_arguments()) {
        if let Some(env) = arg.get_env() {
            let env = env.to_string_lossy().into_owned();
            if arg.is_required_set() && arg.get_default_values().is_empty() {
                required.insert(env.clone());
            }
            reads.insert(env);
        }
    }
    (reads, required)
}

/// `host:port` → port, for listen addresses.
pub fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or_else(|| panic!("no port in {addr:?}"))
}
