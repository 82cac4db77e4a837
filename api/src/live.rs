//! Live updates: one Postgres `LISTEN` per API process, fanned out to every stream.
//!
//! The run log's writers `NOTIFY` at commit (see `taskfactory_activities::store`), so any API
//! process serving a stream hears about events written through any other. A stream never
//! trusts a notification's content: it wakes up and reads the rows after its cursor, so a
//! lost or lagging notification costs latency (a periodic re-read covers it), never an event.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use taskfactory_activities::store::{RUN_EVENTS_CHANNEL, RUNS_CHANNEL};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// One notification.
#[derive(Clone, Debug)]
pub struct Note {
    /// `tf_run_events` or `tf_runs`.
    pub channel: String,
    /// The run's workflow id (`tf_run_events`) or a JSON change (`tf_runs`).
    pub payload: String,
}

/// The process's fan-out of notifications. Cheap to clone.
#[derive(Clone, Debug)]
pub struct LiveHub {
    tx: broadcast::Sender<Arc<Note>>,
}

impl LiveHub {
    /// A hub with no listener yet: [`Self::listen`] feeds it.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self { tx }
    }

    /// Listens on `pool`'s database, reconnecting after errors, until `shutdown` is cancelled.
    pub async fn listen(&self, pool: PgPool, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                result = listen(&pool, &self.tx) => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "listening for run log notifications failed; retrying");
                    }
                }
                () = shutdown.cancelled() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// A receiver of every notification from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Note>> {
        self.tx.subscribe()
    }
}

impl Default for LiveHub {
    fn default() -> Self {
        Self::new()
    }
}

async fn listen(pool: &PgPool, tx: &broadcast::Sender<Arc<Note>>) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([RUN_EVENTS_CHANNEL, RUNS_CHANNEL]).await?;
    loop {
        let note = listener.recv().await?;
        // No receivers is fine: nobody is streaming right now.
        let _ = tx.send(Arc::new(Note { channel: note.channel().to_owned(), payload: note.payload().to_owned() }));
    }
}
