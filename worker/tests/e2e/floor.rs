//! The benchmark's floor workflows (Temporal alone) run on the bench's own floor worker — the
//! product worker does not register them — and complete every child. With `UPDATE_HISTORIES=1`
//! the test saves their histories for `worker/tests/floor_replay.rs`.

use taskfactory::bench::floor::{ActivityFloorInput, FloorActivitiesWorkflow, FloorInput, FloorWorkflow};
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};

use crate::support::{TestApp, servers, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floors_run_on_the_floor_worker() {
    let app = TestApp::spawn_with("floor", false).await;
    // The worker's future is not Send: a thread and a runtime of its own, stopped on drop.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (address, queue) = (servers().temporal_address.clone(), app.task_queue().to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let client = taskfactory::temporal::connect(&address, "default").await.unwrap();
            taskfactory::bench::floor::run_worker(client, queue, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
    });

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

    // The activity floor: 300 activities, a batch of 250 and one of 50.
    let activities_id = format!("floor-activities-{}", unique());
    let handle = app
        .client
        .start_workflow(
            FloorActivitiesWorkflow::run,
            ActivityFloorInput { id_prefix: activities_id.clone(), activities: 300, batch: 0, local: false },
            WorkflowStartOptions::new(app.task_queue(), activities_id.clone()).build(),
        )
        .await
        .unwrap();
    assert_eq!(handle.get_result(WorkflowGetResultOptions::default()).await.unwrap(), 300);

    // The local-activity floor (an alternative measured by the bench): batches of 100.
    let local_id = format!("floor-local-{}", unique());
    let handle = app
        .client
        .start_workflow(
            FloorActivitiesWorkflow::run,
            ActivityFloorInput { id_prefix: local_id.clone(), activities: 300, batch: 100, local: true },
            WorkflowStartOptions::new(app.task_queue(), local_id.clone()).build(),
        )
        .await
        .unwrap();
    assert_eq!(handle.get_result(WorkflowGetResultOptions::default()).await.unwrap(), 300);
    let local_batch = taskfactory::temporal::history_json(&app.client, &format!("{local_id}/b2")).await.unwrap();
    let markers = String::from_utf8_lossy(&local_batch).matches("MarkerRecordedEventAttributes").count();
    assert_eq!(markers, 100, "one marker per local activity, no activity task");

    for (workflow_id, file) in [
        (format!("{local_id}/b2"), "floor_local_batch_workflow.json"),
        (id.clone(), "floor_workflow.json"),
        (format!("{id}/0"), "floor_child_workflow.json"),
        (activities_id.clone(), "floor_activities_workflow.json"),
        (format!("{activities_id}/b1"), "floor_activity_batch_workflow.json"),
    ] {
        let history = taskfactory::temporal::history_json(&app.client, &workflow_id).await.unwrap();
        crate::support::save_history_if_asked(&history, &format!("worker/tests/histories/{file}"));
    }
    let _ = stop.send(());
}
