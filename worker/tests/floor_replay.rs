//! The benchmark's floor workflows replay their saved histories (`tests/histories/floor_*`,
//! written by `UPDATE_HISTORIES=1 cargo test --test e2e floor`), like the product's workflows
//! do in `orchestrator/tests/replay.rs`.

// A test crate: helpers unwrap too (clippy allows it only inside #[test] fns and #[cfg(test)]).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use taskfactory::bench::floor::{
    FloorActivitiesWorkflow, FloorActivityBatchWorkflow, FloorChildWorkflow, FloorLocalBatchWorkflow, FloorWorkflow,
};
use temporalio_client::WorkflowHistory;
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

#[tokio::test]
async fn the_floors_histories_replay() {
    let options = WorkflowReplayerOptions::new()
        .register_workflow::<FloorWorkflow>()
        .unwrap()
        .register_workflow::<FloorChildWorkflow>()
        .unwrap()
        .register_workflow::<FloorActivitiesWorkflow>()
        .unwrap()
        .register_workflow::<FloorActivityBatchWorkflow>()
        .unwrap()
        .register_workflow::<FloorLocalBatchWorkflow>()
        .unwrap()
        .build();
    let replayer = WorkflowReplayer::new(options).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/histories");
    let mut replayed = 0;
    for file in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()) {
        if file.file_name().is_some_and(|n| n.to_string_lossy().starts_with("floor_")) {
            let history = WorkflowHistory::from_json(&std::fs::read(&file).unwrap()).unwrap();
            replayer
                .replay_workflow(history)
                .await
                .unwrap_or_else(|e| panic!("{} does not replay: {e}", file.display()));
            replayed += 1;
        }
    }
    assert_eq!(replayed, 5, "the five floor_*.json histories in {}", dir.display());
}
