//! Run-log retention: fill `--retention-events` events (and a task row per two events) over
//! `--retention-runs` finished runs, ten runs a day over the past days, under a definition that
//! keeps its newest half (`retention: {last_runs}`), then prune: how long, rows per second, the
//! tables' sizes before and after, the read API's latency while the prune runs, and on a run of
//! the largest partition before and after it; and, as its floor, the page's statements alone on
//! the partitioned table and on one unpartitioned table holding the same events.

use taskfactory_activities::store::{EVENTS_PAGE, RUN_FIRED_AT, RunPrune};

use super::*;

/// Runs started per day of the fill (one partition of `run_events` a day).
const RUNS_PER_DAY: usize = 10;
/// Brings the tables to steady state before reads are timed: vacuumed, and the pages the
/// fill and the vacuum dirtied written out (not a checkpoint's writes during the timing).
const VACUUM: [&str; 2] = ["vacuum (analyze) run_events, task_runs, activity_runs", "checkpoint"];

/// The tables retention shrinks, with their bytes and estimated rows.
async fn table_sizes(store: &Store) -> anyhow::Result<Value> {
    let growth = store.growth().await?;
    let mut sizes = serde_json::Map::new();
    for table in
        growth.tables.iter().filter(|t| ["run_events", "task_runs", "activity_runs"].contains(&t.table.as_str()))
    {
        sizes.insert(
            table.table.clone(),
            json!({"mib": round2(table.bytes / 1_048_576.0), "rows_estimate": table.rows.round()}),
        );
    }
    Ok(Value::Object(sizes))
}

