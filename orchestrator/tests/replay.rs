//! Replays saved histories against today's workflow code: a change that would break running
//! workflows (nondeterminism) fails here, before it reaches a worker.
//!
//! Histories are recorded from real runs on a dev server with `taskfactory history WORKFLOW_ID
//! -o FILE` (the Rust client's JSON, which `WorkflowHistory::from_json` reads; the `temporal`
//! CLI's export is a different format) and checked in under `tests/histories/`. The floor's
//! are written by `UPDATE_HISTORIES=1 cargo test --test e2e floor`.

// A test crate: helpers unwrap too (clippy allows it only inside #[test] fns and #[cfg(test)]).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use taskfactory_orchestrator::{NotifyWorkflow, RunActivityWorkflow, TaskBatchWorkflow, TaskWorkflow};
use temporalio_client::WorkflowHistory;
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

fn replayer() -> WorkflowReplayer {
    let options = WorkflowReplayerOptions::new()
        .register_workflow::<RunActivityWorkflow>()
        .unwrap()
        .register_workflow::<TaskWorkflow>()
        .unwrap()
        .register_workflow::<TaskBatchWorkflow>()
        .unwrap()
        .register_workflow::<NotifyWorkflow>()
        .unwrap()
        .build();
    WorkflowReplayer::new(options).unwrap()
}

#[tokio::test]
async fn saved_histories_replay_without_nondeterminism() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/histories");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no histories in {}", dir.display());
    let replayer = replayer();
    // Every history is tried, so that one run names every file a change breaks.
    let mut failures = Vec::new();
    for file in &files {
        if let Err(e) = replay(&replayer, file).await {
            failures.push(format!("{} does not replay: {e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{} of {} histories fail:\n{}", failures.len(), files.len(), failures.join("\n"));
}

/// Reads, parses and replays one saved history; the error says which step failed.
async fn replay(replayer: &WorkflowReplayer, file: &Path) -> Result<(), String> {
    let bytes = std::fs::read(file).map_err(|e| format!("reading: {e}"))?;
    let history = WorkflowHistory::from_json(&bytes).map_err(|e| format!("parsing: {e}"))?;
    replayer.replay_workflow(history).await.map_err(|e| e.to_string())
}
