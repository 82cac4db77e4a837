//! Prometheus metrics of the worker and the API, in one process-wide registry.
//!
//! Both processes record here; `GET /metrics` (the API's listener, or the worker's
//! `--metrics-addr`) answers [`render`]: taskfactory's own series below, plus the Temporal
//! SDK's worker metrics, which reach the same registry through [`temporal_meter`] (see
//! [`sdk`]). `taskfactory dev` runs worker and API in one process, so its API shows both.
//!
//! Labels stay bounded: definition ids, kinds, statuses and operation names, never workflow
//! ids or event keys.
//!
//! | series | type | labels |
//! | --- | --- | --- |
//! | `taskfactory_runs_started_total` | counter | `definition_id`, `trigger` |
//! | `taskfactory_runs_finished_total` | counter | `definition_id`, `status` |
//! | `taskfactory_tasks_finished_total` | counter | `definition_id`, `kind`, `status` |
//! | `taskfactory_events_received_total` | counter | `status` (`accepted`, `invalid`) |
//! | `taskfactory_event_outcomes_total` | counter | `definition_id`, `outcome` |
//! | `taskfactory_trace_write_seconds` | histogram | `op` |
//! | `taskfactory_schedule_reconcile_actions_total` | counter | `action` |
//! | `taskfactory_runs_pruned_total` | counter | `definition_id` |
//! | `taskfactory_event_partitions_dropped_total` | counter | |
//! | `taskfactory_receipts_pruned_total` | counter | `definition_id` |
//! | `taskfactory_table_rows` | gauge (API only) | `table` |
//! | `taskfactory_table_bytes` | gauge (API only) | `table` |
//! | `taskfactory_oldest_run_timestamp_seconds` | gauge (API only; absent without runs) | |
//!
//! The gauges describe the API's database, read from Postgres' catalog when `/metrics` is
//! scraped, at most every 15 s ([`growth_families`]): rows are `reltuples` estimates (what the
//! last vacuum or analyze counted), bytes are `pg_total_relation_size` with indexes and
//! TOAST, both summed over a partitioned table's partitions.

mod sdk;

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use prometheus::proto::MetricFamily;
use prometheus::{Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};
use temporalio_common::telemetry::metrics::CoreMeter;

