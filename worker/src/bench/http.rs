//! The `http` fan-out: one run of N `http` tasks, each a GET to a server in the bench process,
//! in activity mode and in workflow mode, on fresh workers allowed to reach 127.0.0.1.

use std::sync::atomic::AtomicU64;

use super::*;

impl Bench {
    pub(super) async fn http_fanout(&self, n: u64, repeat: usize) -> anyhow::Result<Value> {
        let hits = Arc::new(AtomicU64::new(0));
        let counted = hits.clone();
        let app = axum::Router::new().route(
            "/ok",
            axum::routing::get(move || {
                counted.fetch_add(1, Ordering::Relaxed);
                async { axum::Json(json!({"ok": true})) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/ok", listener.local_addr()?);
        let stop = self.shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
        });
        let rounds = repeat.max(1);
        let (mut activity, mut workflow) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            for (mode, runs) in [("activity", &mut activity), ("workflow", &mut workflow)] {
                eprintln!("http fan-out of {n} ({round}/{rounds}): {mode} mode ...");
                let task = json!({"kind": "http", "url": url, "execution": mode});
                runs.push(self.taskfactory_run_of(n, task, &["--allow-private-targets"]).await?);
            }
        }
        let served = hits.load(Ordering::Relaxed);
        if served < 2 * n * rounds as u64 {
            bail!("the local server answered {served} requests, fewer than the {} tasks", 2 * n * rounds as u64);
        }
        let (a, w) = (median(activity.iter().map(|r| r.0)), median(workflow.iter().map(|r| r.0)));
        eprintln!(
            "  {n:>6} http tasks: activity mode {a:>7.2} s ({:>6.1} tasks/s) | workflow mode {w:>7.2} s ({:>6.1} tasks/s) | activity mode {}x faster (medians of {rounds})",
            n as f64 / a,
            n as f64 / w,
            round2(w / a)
        );
        Ok(json!({
            "tasks": n,
            "runs": rounds,
            "activity_mode": {"wall_s": round2(a), "tasks_per_s": round2(n as f64 / a), "peak_worker_rss_mib": max(activity.iter().map(|r| r.1))},
            "workflow_mode": {"wall_s": round2(w), "tasks_per_s": round2(n as f64 / w), "peak_worker_rss_mib": max(workflow.iter().map(|r| r.1))},
            "speedup_activity_mode_over_workflow_mode": round2(w / a),
            "requests_served": served,
            "command": format!("taskfactory bench --only http --http-tasks {n} --repeat {rounds}"),
        }))
    }
}
