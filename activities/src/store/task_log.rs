//! Group commit of task writes.
//!
//! Every task records its start and its end (`NODE_STARTED`, `NODE_COMPLETED`), and each such
//! write takes its run's row lock to hand out `seq` and then commits (a WAL flush). With
//! hundreds of tasks of one run finishing at once, those writes queue on the lock one commit
//! at a time. [`TaskLog`] takes the writes of concurrent activities of this process, and
//! writes all those pending for one run in *one* transaction: one lock, one commit, the same
//! rows and events, still gapless and in seq order. A caller's future resolves when its write
//! is committed, so the activity (and Temporal) see exactly what they saw before.
//!
//! If a grouped transaction fails, its writes are retried one by one, so one bad write cannot
//! fail the others; the failing one's error goes to its own caller (the activity retries).

use std::collections::HashMap;

use serde_json::Value;
use taskfactory_schemas::run::Status;
use tokio::sync::{mpsc, oneshot};

use super::{Result, Store};

/// Most writes taken into one round of transactions.
const MAX_GROUP: usize = 500;

/// One task state change (with its trace event).
#[derive(Clone, Debug)]
pub enum TaskWrite {
    /// The task started running (its workflow, or an attempt of its activity): `NODE_STARTED`
    /// once, the attempt number on every attempt.
    Started {
        /// The task id.
        task_id: String,
        /// The run id of the workflow that runs it.
        temporal_run_id: String,
        /// The workflow that runs it, when that is not the task's own (activity mode: its batch).
        workflow_id: Option<String>,
        /// Which attempt (1 for a task workflow).
        attempt: u32,
    },
    /// The task ended: `NODE_COMPLETED` or `NODE_FAILED`.
    Finished {
        /// The task's workflow id.
        task_id: String,
        /// Completed or failed.
        status: Status,
        /// Its output.
        output: Value,
        /// Why it failed.
        error: Option<String>,
    },
}

struct Request {
    run: String,
    /// Written together, in order.
    writes: Vec<TaskWrite>,
    done: oneshot::Sender<Result<()>>,
}

/// The process's task writer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TaskLog {
    requests: mpsc::UnboundedSender<Request>,
}

impl TaskLog {
    /// Starts the writer on the current runtime.
    pub fn start(store: Store) -> Self {
        let (requests, rx) = mpsc::unbounded_channel();
        tokio::spawn(serve(store, rx));
        Self { requests }
    }

    /// Writes `writes` (in order, in one transaction) to `run`'s log; resolves once they are
    /// committed.
    pub async fn write(&self, run: &str, writes: Vec<TaskWrite>) -> Result<()> {
        let (done, answer) = oneshot::channel();
        let request = Request { run: run.to_owned(), writes, done };
        if self.requests.send(request).is_err() {
            return Err(super::StoreError::Unavailable("the task writer has stopped".into()));
        }
        answer.await.map_err(|_| super::StoreError::Unavailable("the task writer dropped a write".into()))?
    }
}

async fn serve(store: Store, mut requests: mpsc::UnboundedReceiver<Request>) {
    while let Some(first) = requests.recv().await {
        // Everything that queued while the previous round was committing forms this round.
        let mut round = vec![first];
        while round.len() < MAX_GROUP {
            match requests.try_recv() {
                Ok(request) => round.push(request),
                Err(_) => break,
            }
        }
        let mut by_run: HashMap<String, Vec<Request>> = HashMap::new();
        for request in round {
            by_run.entry(request.run.clone()).or_default().push(request);
        }
        futures::future::join_all(by_run.into_iter().map(|(run, group)| write_group(&store, run, group))).await;
    }
}

async fn write_group(store: &Store, run: String, group: Vec<Request>) {
    let writes: Vec<&TaskWrite> = group.iter().flat_map(|r| &r.writes).collect();
    match store.task_writes(&run, &writes).await {
        Ok(()) => {
            for request in group {
                let _ = request.done.send(Ok(()));
            }
        }
        Err(e) if group.len() == 1 => {
            if let Some(request) = group.into_iter().next() {
                let _ = request.done.send(Err(e));
            }
        }
        Err(_) => {
            for request in group {
                let writes: Vec<&TaskWrite> = request.writes.iter().collect();
                let result = store.task_writes(&run, &writes).await;
                let _ = request.done.send(result);
            }
        }
    }
}
