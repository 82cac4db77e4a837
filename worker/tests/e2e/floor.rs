//! The benchmark's floor workflows (Temporal alone) run on taskfactory's worker and complete
//! every child. With `UPDATE_HISTORIES=1` the test saves their histories for the replay tests
//! in `orchestrator/tests/histories/`.

use taskfactory_orchestrator::floor::{FloorInput, FloorWorkflow};
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};

use crate::support::{TestApp, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_runs_one_activity_per_child() {
    let app = TestApp::spawn("floor").await;
    let id = format!("floor-{}", unique());
    let handle = app
        .client
        .start_workflow(
            FloorWorkflow::run,
            FloorInput { id_prefix: id.clone(), children: 3 },
            WorkflowStartOptions::new(app.task_queue(), id.clone()).build(),
        )
        .await
        .unwrap();
    let completed = handle.get_result(WorkflowGetResultOptions::default()).await.unwrap();
    assert_eq!(completed, 3);

    for (workflow_id, file) in [(id.clone(), "floor_workflow.json"), (format!("{id}/0"), "floor_child_workflow.json")] {
        let history = taskfactory::temporal::history_json(&app.client, &workflow_id).await.unwrap();
        crate::support::save_history_if_asked(&history, file);
    }
}
