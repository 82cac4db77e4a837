//! Server-Sent Events: a run's trace events live (`/api/v1/runs/{id}/stream`), and run-level
//! changes of every run (`/api/v1/stream`).
//!
//! A run stream sends each event once, in seq order, with `id: <seq>`; a client that
//! reconnects with `Last-Event-ID` (browsers do it by themselves) resumes right after the last
//! event it saw, on any API process. The stream ends after the run's final event, or with a
//! `run_pruned` event when run-log retention deletes the run while the stream follows it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use futures_util::stream;
use serde::Deserialize;
use taskfactory_activities::Store;
use taskfactory_activities::store::{RUN_EVENTS_CHANNEL, RUNS_CHANNEL};
use taskfactory_schemas::TraceEvent;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use utoipa::IntoParams;

use super::extract::RunPath;
use crate::ApiState;
use crate::error::ApiError;
use crate::live::Note;

/// How often a quiet stream re-reads the log anyway (covers a lost notification).
const REREAD: Duration = Duration::from_secs(2);

/// Query of a run stream.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Start after this seq (`Last-Event-ID` wins when both are given).
    pub after: Option<i64>,
}

struct Cursor {
    shutdown: CancellationToken,
    store: Store,
    run: String,
    after: i64,
    notes: broadcast::Receiver<Arc<Note>>,
    pending: VecDeque<TraceEvent>,
    done: bool,
    /// The run log has had the run: its absence now means it was pruned (before, that the
    /// worker has not recorded a just-started run yet).
    recorded: bool,
}

/// The last event of a stream whose run was pruned.
fn pruned_event(run: &str) -> Event {
    Event::default().event("run_pruned").data(serde_json::json!({"workflow_id": run}).to_string())
}

fn sse_event(e: &TraceEvent) -> Event {
    let data = serde_json::to_string(e).unwrap_or_default();
    Event::default().id(e.seq.to_string()).event(e.event_type.as_str()).data(data)
}

async fn next_event(mut cursor: Cursor) -> Option<(Result<Event, Infallible>, Cursor)> {
    loop {
        if let Some(e) = cursor.pending.pop_front() {
            // The stream ends with the run; a reset's events after an end keep it going.
            if e.event_type.ends_run() {
                cursor.done = cursor.pending.is_empty();
            }
            let event = sse_event(&e);
            return Some((Ok(event), cursor));
        }
        if cursor.done {
            return None;
        }
        match cursor.store.list_events(&cursor.run, cursor.after, 500).await {
            Ok(events) if !events.is_empty() => {
                cursor.recorded = true;
                cursor.after = events.last().map_or(cursor.after, |e| e.seq);
                cursor.pending.extend(events);
                continue;
            }
            Ok(_) => cursor.recorded = true,
            // Recorded before, gone now: retention deleted the run. Say so once and end.
            Err(taskfactory_activities::StoreError::NotFound(_)) if cursor.recorded => {
                cursor.done = true;
                let event = pruned_event(&cursor.run);
                return Some((Ok(event), cursor));
            }
            // Started in Temporal, not yet recorded by the worker: wait like for any event.
            Err(taskfactory_activities::StoreError::NotFound(_)) => {}
            Err(e) => {
                tracing::warn!(run = %cursor.run, error = %e, "reading the run log for a stream failed");
            }
        }
        // Nothing new: wait for a notification about this run, or re-read after a while.
        let wait = async {
            loop {
                match cursor.notes.recv().await {
                    Ok(note) if note.channel == RUN_EVENTS_CHANNEL && note.payload == cursor.run => return,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        };
        tokio::select! {
            _ = tokio::time::timeout(REREAD, wait) => {}
            () = cursor.shutdown.cancelled() => return None,
        }
    }
}

/// Stream a run's trace events (SSE)
///
/// Server-Sent Events: one per trace event, in seq order, with `id: <seq>`, `event: <type>`
/// and `data: <the TraceEvent as JSON>` (see the `TraceEvent` schema). Reconnecting with
/// `Last-Event-ID` resumes after that event, on any API process. The stream ends after the
/// run's final event; a run deleted by run-log retention while it is followed ends its stream
/// with one `run_pruned` event (`data: {"workflow_id"}`). `EventSource` cannot set headers:
/// pass the key as `?access_token=`.
#[utoipa::path(get, path = "/api/v1/runs/{workflow_id}/stream", operation_id = "stream_run", tag = "runs",
    params(RunPath, StreamQuery, ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this seq (wins over `after`)")),
    responses(
        (status = 200, description = "An event stream of `TraceEvent`s", body = String, content_type = "text/event-stream"),
        (status = 404, description = "Neither the run log nor Temporal knows the run"),
        (status = 422, description = "`Last-Event-ID` is not a number"),
    ))]
pub async fn run_stream(
    State(state): State<ApiState>,
    Path(RunPath { workflow_id }): Path<RunPath>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let last_event_id = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::field("Last-Event-ID", "must be an event seq (a number)"))?,
        ),
        None => None,
    };
    // Subscribe before the first read, so no notification falls between the two.
    let notes = state.live.subscribe();
    // 404 for an unknown run, before the stream starts. A run Temporal has running but the
    // worker has not recorded yet (just triggered) is streamed as soon as it is; one Temporal
    // has closed and the log does not have was pruned (or never started): 404 too.
    let recorded = match state.store.list_events(&workflow_id, 0, 1).await {
        Ok(_) => true,
        Err(e) => {
            let handle = state.temporal.get_workflow_handle::<temporalio_common::UntypedWorkflow>(workflow_id.clone());
            match handle.describe(Default::default()).await {
                Ok(d) if d.status() == temporalio_client::WorkflowExecutionStatus::Running => false,
                _ => return Err(e.into()),
            }
        }
    };
    let cursor = Cursor {
        shutdown: state.shutdown.clone(),
        store: state.store.clone(),
        run: workflow_id,
        after: last_event_id.or(q.after).unwrap_or(0).max(0),
        notes,
        pending: VecDeque::new(),
        done: false,
        recorded,
    };
    Ok(Sse::new(stream::unfold(cursor, next_event)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Stream run-level changes of every run (SSE)
///
/// Server-Sent Events: one `run` event per run-level change (started, context resolved,
/// planned, completed, failed) of any run, with `data: {"workflow_id", "seq", "types"}`. Live
/// only: nothing is replayed. `EventSource` cannot set headers: pass the key as
/// `?access_token=`.
#[utoipa::path(get, path = "/api/v1/stream", operation_id = "stream_runs", tag = "runs",
    responses((status = 200, description = "An event stream of `run` events", body = String, content_type = "text/event-stream")))]
pub async fn runs_stream(State(state): State<ApiState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let notes = state.live.subscribe();
    let events = stream::unfold((notes, state.shutdown.clone()), |(mut notes, shutdown)| async move {
        loop {
            let received = tokio::select! {
                received = notes.recv() => received,
                () = shutdown.cancelled() => return None,
            };
            match received {
                Ok(note) if note.channel == RUNS_CHANNEL => {
                    return Some((Ok(Event::default().event("run").data(note.payload.clone())), (notes, shutdown)));
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
