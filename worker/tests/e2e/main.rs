//! End-to-end tests against a real Temporal dev server and a real Postgres, both started by
//! the harness in [`support`]. One binary, so the servers are shared across every test.

// A test crate: helpers unwrap too (clippy allows it only inside #[test] fns and #[cfg(test)]).
#![allow(clippy::unwrap_used)]

mod archive;
mod auth;
mod bad_input;
mod crash;
mod dag;
mod decisions;
mod definitions;
mod egress;
mod events;
mod fanout;
mod first_contact;
mod fleet;
mod floor;
mod fuzz;
mod growth;
mod kinds;
mod live;
mod metrics;
mod notifications;
mod openapi;
mod operators;
mod partitions;
mod plans;
mod reports;
mod restarts;
mod retention;
mod run_control;
mod schedules;
mod secrets;
mod sql_context;
mod support;
mod tasks;
mod trigger_controls;
mod ui;
mod ui_lists;
