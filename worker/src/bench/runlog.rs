//! The run log: appends per second at batch sizes 1 and 100, and the read API's latency on a
//! run with many events.

use super::*;

impl Bench {
    /// A run row to append events to.
    async fn bare_run(&self, name: &str) -> anyhow::Result<String> {
        let definition =
            json!({"id": name, "name": name, "trigger": {"kind": "manual"}, "tasks": [{"id": "t", "kind": "noop"}]});
        self.put(&self.api, &definition).await?;
        let workflow_id = format!("tf:{name}:manual:{}", uuid::Uuid::new_v4().simple());
        let trigger = TriggerInfo {
            kind: RunTrigger::Manual,
            key: None,
            event: None,
            events: Vec::new(),
            payload: Value::Null,
            scheduled_for: None,
        };
        let definition_id = DefinitionId::parse(name).map_err(anyhow::Error::msg)?;
        self.store.start_run(&workflow_id, "bench", &definition_id, &trigger, None).await?;
        Ok(workflow_id)
    }

    async fn append(&self, run: &str, from: usize, count: usize) -> anyhow::Result<()> {
        let events: Vec<NewTraceEvent> = (from..from + count)
            .map(|i| NewTraceEvent {
                key: format!("bench:{i}"),
                event_type: EventType::NodeLog,
                node_id: Some(format!("job:{}", i % 100)),
                level: Level::Info,
                message: Some(format!("progress {i}")),
                payload: json!({"i": i}),
            })
            .collect();
        let written = self.store.append_external(run, &events).await?;
        if written != count {
            bail!("appended {written} of {count} events");
        }
        Ok(())
    }

    pub(super) async fn trace_writes(&self, total: usize) -> anyhow::Result<Value> {
        let mut rows = Vec::new();
        for batch in [1usize, 100] {
            eprintln!("trace writes: {total} events in batches of {batch} ...");
            let run = self.bare_run(&format!("bench-trace-{batch}")).await?;
            let started = Instant::now();
            let mut written = 0;
            while written < total {
                let count = batch.min(total - written);
                self.append(&run, written, count).await?;
                written += count;
            }
            let wall = started.elapsed().as_secs_f64();
            eprintln!("  batch {batch:>3}: {:.0} events/s", total as f64 / wall);
            rows.push(json!({"batch": batch, "events": total, "events_per_s": round2(total as f64 / wall),
                "command": format!("taskfactory bench --only trace --trace-events {total}")}));
        }
        Ok(Value::Array(rows))
    }

    pub(super) async fn read_api(&self, events: usize) -> anyhow::Result<Value> {
        eprintln!("read API: filling a run with {events} events ...");
        let run = self.bare_run("bench-read").await?;
        let mut written = 0;
        while written < events {
            let count = 1_000.min(events - written);
            self.append(&run, written, count).await?;
            written += count;
        }
        let requests = 200usize;
        let mut detail = Vec::with_capacity(requests);
        for _ in 0..requests {
            let at = Instant::now();
            let response = self.http.get(format!("{}/api/v1/runs/{run}", self.api)).send().await?;
            if !response.status().is_success() {
                bail!("run detail: {}", response.status());
            }
            response.bytes().await?;
            detail.push(at.elapsed());
        }
        // Pages spread evenly over the whole log.
        let pages = self.read_pages(&run, events, requests).await?;
        let report = json!({"run_events": events, "requests": requests, "run_detail": latency(detail), "events_page_100": pages,
            "command": format!("taskfactory bench --only read --read-events {events}")});
        eprintln!(
            "  run detail p50 {} ms p99 {} ms; events page p50 {} ms p99 {} ms",
            report["run_detail"]["p50_ms"],
            report["run_detail"]["p99_ms"],
            report["events_page_100"]["p50_ms"],
            report["events_page_100"]["p99_ms"]
        );
        Ok(report)
    }

    /// `requests` pages of 100 events of `run`, spread over its log, one after another.
    pub(super) async fn read_pages(&self, run: &str, events: usize, requests: usize) -> anyhow::Result<Value> {
        let mut samples = Vec::with_capacity(requests);
        for i in 0..requests {
            let after = (i * events) / requests;
            let at = Instant::now();
            let response =
                self.http.get(format!("{}/api/v1/runs/{run}/events?after={after}&limit=100", self.api)).send().await?;
            if !response.status().is_success() {
                bail!("events page: {}", response.status());
            }
            let page: Value = response.json().await?;
            samples.push(at.elapsed());
            if page["events"].as_array().map_or(0, Vec::len) == 0 {
                bail!("an empty events page of {run} after {after}");
            }
        }
        Ok(latency(samples))
    }
}
