//! Schedules: from a slot to the run's first task recorded as started.

use super::*;

impl Bench {
    pub(super) async fn schedule_latency(&self, definitions: usize, minutes: u32) -> anyhow::Result<Value> {
        eprintln!("schedule latency: {definitions} definitions firing every minute, {minutes} minute(s) ...");
        let worker = WorkerProcess::start(self, "bench", WorkerKind::Taskfactory).await?;
        let ids: Vec<String> = (0..definitions).map(|i| format!("bench-cron-{i}")).collect();
        for id in &ids {
            let definition = json!({"id": id, "name": id, "trigger": {"kind": "cron", "cron": ["* * * * *"]}, "tasks": [{"id": "t", "kind": "noop"}]});
            self.put(&self.api, &definition).await?;
        }
        let wanted = definitions * minutes as usize;
        let deadline = Instant::now() + Duration::from_secs(60 * (u64::from(minutes) + 2));
        let mut samples = Vec::new();
        while samples.len() < wanted {
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            samples = self.schedule_samples(&ids).await?;
        }
        worker.stop().await;
        for id in &ids {
            let _ = self.http.delete(format!("{}/api/v1/definitions/{id}", self.api)).send().await;
        }
        if samples.len() < wanted {
            bail!("only {} of {wanted} scheduled runs started a task in time", samples.len());
        }
        let report = json!({"definitions": definitions, "minutes": minutes, "slot_to_first_task_started": latency(samples),
            "command": format!("taskfactory bench --only schedule --schedules {definitions} --schedule-minutes {minutes}")});
        eprintln!(
            "  slot → first task started: p50 {} ms, p99 {} ms",
            report["slot_to_first_task_started"]["p50_ms"], report["slot_to_first_task_started"]["p99_ms"]
        );
        Ok(report)
    }

    /// Slot → first task started, for every scheduled run of `ids` whose task has started.
    async fn schedule_samples(&self, ids: &[String]) -> anyhow::Result<Vec<Duration>> {
        let mut samples = Vec::new();
        for id in ids {
            let filter = RunFilter { definition_id: Some(id.clone()), limit: 100, ..RunFilter::default() };
            for run in self.store.list_runs(&filter).await? {
                let detail = self.store.get_run(&run.workflow_id).await?;
                let first = detail.tasks.iter().filter_map(|t| t.started_at).min();
                if let (Some(slot), Some(first)) = (detail.scheduled_for, first) {
                    samples.push((first - slot).to_std().unwrap_or_default());
                }
            }
        }
        Ok(samples)
    }
}
