//! Fan-out: one run of N noop tasks, in each execution mode, next to the two floors written by
//! hand with no taskfactory at all ([`super::floor`]): N trivial activities in batch workflows
//! of 250 (the *activity floor*, what activity mode is held to), and N child workflows with
//! one activity each (the *child floor*, what workflow mode is held to). Every series runs on
//! a fresh worker process of its own, in turn, round after round; medians are reported.

use super::*;

/// Largest fan-out the workflow-mode series (and the child floor) run at by default: above it
/// they take minutes and say nothing new.
const WORKFLOW_MODE_MAX: u64 = 2_000;

/// One measured series of a fan-out size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Series {
    ActivityFloor,
    LocalActivityFloor,
    ChildFloor,
    Activity,
    Local,
    Workflow,
}

impl Series {
    fn name(self) -> &'static str {
        match self {
            Self::ActivityFloor => "activity_floor",
            Self::LocalActivityFloor => "local_activity_floor",
            Self::ChildFloor => "child_floor",
            Self::Activity => "taskfactory_activity_mode",
            Self::Local => "taskfactory_local_mode",
            Self::Workflow => "taskfactory_workflow_mode",
        }
    }
}

impl Bench {
    pub(super) async fn fanout(&self, args: &BenchArgs) -> anyhow::Result<Value> {
        let (skip_floor, top_level) = (args.skip_floor, args.top_level);
        let mut rows = Vec::new();
        for &n in &args.sizes {
            let rounds = if n <= 1_000 { args.repeat.max(1) } else { 1 };
            let mut series = vec![Series::Activity];
            if args.local_mode {
                series.push(Series::Local);
            }
            if !skip_floor {
                series.insert(0, Series::ActivityFloor);
                if args.floor_local {
                    series.insert(1, Series::LocalActivityFloor);
                }
            }
            if n <= WORKFLOW_MODE_MAX && !args.skip_workflow_mode {
                series.push(Series::Workflow);
                if !skip_floor {
                    series.push(Series::ChildFloor);
                }
            }
            let mut measured: Vec<Vec<(f64, f64)>> = vec![Vec::new(); series.len()];
            let mut top = Vec::new();
            for round in 1..=rounds {
                for (i, s) in series.iter().enumerate() {
                    eprintln!("fan-out of {n} ({round}/{rounds}): {} ...", s.name());
                    measured[i].push(match s {
                        Series::ActivityFloor => self.activity_floor_run(n, args.floor_batch, false).await?,
                        Series::LocalActivityFloor => self.activity_floor_run(n, args.floor_batch, true).await?,
                        Series::ChildFloor => self.floor_run(n).await?,
                        Series::Activity => self.taskfactory_run(n, "activity").await?,
                        Series::Local => self.taskfactory_run(n, "local").await?,
                        Series::Workflow => self.taskfactory_run(n, "workflow").await?,
                    });
                }
                if top_level {
                    top.push(self.top_level_run(n).await?);
                }
            }
            let mut row = json!({
                "tasks": n,
                "runs": rounds,
                "command": format!("taskfactory bench --only fanout --sizes {n} --repeat {rounds}{}{}{}{}{}{}{}",
                    if skip_floor { " --skip-floor" } else { "" },
                    if args.floor_batch != 250 { format!(" --floor-batch {}", args.floor_batch) } else { String::new() },
                    if args.floor_local { " --floor-local" } else { "" },
                    if args.local_mode { " --local-mode" } else { "" },
                    if args.skip_workflow_mode { " --skip-workflow-mode" } else { "" },
                    if top_level { " --top-level" } else { "" },
                    args.worker_args.iter().map(|a| format!(" --worker-arg={a}"))
                        .chain(args.temporal_dynamic_config.iter().map(|d| format!(" --temporal-dynamic-config {d}")))
                        .collect::<String>()),
            });
            let mut wall_of = std::collections::HashMap::new();
            for (s, runs) in series.iter().zip(&measured) {
                let wall = median(runs.iter().map(|r| r.0));
                let rss = max(runs.iter().map(|r| r.1));
                wall_of.insert(*s, wall);
                eprintln!(
                    "  {n:>6} tasks: {:<26} {wall:>7.2} s ({:>7.1} tasks/s, worker peak {rss:>6.1} MiB, median of {rounds})",
                    s.name(),
                    n as f64 / wall
                );
                row[s.name()] = json!({"wall_s": round2(wall), "tasks_per_s": round2(n as f64 / wall), "peak_worker_rss_mib": rss,
                    "wall_s_each": runs.iter().map(|r| round2(r.0)).collect::<Vec<_>>()});
            }
            let ratio = |a: Series, b: Series| wall_of.get(&a).zip(wall_of.get(&b)).map(|(a, b)| round2(a / b));
            if let Some(r) = ratio(Series::Local, Series::LocalActivityFloor) {
                eprintln!("         local mode / local-activity floor: {r}");
                row["ratio_local_mode_to_local_activity_floor"] = json!(r);
            }
            if let Some(r) = ratio(Series::Activity, Series::LocalActivityFloor) {
                eprintln!("         activity mode / local-activity floor: {r}");
                row["ratio_activity_mode_to_local_activity_floor"] = json!(r);
            }
            if let Some(r) = ratio(Series::Activity, Series::ActivityFloor) {
                eprintln!("         activity mode / activity floor: {r} (goal: at most 1.2)");
                row["ratio_activity_mode_to_activity_floor"] = json!(r);
            }
            if let Some(r) = ratio(Series::Workflow, Series::Activity) {
                eprintln!("         workflow mode / activity mode: {r} (activity mode is {r}x faster)");
                row["speedup_activity_mode_over_workflow_mode"] = json!(r);
            }
            if let Some(r) = ratio(Series::Workflow, Series::ChildFloor) {
                eprintln!("         workflow mode / child floor: {r}");
                row["ratio_workflow_mode_to_child_floor"] = json!(r);
            }
            if top_level {
                let top_wall = median(top.iter().map(|r| r.0));
                eprintln!("         the child floor's leaves as top-level workflows: {top_wall:>7.2} s");
                row["top_level_leaves"] = json!({"wall_s": round2(top_wall), "tasks_per_s": round2(n as f64 / top_wall), "wall_s_each": top.iter().map(|r| round2(r.0)).collect::<Vec<_>>()});
            }
            rows.push(row);
        }
        Ok(Value::Array(rows))
    }