/// The `Content-Type` of [`render`]'s text (Prometheus text exposition format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Upper bounds (seconds) of the trace-write latency buckets: one transaction with its event.
const WRITE_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// taskfactory's own series.
pub struct Metrics {
    registry: Registry,
    /// Runs recorded as started (once per run, however often the activity is retried).
    pub runs_started: IntCounterVec,
    /// Runs recorded as finished.
    pub runs_finished: IntCounterVec,
    /// Tasks recorded as finished (completed, failed, or skipped because of a dependency).
    pub tasks_finished: IntCounterVec,
    /// Events `POST /api/v1/events` received, valid or not.
    pub events_received: IntCounterVec,
    /// What each valid event did for each matching definition.
    pub event_outcomes: IntCounterVec,
    /// Latency of run-log writes (a state change and its trace event, one transaction).
    pub trace_write_seconds: HistogramVec,
    /// Repairs the schedule reconciler made.
    pub schedule_reconcile_actions: IntCounterVec,
    /// Trigger decisions recorded, by definition, source and outcome (a run that planned no
    /// task counts as `fired` and again as `fired_zero_tasks`).
    pub trigger_decisions: IntCounterVec,
    /// Schedule slots the cron expressions called for, as the observer settled them.
    pub schedule_slots_expected: IntCounterVec,
    /// Of those, the slots that started a run. `expected - fired` growing means a silent schedule.
    pub schedule_slots_fired: IntCounterVec,
    /// Finished runs deleted by run-log retention.
    pub runs_pruned: IntCounterVec,
    /// Day partitions of `run_events` dropped by run-log retention.
    pub event_partitions_dropped: IntCounterVec,
    /// Event receipts deleted by `--receipt-retention`.
    pub receipts_pruned: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric definition");
    registry.register(Box::new(counter.clone())).expect("each metric is registered once");
    counter
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let trace_write_seconds = HistogramVec::new(
            HistogramOpts::new(
                "taskfactory_trace_write_seconds",
                "Latency of run-log writes (state change and trace event in one transaction), by operation",
            )
            .buckets(WRITE_BUCKETS.to_vec()),
            &["op"],
        )
        .expect("a valid metric definition");
        registry.register(Box::new(trace_write_seconds.clone())).expect("each metric is registered once");
        Self {
            runs_started: counter(
                &registry,
                "taskfactory_runs_started_total",
                "Runs started, by definition and trigger",
                &["definition_id", "trigger"],
            ),
            runs_finished: counter(
                &registry,
                "taskfactory_runs_finished_total",
                "Runs finished, by definition and status",
                &["definition_id", "status"],
            ),
            tasks_finished: counter(
                &registry,
                "taskfactory_tasks_finished_total",
                "Tasks finished, by definition, task kind and status",
                &["definition_id", "kind", "status"],
            ),
            events_received: counter(
                &registry,
                "taskfactory_events_received_total",
                "Events received by event ingress, accepted or invalid",
                &["status"],
            ),
            event_outcomes: counter(
                &registry,
                "taskfactory_event_outcomes_total",
                "Outcomes of accepted events per matching definition: started, duplicate, filtered, error",
                &["definition_id", "outcome"],
            ),
            trace_write_seconds,
            schedule_reconcile_actions: counter(
                &registry,
                "taskfactory_schedule_reconcile_actions_total",
                "Repairs made by the schedule reconciler: created, updated, deleted",
                &["action"],
            ),
            trigger_decisions: counter(
                &registry,
                "taskfactory_trigger_decisions_total",
                "Trigger decisions recorded: fired, fired_zero_tasks (also counted as fired), skipped, deduplicated, filtered, error",
                &["definition_id", "source", "outcome"],
            ),
            schedule_slots_expected: counter(
                &registry,
                "taskfactory_schedule_slots_expected_total",
                "Schedule slots the cron expressions called for, counted when the schedule observer settles them",
                &["definition_id"],
            ),
            schedule_slots_fired: counter(
                &registry,
                "taskfactory_schedule_slots_fired_total",
                "Settled schedule slots that started a run (compare with taskfactory_schedule_slots_expected_total)",
                &["definition_id"],
            ),
            runs_pruned: counter(
                &registry,
                "taskfactory_runs_pruned_total",
                "Finished runs deleted by run-log retention, with their tasks, events and other rows",
                &["definition_id"],
            ),
            event_partitions_dropped: counter(
                &registry,
                "taskfactory_event_partitions_dropped_total",
                "Day partitions of run_events dropped whole by run-log retention (none of their runs was kept)",
                &[],
            ),
            receipts_pruned: counter(
                &registry,
                "taskfactory_receipts_pruned_total",
                "Event receipts deleted by receipt retention (their dedupe keys are no longer deduplicated by the run log)",
                &["definition_id"],
            ),
            registry,
        }
    }

    /// Records the latency of a run-log write that began at `started`.
    pub fn observe_write(&self, op: &str, started: Instant) {
        self.trace_write_seconds.with_label_values(&[op]).observe(started.elapsed().as_secs_f64());
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide series.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The meter to give the Temporal SDK's runtime (`TelemetryOptions::metrics`): its worker
/// metrics then appear in [`render`] beside taskfactory's.
pub fn temporal_meter() -> Arc<dyn CoreMeter> {
    Arc::new(sdk::SdkMeter)
}

/// Every series of this process in the Prometheus text format.
pub fn render() -> String {
    render_with(Vec::new())
}

/// The growth gauges of a database as `growth` read it: rows and bytes per table, and the
/// oldest run kept (left out when there is no run). A registry of their own per scrape, since
/// they describe one database and a process may serve several (the test suite's APIs).
pub fn growth_families(growth: &crate::store::Growth) -> Vec<MetricFamily> {
    let registry = Registry::new();
    let gauge = |name: &str, help: &str| {
        let gauge = GaugeVec::new(Opts::new(name, help), &["table"]).expect("a valid metric definition");
        registry.register(Box::new(gauge.clone())).expect("each metric is registered once");
        gauge
    };
    let rows = gauge(
        "taskfactory_table_rows",
        "Estimated rows of each of taskfactory's tables (reltuples, summed over partitions; 0 until first analyzed)",
    );
    let bytes = gauge(
        "taskfactory_table_bytes",
        "Bytes of each of taskfactory's tables with indexes and TOAST (pg_total_relation_size, summed over partitions)",
    );
    for table in &growth.tables {
        rows.with_label_values(&[table.table.as_str()]).set(table.rows);
        bytes.with_label_values(&[table.table.as_str()]).set(table.bytes);
    }
    if let Some(oldest) = growth.oldest_run {
        let gauge = Gauge::new(
            "taskfactory_oldest_run_timestamp_seconds",
            "When the oldest run the run log keeps fired (unix seconds); absent when there is no run",
        )
        .expect("a valid metric definition");
        gauge.set(oldest.timestamp() as f64);
        registry.register(Box::new(gauge)).expect("each metric is registered once");
    }
    registry.gather()
}

/// [`render`], with `extra` families after the process's own (the API's growth gauges).
pub fn render_with(extra: Vec<MetricFamily>) -> String {
    let mut families = METRICS.registry.gather();
    families.extend(sdk::gather());
    families.extend(extra);
    let mut text = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&families, &mut text) {
        tracing::error!(error = %e, "encoding the metrics failed");
    }
    String::from_utf8(text).unwrap_or_default()
}
