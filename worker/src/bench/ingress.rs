//! Event ingress: events/s and latency with half the dedupe keys repeated (acceptance is a
//! commit in Postgres), and how long the starter takes until Temporal has every run.

use super::*;

impl Bench {
    pub(super) async fn ingress(
        &self,
        events: usize,
        concurrency: usize,
        starter_yield: Duration,
    ) -> anyhow::Result<Value> {
        let api = Self::serve_api(&self.store, &self.client, "bench-ingress", starter_yield, &self.shutdown).await?;
        let id = "bench-ingress";
        let definition = json!({"id": id, "name": "Ingress", "trigger": {"kind": "event", "event_type": "bench.pushed"},
            "tasks": [{"id": "t", "kind": "noop"}]});
        self.put(&api, &definition).await?;
        let distinct = events.div_ceil(2);
        eprintln!("ingress: {events} events, {distinct} distinct keys, {concurrency} concurrent clients ...");
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let clients = (0..concurrency).map(|_| {
            let (next, http, api) = (next.clone(), self.http.clone(), api.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut started_runs = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= events {
                        return Ok::<_, anyhow::Error>((samples, started_runs));
                    }
                    // Every key twice: event i and event i + distinct share key i.
                    let key = format!("push-{}", i % distinct);
                    let at = Instant::now();
                    let response = http
                        .post(format!("{api}/api/v1/events"))
                        .json(&json!({"type": "bench.pushed", "key": key, "payload": {"n": i}}))
                        .send()
                        .await?;
                    let status = response.status();
                    let body = response.text().await?;
                    samples.push(at.elapsed());
                    if !status.is_success() {
                        bail!("event {i}: {status} {body}");
                    }
                    started_runs += body.matches("\"outcome\":\"accepted\"").count();
                }
            })
        });
        let mut samples = Vec::with_capacity(events);
        let mut started_runs = 0;
        for client in futures::future::join_all(clients).await {
            let (s, n) = client??;
            samples.extend(s);
            started_runs += n;
        }
        let wall = started.elapsed().as_secs_f64();
        let query = format!("TfDefinitionId = '{id}' AND TfKind = 'run'");
        let visible = self.wait_for_count(&query, distinct).await?;
        // From the first event sent until Temporal lists a run for every distinct key.
        let all_started_s = started.elapsed().as_secs_f64();
        let receipts = self.store.count_receipts(id).await?;
        let report = json!({
            "events": events, "distinct_keys": distinct, "concurrency": concurrency,
            "starter_yield_s": starter_yield.as_secs_f64(),
            "events_per_s": round2(events as f64 / wall), "latency": latency(samples),
            "runs_accepted_per_answers": started_runs, "run_workflows_in_temporal": visible, "receipts": receipts,
            "all_runs_in_temporal_after_s": round2(all_started_s),
            "runs_equal_distinct_keys": started_runs == distinct && visible == distinct && receipts == distinct as i64,
            "command": format!(
                "taskfactory bench --only ingress --events {events} --concurrency {concurrency} --starter-yield {}s",
                starter_yield.as_secs()
            ),
        });
        eprintln!(
            "  {:.0} events/s accepted, p50 {} ms, p99 {} ms; {started_runs} runs accepted for {distinct} keys, \
             Temporal counts {visible} runs {all_started_s:.1} s after the first event",
            report["events_per_s"].as_f64().unwrap_or(0.0),
            report["latency"]["p50_ms"],
            report["latency"]["p99_ms"]
        );
        Ok(report)
    }

    /// Waits (at most 300 s) for visibility to count `expected`; answers the last count.
    async fn wait_for_count(&self, query: &str, expected: usize) -> anyhow::Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let count = self.client.count_workflows(query, WorkflowCountOptions::default()).await?.count();
            if count >= expected || Instant::now() > deadline {
                return Ok(count);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