    /// Wall seconds and the worker's peak RSS of a run of `n` noop tasks in `execution` mode.
    async fn taskfactory_run(&self, n: u64, execution: &str) -> anyhow::Result<(f64, f64)> {
        self.taskfactory_run_of(n, json!({"kind": "noop", "execution": execution}), &[]).await
    }

    /// [`Self::taskfactory_run`] of `n` tasks made from `task` (a template without id, fan-out
    /// or key), on a worker given `worker_args` too.
    pub(super) async fn taskfactory_run_of(
        &self,
        n: u64,
        task: Value,
        worker_args: &[&str],
    ) -> anyhow::Result<(f64, f64)> {
        let id = format!("bench-fanout-{n}-{}", uuid::Uuid::new_v4().simple().to_string().get(..6).unwrap_or("x"));
        let items: Vec<u64> = (0..n).collect();
        let mut task = task;
        task["id"] = json!("t");
        task["for_each"] = json!("items");
        task["key"] = json!("{{ item }}");
        let definition = json!({"id": id, "name": format!("Fan-out of {n}"), "trigger": {"kind": "manual"},
            "context": [{"name": "items", "kind": "static", "value": items}], "tasks": [task]});
        self.put(&self.api, &definition).await?;
        let worker = WorkerProcess::start_with(self, "bench", WorkerKind::Taskfactory, worker_args).await?;
        let started = Instant::now();
        let response =
            self.http.post(format!("{}/api/v1/definitions/{id}/runs", self.api)).json(&json!({})).send().await?;
        let answer: Value = response.json().await?;
        let workflow_id =
            answer["workflow_id"].as_str().with_context(|| format!("triggering {id}: {answer}"))?.to_owned();
        let handle = self.client.get_workflow_handle::<RunActivityWorkflow>(workflow_id.clone());
        handle.get_result(WorkflowGetResultOptions::default()).await.with_context(|| format!("run {workflow_id}"))?;
        let wall = started.elapsed().as_secs_f64();
        let rss = worker.peak_rss_mib();
        worker.stop().await;
        let run = self.store.get_run(&workflow_id).await?;
        if run.summary.tasks_completed != n as i64 {
            bail!("run {workflow_id} completed {} of {n} tasks", run.summary.tasks_completed);
        }
        // How long the histories grew: the run's, and its first batch's (the fullest one).
        let length = |id: String| async move {
            let handle = self.client.get_workflow_handle::<temporalio_common::UntypedWorkflow>(id);
            handle.describe(Default::default()).await.map(|d| d.history_length()).unwrap_or(0)
        };
        let (run_events, batch_events) =
            (length(workflow_id.clone()).await, length(format!("{workflow_id}/~batch/t/0")).await);
        eprintln!("  histories: the run {run_events} events, its first batch {batch_events} events");
        // Where the time went, from the run log's own timestamps.
        let (first, last) = self.store.task_time_span(&workflow_id).await?;
        if let (Some(first), Some(last), Some(end)) = (first, last, run.summary.finished_at) {
            let ms = |d: chrono::TimeDelta| d.num_milliseconds();
            eprintln!(
                "  phases: trigger → first task {} ms, first task → last task done {} ms, last task → run recorded done {} ms",
                ms(first - run.summary.fired_at),
                ms(last - first),
                ms(end - last)
            );
        }
        Ok((wall, rss))
    }

