//! The `taskfactory` binary's library: everything `main` dispatches to.
//!
//! - [`cli`]: the command line: its schema ([`cli::args`]), the dispatch, one module per group
//!   of client commands.
//! - [`startup`]: the composition root: building and running the API and worker processes.
//! - [`config`]: typed settings shared by the commands.
//! - [`devstack`]: starting and stopping a Temporal dev server and a private Postgres cluster
//!   on ports nothing else can take (used by `dev`, `bench` and the test harness).
//! - [`temporal`]: connecting to Temporal and registering search attributes.
//! - [`worker`]: building and running the Temporal worker.
//! - [`dev`]: `taskfactory dev`, the whole system in one process tree.
//! - [`context_role`]: the least-privilege database role `sql` context sources run as in
//!   `taskfactory dev` and the test suite.
//! - [`demo`]: `taskfactory demo-worker`, another team's worker to point tasks at.
//! - [`client`]: the HTTP client behind the client commands (`apply`, `trigger`, `runs`, ...).
//! - [`bench`]: `taskfactory bench`, throughput and latency figures against servers it starts.
//! - [`telemetry`]: tracing setup.

pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod context_role;
pub mod demo;
pub mod dev;
pub mod devstack;
pub mod startup;
pub mod telemetry;
pub mod temporal;
pub mod worker;
