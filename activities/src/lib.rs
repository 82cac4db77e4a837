//! Every side effect of taskfactory.
//!
//! - [`auth_store`]: API keys (hashed) and the audit log.
//! - [`store`]: the Postgres definition store and run log (used by the activities and the API).
//! - [`context`]: resolving context sources (`static`, `trigger`, `sql`, `http`).
//! - [`egress`]: the SSRF guard of `http` tasks and context sources.
//! - [`secrets`]: secret values, revealed only inside the request that uses them.
//! - [`sql_access`]: the databases `sql` context sources query, and the check of their roles.
//! - [`kinds`]: each task kind's work outside the workflow (`http`: the request and how its
//!   answer is classified).
//! - [`notify`]: webhook notifications: which a run's end asks for, and delivering one once.
//! - [`failure`]: which activity errors Temporal retries and which it does not.
//! - [`metrics`]: the Prometheus registry both processes record into (and the SDK's meter).
//! - [`worker_activities`]: the activity implementations the workflows call.

pub mod auth_store;
pub mod context;
pub mod egress;
pub mod failure;
pub mod kinds;
pub mod metrics;
pub mod notify;
pub mod secrets;
pub mod sql_access;
pub mod store;
pub mod worker_activities;

pub use store::{Store, StoreError};
pub use worker_activities::{ActivityConfig, TfActivityImpls};
