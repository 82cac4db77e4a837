//! Fan-out: one run of N noop tasks next to the floor (bare child workflows with one activity
//! each), and optionally the floor's leaves as top-level workflows.

use super::*;

impl Bench {
    pub(super) async fn fanout(
        &self,
        sizes: &[u64],
        repeat: usize,
        skip_floor: bool,
        top_level: bool,
    ) -> anyhow::Result<Value> {
        let mut rows = Vec::new();
        for &n in sizes {
            let rounds = if n <= 1_000 { repeat.max(1) } else { 1 };
            let (mut tf, mut floor, mut top) = (Vec::new(), Vec::new(), Vec::new());
            for round in 1..=rounds {
                eprintln!("fan-out of {n} ({round}/{rounds}): the floor (bare child workflows), then taskfactory ...");
                if !skip_floor {
                    floor.push(self.floor_run(n).await?);
                }
                tf.push(self.taskfactory_run(n).await?);
                if top_level {
                    top.push(self.top_level_run(n).await?);
                }
            }
            let (tf_wall, floor_wall) = (median(tf.iter().map(|r| r.0)), median(floor.iter().map(|r| r.0)));
            let (tf_rss, floor_rss) = (max(tf.iter().map(|r| r.1)), max(floor.iter().map(|r| r.1)));
            let ratio = round2(tf_wall / floor_wall);
            eprintln!(
                "  {n:>6} tasks: taskfactory {tf_wall:>7.2} s ({:>6.1} tasks/s, worker peak {tf_rss:>6.1} MiB) | floor {floor_wall:>7.2} s ({floor_rss:>6.1} MiB) | ratio {ratio} (medians of {rounds})",
                n as f64 / tf_wall
            );
            let walls = |runs: &[(f64, f64)]| runs.iter().map(|r| round2(r.0)).collect::<Vec<_>>();
            let mut row = json!({
                "tasks": n,
                "runs": rounds,
                "taskfactory": {"wall_s": round2(tf_wall), "tasks_per_s": round2(n as f64 / tf_wall), "peak_worker_rss_mib": tf_rss, "wall_s_each": walls(&tf)},
                "floor": {"wall_s": round2(floor_wall), "tasks_per_s": round2(n as f64 / floor_wall), "peak_worker_rss_mib": floor_rss, "wall_s_each": walls(&floor)},
                "ratio_taskfactory_to_floor": ratio,
                "command": format!("taskfactory bench --only fanout --sizes {n} --repeat {rounds}{}", if top_level { " --top-level" } else { "" }),
            });
            if top_level {
                let top_wall = median(top.iter().map(|r| r.0));
                eprintln!(
                    "         the floor's leaves as top-level workflows: {top_wall:>7.2} s, ratio to the floor {}",
                    round2(top_wall / floor_wall)
                );
                row["top_level_leaves"] = json!({"wall_s": round2(top_wall), "tasks_per_s": round2(n as f64 / top_wall), "wall_s_each": walls(&top), "ratio_to_floor": round2(top_wall / floor_wall)});
            }
            rows.push(row);
        }
        Ok(Value::Array(rows))
    }

    /// Wall seconds and the worker's peak RSS of a run of `n` noop tasks.
    async fn taskfactory_run(&self, n: u64) -> anyhow::Result<(f64, f64)> {
        let id = format!("bench-fanout-{n}-{}", uuid::Uuid::new_v4().simple().to_string().get(..6).unwrap_or("x"));
        let items: Vec<u64> = (0..n).collect();
        let definition = json!({"id": id, "name": format!("Fan-out of {n}"), "trigger": {"kind": "manual"},
            "context": [{"name": "items", "kind": "static", "value": items}],
            "tasks": [{"id": "t", "kind": "noop", "for_each": "items", "key": "{{ item }}"}]});
        self.put(&self.api, &definition).await?;
        let worker = WorkerProcess::start(self, "bench", WorkerKind::Taskfactory).await?;
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

    /// Wall seconds and the worker's peak RSS of the floor for `n` children.
    async fn floor_run(&self, n: u64) -> anyhow::Result<(f64, f64)> {
        let task_queue = format!("bench-floor-{n}");
        let worker = WorkerProcess::start(self, &task_queue, WorkerKind::Floor).await?;
        let id = format!("bench-floor-{n}-{}", uuid::Uuid::new_v4().simple());
        let started = Instant::now();
        let handle = self
            .client
            .start_workflow(
                FloorWorkflow::run,
                FloorInput { id_prefix: id.clone(), children: n },
                WorkflowStartOptions::new(task_queue, id.clone()).build(),
            )
            .await?;
        let done =
            handle.get_result(WorkflowGetResultOptions::default()).await.with_context(|| format!("floor {id}"))?;
        let wall = started.elapsed().as_secs_f64();
        let rss = worker.peak_rss_mib();
        worker.stop().await;
        if done != n {
            bail!("the floor completed {done} of {n} children");
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
