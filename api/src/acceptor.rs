//! Group commit of event acceptances: the acceptances of concurrent ingress requests are
//! committed together, one statement and one commit for up to [`MAX_BATCH`] events
//! ([`Store::accept_events`]), at most [`COMMITTING`] batches at a time. A lone request
//! commits at once (a batch of one); under load, what arrives while batches commit waits for
//! the next one, so a commit's cost is shared by many events. Each request still gets its own
//! answer, and answers only after its batch is committed.

use std::sync::{Arc, OnceLock};

use serde_json::Value;
use taskfactory_activities::Store;
use taskfactory_activities::store::{Accept, Acceptance, StoreError};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Most events in one statement.
pub const MAX_BATCH: usize = 256;
/// Batches committing at once.
pub const COMMITTING: usize = 4;

/// An event taken for a definition, waiting for its batch.
#[derive(Clone, Debug)]
pub struct Pending {
    /// The definition.
    pub definition_id: String,
    /// The version whose trigger took it.
    pub version: i32,
    /// The rendered dedupe key.
    pub dedupe_key: String,
    /// The run's deterministic workflow id.
    pub workflow_id: String,
    /// The event as stored in the receipt.
    pub event: Value,
    /// The decision log's `detail`.
    pub detail: Value,
    /// The definitions' change counter the definition was read at.
    pub generation: i64,
}

impl Pending {
    fn acceptance(&self) -> Acceptance<'_> {
        Acceptance {
            definition_id: &self.definition_id,
            version: self.version,
            dedupe_key: &self.dedupe_key,
            workflow_id: &self.workflow_id,
            event: &self.event,
            detail: &self.detail,
            generation: self.generation,
        }
    }
}

struct Job {
    pending: Pending,
    answer: oneshot::Sender<Result<Accept, StoreError>>,
}

/// Commits acceptances in groups; started on first use, ends when the last handle is dropped.
#[derive(Clone, Default)]
pub struct Acceptor {
    jobs: Arc<OnceLock<mpsc::Sender<Job>>>,
}

impl Acceptor {
    /// Commits `pending` with whatever else is waiting, and answers what was committed for it.
    pub async fn accept(&self, store: &Store, pending: Pending) -> Result<Accept, StoreError> {
        let jobs = self.jobs.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(MAX_BATCH * COMMITTING * 4);
            tokio::spawn(commit_loop(store.clone(), receiver));
            sender
        });
        let (answer, answered) = oneshot::channel();
        jobs.send(Job { pending, answer })
            .await
            .map_err(|_| StoreError::Unavailable("the acceptance committer stopped".into()))?;
        answered.await.map_err(|_| StoreError::Unavailable("the acceptance committer stopped".into()))?
    }
}

async fn commit_loop(store: Store, mut jobs: mpsc::Receiver<Job>) {
    let slots = Arc::new(Semaphore::new(COMMITTING));
    while let Some(first) = jobs.recv().await {
        // While every slot is committing, what arrives waits and joins the next batch.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let store = store.clone();
        tokio::spawn(async move {
            commit(&store, batch).await;
            drop(slot);
        });
    }
}

/// Commits a batch; if the statement fails, each event alone, so one bad event fails only
/// its own request.
async fn commit(store: &Store, batch: Vec<Job>) {
    let acceptances: Vec<Acceptance<'_>> = batch.iter().map(|j| j.pending.acceptance()).collect();
    let answers = store.accept_events(&acceptances).await;
    drop(acceptances);
    match answers {
        Ok(answers) => {
            for (job, answer) in batch.into_iter().zip(answers) {
                let _ = job.answer.send(Ok(answer));
            }
        }
        Err(e) if batch.len() == 1 => {
            let job = batch.into_iter().next().expect("one job");
            let _ = job.answer.send(Err(e));
        }
        Err(e) => {
            tracing::debug!(error = %e, events = batch.len(), "a batch of acceptances failed: committing each alone");
            for job in batch {
                let answer = store.accept_event(&job.pending.acceptance()).await;
                let _ = job.answer.send(answer);
            }
        }
    }
}
