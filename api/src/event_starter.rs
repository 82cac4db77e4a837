//! The event starter: starts the runs of accepted events in Temporal.
//!
//! Event ingress commits a `pending` receipt per (event, definition) and answers at once
//! ([`crate::routes::events`]). One API process at a time (a lease in Postgres, renewed every
//! pass and taken over by another process once it expires) reads the pending receipts, oldest
//! first, and starts their runs, [`START_CONCURRENCY`] at a time. A start that Temporal
//! refuses as a duplicate (the run itself, or an earlier pass cut short by a crash, started
//! it) counts as started: the workflow id is the dedupe key. While Temporal is unreachable
//! the receipts stay pending and the starter backs off; nothing is lost and nothing starts
//! twice. Ingress wakes the starter of its own process; the others find new receipts within
//! [`POLL_EVERY`].
//!
//! Acceptance comes first: while this process's ingress is busy ([`BUSY_REQUESTS`] requests in
//! flight at once), each start of a pass waits for it to calm down, for at most the pass's
//! yield budget (`--starter-yield`, default [`YIELD_AT_MOST`]); past it, the pass starts
//! regardless, so a steady flood delays starts by at most that much per pass.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use taskfactory_activities::store::{DueGroup, PendingStart, StoreError};
use taskfactory_schemas::DefinitionId;
use taskfactory_schemas::run::{LoadedDefinition, RunTrigger, TriggerInfo};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ApiState;
use crate::error::ApiError;
use crate::starter::start_run;

/// How often the starter looks for pending receipts when nothing woke it.
pub const POLL_EVERY: Duration = Duration::from_millis(250);
/// Most starts in flight at once.
pub const START_CONCURRENCY: usize = 32;
/// Most receipts read per pass.
const PER_PASS: i64 = 500;
/// The lease of the passes.
const LEASE: &str = "event-starter";
/// How long a lease lasts without renewal.
const LEASE_TTL: Duration = Duration::from_secs(10);
/// Longest wait between passes while Temporal is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Event ingress requests in flight at once from which the starter yields to them.
pub const BUSY_REQUESTS: usize = 4;
/// The default of the most a pass of the starter waits for a busy ingress.
pub const YIELD_AT_MOST: Duration = Duration::from_secs(5);
/// How often a yielding start looks at the ingress again.
const YIELD_CHECK: Duration = Duration::from_millis(20);

/// Wakes the starter of this process (cheap; a wake with nothing pending does one query), and
/// tells it how busy this process's event ingress is.
#[derive(Clone, Default)]
pub struct Wake {
    notify: Arc<Notify>,
    ingress_in_flight: Arc<AtomicUsize>,
}

impl Wake {
    /// Wakes the starter now.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Counts an ingress request in flight until the guard is dropped.
    pub fn ingress_request(&self) -> IngressRequest {
        self.ingress_in_flight.fetch_add(1, Ordering::Relaxed);
        IngressRequest(self.ingress_in_flight.clone())
    }

    /// Waits while the ingress is busy, until `deadline` at the latest.
    async fn yield_to_ingress(&self, deadline: tokio::time::Instant) {
        while self.ingress_in_flight.load(Ordering::Relaxed) >= BUSY_REQUESTS && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(YIELD_CHECK).await;
        }
    }
}

/// An event ingress request in flight ([`Wake::ingress_request`]).
pub struct IngressRequest(Arc<AtomicUsize>);

impl Drop for IngressRequest {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Receipts read.
    pub read: usize,
    /// Receipts settled: their run is in Temporal (started by this pass, or before), or they
    /// ended in `error` (their definition version is gone).
    pub settled: usize,
    /// Starts that failed because Temporal was unreachable (tried again later).
    pub unavailable: usize,
}

/// Starts pending runs, while this process holds the lease, until `shutdown` is cancelled;
/// each pass yields to a busy ingress for at most `yield_at_most`.
pub async fn run(state: ApiState, yield_at_most: Duration, shutdown: CancellationToken) {
    let holder = uuid::Uuid::new_v4().to_string();
    let mut backoff = Duration::ZERO;
    loop {
        tokio::select! {
            () = state.starter.notify.notified(), if backoff.is_zero() => {}
            () = tokio::time::sleep(POLL_EVERY + backoff) => {}
            () = shutdown.cancelled() => return,
        }
        loop {
            match state.store.take_lease(LEASE, &holder, LEASE_TTL).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "event starter: cannot take its lease");
                    break;
                }
            }
            let pass = match start_pending(&state, yield_at_most).await {
                Ok(pass) => pass,
                Err(e) => {
                    tracing::warn!(error = %e, "event starter: cannot read pending receipts");
                    break;
                }
            };
            if pass.unavailable > 0 {
                backoff = (backoff * 2).clamp(POLL_EVERY, MAX_BACKOFF);
                tracing::warn!(waiting = pass.unavailable, retry_in = ?backoff, "event starter: Temporal is unavailable");
                break;
            }
            backoff = Duration::ZERO;
            if pass.read < PER_PASS as usize || shutdown.is_cancelled() {
                break;
            }
        }
    }
}

