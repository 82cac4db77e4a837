//! Task kinds and context sources: `workflow` tasks served by another worker on another task
//! queue, failures and the DAG, and `sql` context with bound parameters.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, servers, unique};

/// Runs `taskfactory demo-worker`'s workflows and activity (`DemoGreeter`, `DemoSleeper`,
/// `demo.shout`) on `task_queue`, on a thread and runtime of its own, until the returned sender
/// is dropped.
pub fn spawn_greeter_worker(task_queue: String) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let address = servers().temporal_address.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let client = taskfactory::temporal::connect(&address, "default").await.unwrap();
            taskfactory::demo::run(client, task_queue, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
    });
    stop
}

fn greeting_definition(id: &str, queue: &str, names: &[&str]) -> Value {
    let names: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
    json!({
        "id": id,
        "name": "Greetings",
        "trigger": {"kind": "manual"},
        "context": [{"name": "people", "kind": "static", "value": names}],
        "tasks": [
            {"id": "greet", "kind": "workflow", "workflow_type": "DemoGreeter", "task_queue": queue,
             "for_each": "people", "key": "{{ item.name }}", "params": {"name": "{{ item.name }}"}},
            {"id": "after", "kind": "noop", "depends_on": ["greet"]}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_tasks_run_on_another_workers_task_queue() {
    let app = TestApp::spawn("wftask").await;
    let queue = format!("greeters-{}", unique());
    let _greeter = spawn_greeter_worker(queue.clone());
    let id = format!("greet-{}", unique());
    assert_eq!(app.put_definition(&greeting_definition(&id, &queue, &["Ada", "Grace"])).await.0, StatusCode::CREATED);
    let workflow_id = app.start_run(&id, &json!({})).await;

    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["tasks_completed"], 3);
    let outputs: Vec<&Value> =
        run["tasks"].as_array().unwrap().iter().filter(|t| t["template_id"] == "greet").map(|t| &t["output"]).collect();
    assert_eq!(outputs, [&json!({"greeting": "Hello, Ada!"}), &json!({"greeting": "Hello, Grace!"})]);
    // The user's workflow really ran, as a child of the task, on the other queue.
    let work =
        app.client.get_workflow_handle::<temporalio_common::UntypedWorkflow>(format!("{workflow_id}/greet/Ada/work"));
    let description = work.describe(Default::default()).await.expect("the DemoGreeter workflow exists");
    assert_eq!(description.task_queue(), queue);
    assert_eq!(description.workflow_type(), "DemoGreeter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_fails_the_run_and_skips_its_dependents() {
    let app = TestApp::spawn("failure").await;
    let queue = format!("greeters-{}", unique());
    let _greeter = spawn_greeter_worker(queue.clone());
    let id = format!("fail-{}", unique());
    app.put_definition(&greeting_definition(&id, &queue, &["Ada", "fail"])).await;
    let workflow_id = app.start_run(&id, &json!({})).await;

    let run = app.wait_for_run(&workflow_id).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"], "1 of 2 tasks failed");
    assert_eq!(
        (run["tasks_completed"].clone(), run["tasks_failed"].clone(), run["tasks_skipped"].clone()),
        (json!(1), json!(1), json!(1))
    );
    let failed = run["tasks"].as_array().unwrap().iter().find(|t| t["status"] == "failed").unwrap();
    assert!(failed["error"].as_str().unwrap().contains("cannot greet \"fail\""), "{failed}");
    let skipped = run["tasks"].as_array().unwrap().iter().find(|t| t["status"] == "skipped").unwrap();
    assert_eq!(skipped["template_id"], "after");

    let events = app.all_events(&workflow_id, 100).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"NODE_FAILED") && types.contains(&"NODE_SKIPPED"), "{types:?}");
    assert_eq!(types.last(), Some(&"WORKFLOW_FAILED"));
    app.wait_for_visibility(&format!("TfDefinitionId = '{id}' AND TfKind = 'run' AND ExecutionStatus = 'Failed'"), 1)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_context_binds_parameters_and_conditions_explain_skips() {
    let app = TestApp::spawn("sqlctx").await;
    let pool = app.store.pool();
    // The schema the test's context role reads.
    sqlx::query("create table demo.invoices (id text primary key, customer text not null, amount int not null)")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("insert into demo.invoices values ('i1', 'acme', 500), ('i2', 'globex', 250), ('i3', 'initech', 5)")
        .execute(pool)
        .await
        .unwrap();
    let id = format!("sql-{}", unique());
    let definition = json!({
        "id": id,
        "name": "Chase overdue invoices",
        "trigger": {"kind": "manual"},
        "context": [{"name": "invoices", "kind": "sql", "connection": "reporting",
                     "query": "select id, customer, amount from invoices where amount > $1::int order by id",
                     "params": ["{{ trigger.payload.min }}"]}],
        "tasks": [{"id": "remind", "kind": "noop", "for_each": "invoices", "key": "{{ item.id }}",
                   "when": "{{ item.customer != 'acme' }}",
                   "params": {"invoice": "{{ item.id }}", "amount": "{{ item.amount }}"}}]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);

    let run = app.wait_for_run(&app.start_run(&id, &json!({"payload": {"min": 10}})).await).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["context_snapshot"]["invoices"].as_array().unwrap().len(), 2, "i3 is below the bound minimum");
    let tasks = run["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["params"], json!({"invoice": "i2", "amount": 250}));
    let decisions = run["plan"]["decisions"].as_array().unwrap();
    let acme = decisions.iter().find(|d| d["item_key"] == "i1").unwrap();
    assert_eq!(acme["outcome"], "skip");
    assert_eq!(acme["reason"], "condition false: {{ item.customer != 'acme' }}");

    // A parameter is bound, never spliced: this is a type error, not a second statement.
    let (_, started) = app.trigger(&id, &json!({"payload": {"min": "0; drop table invoices"}})).await;
    let run = app.wait_for_run(started["workflow_id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "failed");
    let error = run["error"].as_str().unwrap();
    assert!(error.contains("context[0].query") && error.contains("invalid input syntax for type integer"), "{error}");
    let still_there: i64 = sqlx::query_scalar("select count(*) from demo.invoices").fetch_one(pool).await.unwrap();
    assert_eq!(still_there, 3);

    // Context queries run read-only: a write is refused, even where the role may write.
    sqlx::query("create sequence demo.counter").execute(pool).await.unwrap();
    sqlx::query(&format!("grant usage, update on sequence demo.counter to \"{}\"", app.context_role()))
        .execute(pool)
        .await
        .unwrap();
    let writer = json!({
        "id": format!("writer-{}", unique()), "name": "Writer", "trigger": {"kind": "manual"},
        "context": [{"name": "n", "kind": "sql", "query": "select nextval('counter') as n"}],
        "tasks": [{"id": "t", "kind": "noop"}]
    });
    app.put_definition(&writer).await;
    let run = app.wait_for_run(&app.start_run(writer["id"].as_str().unwrap(), &json!({})).await).await;
    assert_eq!(run["status"], "failed");
    assert!(run["error"].as_str().unwrap().contains("read-only transaction"), "{}", run["error"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_on_a_separate_worker_process() {
    let app = TestApp::spawn("process").await;
    let queue = format!("demo-{}", unique());
    // Another team's worker, as its own OS process: `taskfactory demo-worker`.
    let _demo = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskfactory"))
        .args(["demo-worker", "--temporal-address", &servers().temporal_address, "--task-queue", &queue])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting taskfactory demo-worker");
    let id = format!("demo-{}", unique());
    let definition = json!({
        "id": id, "name": "Demo", "trigger": {"kind": "manual"},
        "tasks": [
            {"id": "greet", "kind": "workflow", "workflow_type": "DemoGreeter", "task_queue": queue, "params": {"name": "Ada"}},
            {"id": "shout", "kind": "activity", "activity_type": "demo.shout", "task_queue": queue, "params": {"text": "hi"}}
        ]
    });
    assert_eq!(app.put_definition(&definition).await.0, StatusCode::CREATED);
    let run = app.wait_for_run(&app.start_run(&id, &json!({})).await).await;
    assert_eq!(run["status"], "completed", "{run}");
    let output =
        |t: &str| run["tasks"].as_array().unwrap().iter().find(|x| x["template_id"] == t).unwrap()["output"].clone();
    assert_eq!(output("greet"), json!({"greeting": "Hello, Ada!"}));
    assert_eq!(output("shout"), json!({"shouted": "HI"}));
    // The activity task ran as an activity of its batch (which recorded its start and end);
    // the workflow task as a workflow of its own.
    let task = |t: &str| run["tasks"].as_array().unwrap().iter().find(|x| x["template_id"] == t).unwrap().clone();
    assert_eq!(task("shout")["execution"], "activity");
    assert_eq!(task("greet")["execution"], "workflow");
    assert_eq!(task("greet")["temporal_workflow_id"], task("greet")["id"]);
    let batch = task("shout")["temporal_workflow_id"].as_str().unwrap().to_owned();
    assert!(batch.contains("/~batch/shout/"), "{batch}");
    let history = taskfactory::temporal::history_json(&app.client, &batch).await.unwrap();
    crate::support::save_history_if_asked(
        &history,
        "orchestrator/tests/histories/task_batch_workflow_activity_kind.json",
    );
}
