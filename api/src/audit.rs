//! The audit log's writer: the guard hands it each audited call and answers at once; it
//! writes what has come in, many calls per statement, so a burst of calls (32 clients sending
//! events) costs a few inserts instead of one transaction per call.
//!
//! Entries are written within a few tens of milliseconds, in order (at once when someone
//! reads the log: [`AuditLog::flush`]). Shutting down writes what is left
//! after the last request has been answered. A crash loses at most the entries of the last
//! moment — as writing after the answer always could — and never delays a call. While the
//! writer is not running (or its queue is full), the guard writes the entry itself.

use std::sync::{Arc, Mutex};

use taskfactory_activities::auth_store::AuditEntry;
use taskfactory_activities::store::Store;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Entries waiting at most; past it callers write their own.
const QUEUE: usize = 10_000;
/// Entries per statement at most.
const PER_INSERT: usize = 500;
/// How long the writer gathers entries after the first before writing them.
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

enum Message {
    Entry(AuditEntry),
    /// Answered once every entry sent before it is written.
    Flush(oneshot::Sender<()>),
}

/// Hands audited calls to the writer ([`AuditLog::write`], run by [`crate::run`]).
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Message>,
    rx: Arc<Mutex<Option<mpsc::Receiver<Message>>>>,
}

impl Default for AuditLog {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self { tx, rx: Arc::new(Mutex::new(Some(rx))) }
    }
}

impl AuditLog {
    /// Records a call: queued for the writer, or written now when there is none to take it.
    pub async fn record(&self, store: &Store, entry: AuditEntry) {
        let entry = if self.writing() {
            match self.tx.try_send(Message::Entry(entry)) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m)) => match m {
                    Message::Entry(entry) => entry,
                    Message::Flush(_) => return,
                },
            }
        } else {
            entry
        };
        if let Err(e) = store.audit(std::slice::from_ref(&entry)).await {
            tracing::error!(error = %e, action = %entry.action, "writing the audit log failed");
        }
    }

    /// Waits until every call recorded so far is written (before reading the log).
    pub async fn flush(&self) {
        if !self.writing() {
            return;
        }
        let (done, written) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    /// Whether the writer has taken the queue.
    fn writing(&self) -> bool {
        self.rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_none()
    }

    /// Writes queued entries until `stop` is cancelled; then what is left, and returns. Run
    /// it once per process, with `stop` cancelled after the last request is answered.
    pub async fn write(&self, store: Store, stop: CancellationToken) {
        let Some(mut rx) = self.rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() else {
            return;
        };
        let mut pending = Pending::default();
        loop {
            let first = tokio::select! {
                m = rx.recv() => m,
                () = stop.cancelled() => None,
            };
            let Some(first) = first else { break };
            pending.take(first);
            // What else comes in the next moment goes into the same statement, unless
            // someone waits to read the log.
            let until = tokio::time::Instant::now() + LINGER;
            while pending.entries.len() < PER_INSERT && pending.flushes.is_empty() {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(m)) => pending.take(m),
                    Ok(None) | Err(_) => break,
                }
            }
            pending.write(&store).await;
        }
        // Shutting down: what came in up to now; later callers write their own.
        rx.close();
        while let Ok(m) = rx.try_recv() {
            pending.take(m);
            if pending.entries.len() == PER_INSERT {
                pending.write(&store).await;
            }
        }
        pending.write(&store).await;
    }
}

/// What the writer took and has not written yet.
#[derive(Default)]
struct Pending {
    entries: Vec<AuditEntry>,
    flushes: Vec<oneshot::Sender<()>>,
}

impl Pending {
    fn take(&mut self, message: Message) {
        match message {
            Message::Entry(entry) => self.entries.push(entry),
            Message::Flush(done) => self.flushes.push(done),
        }
    }

    /// Writes the entries in one statement, then answers the flushes waiting for them.
    async fn write(&mut self, store: &Store) {
        if !self.entries.is_empty()
            && let Err(e) = store.audit(&self.entries).await
        {
            tracing::error!(error = %e, entries = self.entries.len(), "writing the audit log failed");
        }
        self.entries.clear();
        for done in self.flushes.drain(..) {
            let _ = done.send(());
        }
    }
}