impl Bench {
    pub(super) async fn retention(&self, events: usize, runs: usize) -> anyhow::Result<Value> {
        let id = "bench-retention";
        let keep = runs / 2;
        let definition = json!({"id": id, "name": "Retention", "trigger": {"kind": "manual"},
            "retention": {"last_runs": keep}, "tasks": [{"id": "t", "kind": "noop"}]});
        self.put(&self.api, &definition).await?;
        let per_run = events / runs.max(1);
        let days = runs.div_ceil(RUNS_PER_DAY);
        eprintln!("retention: filling {runs} runs of {per_run} events and {} tasks, over {days} days ...", per_run / 2);
        let filling = Instant::now();
        let mut workflow_ids = Vec::with_capacity(runs);
        for i in 0..runs {
            workflow_ids.push(self.fill_run(id, i, days, per_run).await?);
            if (i + 1) % 10 == 0 {
                eprintln!("  {} runs, {} events, {:.0} s", i + 1, (i + 1) * per_run, filling.elapsed().as_secs_f64());
            }
        }
        let fill_s = filling.elapsed().as_secs_f64();
        // Reads are timed on vacuumed tables, as they are in steady state (not while
        // autovacuum catches up with the fill).
        eprintln!("  vacuuming ...");
        self.settle().await?;
        let before = table_sizes(&self.store).await?;
        // The newest run lies in the newest day; every day's partition holds as many events.
        let probe = workflow_ids.last().context("no runs")?.clone();
        let reads_before = self.read_pages(&probe, per_run, 200).await?;

        eprintln!("  pruning the oldest {} runs, reading meanwhile ...", runs - keep);
        let stop = CancellationToken::new();
        let reader = {
            let (bench_http, api, stop) = (self.http.clone(), self.api.clone(), stop.clone());
            let kept: Vec<String> = workflow_ids[runs - keep..].to_vec();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut i = 0usize;
                while !stop.is_cancelled() {
                    let run = &kept[i % kept.len()];
                    let after = (i * 7_919) % per_run.max(1);
                    let at = Instant::now();
                    let response = bench_http
                        .get(format!("{api}/api/v1/runs/{run}/events?after={after}&limit=100"))
                        .send()
                        .await?;
                    if !response.status().is_success() {
                        bail!("events page during the prune: {}", response.status());
                    }
                    response.bytes().await?;
                    samples.push(at.elapsed());
                    i += 1;
                }
                Ok::<_, anyhow::Error>(samples)
            })
        };
        let pruning = Instant::now();
        let pruned = self.store.prune_runs(&RunPrune { default_keep: None, batch: 100 }).await?;
        let prune_s = pruning.elapsed().as_secs_f64();
        stop.cancel();
        let during = reader.await??;
        let vacuuming = Instant::now();
        self.settle().await?;
        let vacuum_s = vacuuming.elapsed().as_secs_f64();
        let after = table_sizes(&self.store).await?;
        let reads_after = self.read_pages(&probe, per_run, 200).await?;
        eprintln!("  copying the kept events into one unpartitioned table, for the floor ...");
        let page_statements = self.page_statements(&probe, per_run, 200).await?;
        let pruned_runs = runs - keep;
        let rows_deleted = pruned_runs * (per_run + per_run / 2 + 1);
        let report = json!({
            "runs": runs, "events": per_run * runs, "tasks": per_run / 2 * runs, "partitions": days,
            "fill_s": round2(fill_s), "runs_pruned": pruned.runs, "prune_s": round2(prune_s),
            "partitions_dropped": pruned.partitions, "dropping_partitions_s": round2(pruned.dropping.as_secs_f64()),
            "deleting_rows_s": round2(pruned.deleting.as_secs_f64()),
            "vacuum_after_prune_s": round2(vacuum_s),
            "rows_per_s": round2(rows_deleted as f64 / prune_s.max(1e-9)),
            "tables_before": before, "tables_after": after,
            "events_page_100_during_prune": latency(during),
            "events_page_100_largest_partition_before": reads_before,
            "events_page_100_largest_partition_after": reads_after,
            "page_statement_partitioned_vs_one_table": page_statements,
            "goals": {"p99_during_prune_ms": 10, "p99_largest_partition_ms": 5},
            "command": format!("taskfactory bench --only retention --retention-events {events} --retention-runs {runs}"),
        });
        if pruned.runs != pruned_runs as u64 {
            bail!("pruned {} runs, expected {pruned_runs}", pruned.runs);
        }
        eprintln!(
            "  pruned {} runs ({rows_deleted} rows) in {prune_s:.2} s ({} partitions dropped in {:.2} s, rows deleted in {:.2} s); events page p99 during the prune {} ms, \
             on the largest partition {} ms before and {} ms after; run_events {} MiB -> {} MiB",
            pruned.runs,
            pruned.partitions,
            pruned.dropping.as_secs_f64(),
            pruned.deleting.as_secs_f64(),
            report["events_page_100_during_prune"]["p99_ms"],
            report["events_page_100_largest_partition_before"]["p99_ms"],
            report["events_page_100_largest_partition_after"]["p99_ms"],
            report["tables_before"]["run_events"]["mib"],
            report["tables_after"]["run_events"]["mib"],
        );
        eprintln!(
            "  the page's statements alone: p50 {} / p99 {} ms partitioned, p50 {} / p99 {} ms on one table",
            report["page_statement_partitioned_vs_one_table"]["partitioned"]["p50_ms"],
            report["page_statement_partitioned_vs_one_table"]["partitioned"]["p99_ms"],
            report["page_statement_partitioned_vs_one_table"]["one_table"]["p50_ms"],
            report["page_statement_partitioned_vs_one_table"]["one_table"]["p99_ms"],
        );
        Ok(report)
    }

    /// The floor of the events page: its statements alone (no HTTP, no JSON), on `run_events`
    /// and on one unpartitioned table holding the same events, read as before `run_events` was
    /// partitioned (by `(run, seq)`, after looking the run up); `requests` pages of 100 of
    /// `run` each, the two interleaved.
    async fn page_statements(&self, run: &str, events: usize, requests: usize) -> anyhow::Result<Value> {
        let pool = self.store.pool();
        for statement in [
            "drop table if exists bench_run_events_flat",
            "create table bench_run_events_flat as select * from run_events",
            "alter table bench_run_events_flat add primary key (run_workflow_id, seq)",
            "vacuum (analyze) bench_run_events_flat",
            "checkpoint",
        ] {
            sqlx::raw_sql(statement).execute(pool).await?;
        }
        let (mut partitioned, mut one_table) = (Vec::with_capacity(requests), Vec::with_capacity(requests));
        for i in 0..requests {
            let after = i64::try_from((i * events) / requests)?;
            let at = Instant::now();
            let fired_at: chrono::DateTime<chrono::Utc> =
                sqlx::query_scalar(RUN_FIRED_AT).bind(run).fetch_one(pool).await?;
            let rows =
                sqlx::query(EVENTS_PAGE).bind(run).bind(after).bind(100i64).bind(fired_at).fetch_all(pool).await?;
            partitioned.push(at.elapsed());
            let at = Instant::now();
            let _: i64 = sqlx::query_scalar("select last_seq from activity_runs where workflow_id = $1")
                .bind(run)
                .fetch_one(pool)
                .await?;
            let flat = sqlx::query(
                "select seq, ts, type, node_id, level, message, payload from bench_run_events_flat \
                 where run_workflow_id = $1 and seq > $2 order by seq limit $3",
            )
            .bind(run)
            .bind(after)
            .bind(100i64)
            .fetch_all(pool)
            .await?;
            one_table.push(at.elapsed());
            if rows.len() != flat.len() || rows.is_empty() {
                bail!("pages of {run} after {after}: {} events partitioned, {} on one table", rows.len(), flat.len());
            }
        }
        sqlx::raw_sql("drop table bench_run_events_flat").execute(pool).await?;
        Ok(json!({"partitioned": latency(partitioned), "one_table": latency(one_table)}))
    }

    /// Runs [`VACUUM`], a statement at a time (VACUUM refuses a transaction block).
    async fn settle(&self) -> anyhow::Result<()> {
        for statement in VACUUM {
            sqlx::raw_sql(statement).execute(self.store.pool()).await?;
        }
        Ok(())
    }

    /// Writes finished run `i` of `days` days back (ten a day, oldest first) with `events`
    /// events and a task per two events, straight into the tables.
    async fn fill_run(&self, definition: &str, i: usize, days: usize, events: usize) -> anyhow::Result<String> {
        let workflow_id = format!("tf:{definition}:manual:{i:04}-{}", uuid::Uuid::new_v4().simple());
        let days_ago = i32::try_from(days - i / RUNS_PER_DAY)?;
        let minute = i32::try_from(i % RUNS_PER_DAY)?;
        let events = i64::try_from(events)?;
        let pool = self.store.pool();
        let fired_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
            "select date_trunc('day', now() at time zone 'UTC') at time zone 'UTC' \
                    - make_interval(days => $1) + make_interval(hours => 1, mins => $2)",
        )
        .bind(days_ago)
        .bind(minute)
        .fetch_one(pool)
        .await?;
        self.store.ensure_event_partition_for(fired_at).await?;
        let mut tx = pool.begin().await?;
        sqlx::query(
            "insert into activity_runs (workflow_id, run_id, definition_id, trigger_kind, trigger, fired_at, status, finished_at, last_seq, tasks_spawned) \
             values ($1, 'bench', $2, 'manual', '{}'::jsonb, $3, 'completed', $3 + interval '50 minutes', $4, $4 / 2)",
        )
        .bind(&workflow_id)
        .bind(definition)
        .bind(fired_at)
        .bind(events)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "insert into task_runs (id, run_workflow_id, template_id, item_key, kind, params, status, attempt, started_at, finished_at, output) \
             select $1 || '/t/' || n, $1, 't', n::text, 'noop', jsonb_build_object('n', n), 'completed', 1, \
                    $2 + make_interval(secs => n * 0.01), $2 + make_interval(secs => n * 0.01 + 0.005), jsonb_build_object('ok', true) \
             from generate_series(1, $3 / 2) n",
        )
        .bind(&workflow_id)
        .bind(fired_at)
        .bind(events)
        .execute(&mut *tx)
        .await?;
        // Two events per task, shaped like the worker's.
        sqlx::query(
            "insert into run_events (run_workflow_id, run_fired_at, seq, event_key, ts, type, node_id, level, message, payload) \
             select $1, $2, n, 'task:' || ((n + 1) / 2) || case when n % 2 = 1 then ':started' else ':completed' end, \
                    $2 + make_interval(secs => n * 0.005), case when n % 2 = 1 then 'NODE_STARTED' else 'NODE_COMPLETED' end, \
                    $1 || '/t/' || ((n + 1) / 2), 'info', \
                    case when n % 2 = 1 then 'task started' else 'task completed' end, \
                    case when n % 2 = 1 then jsonb_build_object('attempt', 1, 'kind', 'noop') \
                         else jsonb_build_object('attempt', 1, 'output', jsonb_build_object('ok', true)) end \
             from generate_series(1, $3) n",
        )
        .bind(&workflow_id)
        .bind(fired_at)
        .bind(events)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(workflow_id)
    }
}