    /// Wall seconds and the worker's peak RSS of the activity floor for `n` activities in
    /// batches of `batch`, remote or `local`.
    async fn activity_floor_run(&self, n: u64, batch: u64, local: bool) -> anyhow::Result<(f64, f64)> {
        self.on_floor_worker("activity-floor", n, |task_queue, id| async move {
            let input = ActivityFloorInput { id_prefix: id.clone(), activities: n, batch, local };
            let options = WorkflowStartOptions::new(task_queue, id).build();
            let handle = self.client.start_workflow(FloorActivitiesWorkflow::run, input, options).await?;
            Ok(handle.get_result(WorkflowGetResultOptions::default()).await?)
        })
        .await
    }

    /// Wall seconds and the worker's peak RSS of the child floor for `n` children.
    async fn floor_run(&self, n: u64) -> anyhow::Result<(f64, f64)> {
        self.on_floor_worker("floor", n, |task_queue, id| async move {
            let input = FloorInput { id_prefix: id.clone(), children: n };
            let options = WorkflowStartOptions::new(task_queue, id).build();
            let handle = self.client.start_workflow(FloorWorkflow::run, input, options).await?;
            Ok(handle.get_result(WorkflowGetResultOptions::default()).await?)
        })
        .await
    }

    /// Times `run(task_queue, workflow_id)` (which answers how many of its `n` steps
    /// completed) on a fresh floor worker; wall seconds and the worker's peak RSS.
    async fn on_floor_worker<F, Fut>(&self, name: &str, n: u64, run: F) -> anyhow::Result<(f64, f64)>
    where
        F: FnOnce(String, String) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<u64>>,
    {
        let task_queue = format!("bench-{name}-{n}");
        let worker = WorkerProcess::start(self, &task_queue, WorkerKind::Floor).await?;
        let id = format!("bench-{name}-{n}-{}", uuid::Uuid::new_v4().simple());
        let started = Instant::now();
        let done = run(task_queue, id.clone()).await.with_context(|| format!("{name} {id}"))?;
        let wall = started.elapsed().as_secs_f64();
        let rss = worker.peak_rss_mib();
        worker.stop().await;
        if done != n {
            bail!("the {name} completed {done} of {n}");
        }
        Ok((wall, rss))
    }

    /// Wall seconds of the floor's `n` leaf workflows started by the client, with no parent:
    /// all started (100 at a time), then all awaited.
    async fn top_level_run(&self, n: u64) -> anyhow::Result<(f64, f64)> {
        use futures::StreamExt;
        let task_queue = format!("bench-top-{n}");
        let worker = WorkerProcess::start(self, &task_queue, WorkerKind::Floor).await?;
        let prefix = format!("bench-top-{n}-{}", uuid::Uuid::new_v4().simple());
        let started = Instant::now();
        let handles: Vec<_> = futures::stream::iter(0..n)
            .map(|i| {
                let options = WorkflowStartOptions::new(task_queue.clone(), format!("{prefix}/{i}")).build();
                self.client.start_workflow(FloorChildWorkflow::run, i, options)
            })
            .buffer_unordered(100)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let done = futures::stream::iter(handles)
            .map(|h| async move { h.get_result(WorkflowGetResultOptions::default()).await })
            .buffer_unordered(200)
            .filter(|r| std::future::ready(r.is_ok()))
            .count()
            .await;
        let wall = started.elapsed().as_secs_f64();
        let rss = worker.peak_rss_mib();
        worker.stop().await;
        if done as u64 != n {
            bail!("{done} of {n} top-level leaves completed");
        }
        Ok((wall, rss))
    }
}