/// One pass: the debounced and batched groups that are due, then the pending receipts (the
/// oldest [`PER_PASS`] of each), each start yielding to a busy ingress until `yield_at_most`
/// after the pass began.
pub async fn start_pending(state: &ApiState, yield_at_most: Duration) -> Result<Pass, StoreError> {
    let yield_until = tokio::time::Instant::now() + yield_at_most;
    let groups = state.store.due_groups(PER_PASS).await?;
    let mut pass = start_groups(state, groups).await?;
    let pending = state.store.pending_starts(PER_PASS).await?;
    pass.read = pass.read.max(pending.len());
    if pending.is_empty() {
        return Ok(pass);
    }
    // Each definition version once per pass.
    let mut definitions: HashMap<(String, Option<i32>), Result<LoadedDefinition, String>> = HashMap::new();
    for p in &pending {
        let key = (p.definition_id.clone(), p.version);
        if definitions.contains_key(&key) {
            continue;
        }
        let loaded = load_version(state, &p.definition_id, p.version).await?;
        definitions.insert(key, loaded);
    }
    let definitions = &definitions;
    let mut outcomes = futures_util::stream::iter(pending)
        .map(|p| async move {
            let loaded = &definitions[&(p.definition_id.clone(), p.version)];
            state.starter.yield_to_ingress(yield_until).await;
            start_one(state, p, loaded).await
        })
        .buffer_unordered(START_CONCURRENCY);
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Ok(true) => pass.settled += 1,
            Ok(false) => pass.unavailable += 1,
            Err(e) => tracing::warn!(error = %e, "event starter: cannot record a start"),
        }
    }
    Ok(pass)
}

/// The definition version an event was accepted for; `Ok(Err(why))` when it is gone (its
/// runs cannot start), `Err` when Postgres failed (tried again).
async fn load_version(
    state: &ApiState,
    definition_id: &str,
    version: Option<i32>,
) -> Result<Result<LoadedDefinition, String>, StoreError> {
    let id = match DefinitionId::parse(definition_id) {
        Ok(id) => id,
        Err(e) => return Ok(Err(e)),
    };
    match state.store.load_for_run(&id, version).await {
        Ok(loaded) => Ok(Ok(loaded)),
        Err(StoreError::NotFound(what)) => Ok(Err(format!("{what} not found"))),
        Err(e) => Err(e),
    }
}

/// Starts the runs of due groups, each with all its events.
async fn start_groups(state: &ApiState, groups: Vec<DueGroup>) -> Result<Pass, StoreError> {
    let mut pass = Pass { read: groups.len(), ..Pass::default() };
    for group in groups {
        let loaded = match load_version(state, &group.definition_id, Some(group.version)).await? {
            Ok(loaded) => loaded,
            Err(gone) => {
                state.store.mark_group(group.id, Some(&gone)).await?;
                continue;
            }
        };
        let Some(last) = group.events.last().cloned() else {
            state.store.mark_group(group.id, Some("the group holds no event")).await?;
            continue;
        };
        let trigger = TriggerInfo {
            kind: RunTrigger::Event,
            key: Some(group.dedupe_key.clone()),
            payload: last.payload.clone(),
            event: Some(last),
            events: group.events.clone(),
            scheduled_for: None,
        };
        match start_run(state, &loaded, trigger, group.workflow_id.clone(), None).await {
            Ok(_) => {
                state.store.mark_group(group.id, None).await?;
                pass.settled += 1;
            }
            Err(ApiError::Unavailable(message)) => {
                state.store.group_start_failed(group.id, &message).await?;
                pass.unavailable += 1;
                return Ok(pass);
            }
            Err(other) => {
                state.store.mark_group(group.id, Some(&other.to_string())).await?;
                pass.settled += 1;
            }
        }
    }
    Ok(pass)
}

/// Starts one accepted event's run; `Ok(false)`: Temporal was unreachable (tried again later).
async fn start_one(
    state: &ApiState,
    pending: PendingStart,
    loaded: &Result<LoadedDefinition, String>,
) -> Result<bool, StoreError> {
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(gone) => {
            state.store.mark_start_failed(&pending, gone, true).await?;
            return Ok(true);
        }
    };
    let trigger = TriggerInfo {
        kind: RunTrigger::Event,
        key: Some(pending.dedupe_key.clone()),
        event: Some(pending.event.clone()),
        events: Vec::new(),
        payload: pending.event.payload.clone(),
        scheduled_for: None,
    };
    match start_run(state, loaded, trigger, pending.workflow_id.clone(), None).await {
        Ok(started) => {
            state.store.mark_started(&pending, started.run_id.as_deref()).await?;
            Ok(true)
        }
        Err(ApiError::Unavailable(message)) => {
            tracing::debug!(workflow_id = %pending.workflow_id, error = %message, "event starter: start failed");
            state.store.mark_start_failed(&pending, &message, false).await?;
            Ok(false)
        }
        Err(other) => {
            state.store.mark_start_failed(&pending, &other.to_string(), true).await?;
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_start_yields_to_a_busy_ingress_until_its_deadline_and_not_to_a_quiet_one() {
        let wake = Wake::default();
        let few: Vec<IngressRequest> = (0..BUSY_REQUESTS - 1).map(|_| wake.ingress_request()).collect();
        let far = tokio::time::Instant::now() + Duration::from_secs(600);
        // Fewer requests than busy: no wait at all (the deadline is far).
        tokio::time::timeout(Duration::from_secs(5), wake.yield_to_ingress(far)).await.expect("no yield");

        let busy = wake.ingress_request();
        let began = tokio::time::Instant::now();
        let deadline = began + Duration::from_millis(200);
        wake.yield_to_ingress(deadline).await;
        assert!(tokio::time::Instant::now() >= deadline, "a busy ingress is yielded to until the deadline");

        // The requests end: a waiting start goes on before its deadline.
        drop(busy);
        drop(few);
        assert_eq!(wake.ingress_in_flight.load(Ordering::Relaxed), 0, "every guard gave its request back");
        tokio::time::timeout(Duration::from_secs(5), wake.yield_to_ingress(far)).await.expect("no yield once quiet");
    }
}
