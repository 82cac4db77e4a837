//! The Temporal SDK's worker metrics, recorded as Prometheus vectors that [`super::render`]
//! writes out with taskfactory's series.
//!
//! The SDK reports through the [`CoreMeter`] its `Runtime` is given. Its own Prometheus meter
//! (`start_prometheus_metric_exporter`) serves a private registry on a port of its own, which
//! would mean a second endpoint per process and none inside the API's listener; this meter
//! keeps one registry and one `/metrics` per process (ADR-011).
//!
//! Names follow Prometheus conventions: the SDK's `temporal_` prefix, counters ending in
//! `_total`, duration histograms in seconds ending in `_seconds` (with the SDK's default
//! buckets). Labels are the SDK's: `service_name`, `namespace`, `task_queue`,
//! `workflow_type`, `activity_type`, `poller_type`, ... — all bounded. A metric name may come
//! with different label sets; each set gets its own vector and [`gather`] merges them.
//!
//! Recording never fails: the SDK treats an error from `with_attributes` as a bug (it panics
//! in debug builds), so a metric that cannot be created is logged and recorded nowhere.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};
use temporalio_common::telemetry::metrics::{
    CoreMeter, Counter, CounterBase, Gauge, GaugeBase, GaugeF64, GaugeF64Base, Histogram, HistogramBase,
    HistogramDuration, HistogramDurationBase, HistogramF64, HistogramF64Base, MetricAttributable, MetricAttributes,
    MetricKeyValue, MetricParameters, NewAttributes, NoOpInstrument, OrderedPromLabelSet, UpDownCounter,
    UpDownCounterBase, default_buckets_for,
};

/// The prefix the SDK puts on its metric names (stripped to look up default buckets).
const SDK_PREFIX: &str = "temporal_";

/// What an instrument records into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    /// Integer gauges and up-down counters.
    IntGauge,
    /// Floating-point gauges.
    Gauge,
    Histogram,
}

/// One Prometheus vector: a metric name with one set of label names.
#[derive(Clone)]
enum Vector {
    Counter(IntCounterVec),
    IntGauge(IntGaugeVec),
    Gauge(GaugeVec),
    Histogram(HistogramVec),
}

impl Vector {
    fn new(instrument: &Instrument, label_names: &[&str]) -> prometheus::Result<Self> {
        let help = if instrument.help.is_empty() { instrument.name.as_str() } else { instrument.help.as_str() };
        let opts = Opts::new(instrument.name.as_str(), help);
        Ok(match instrument.kind {
            Kind::Counter => Self::Counter(IntCounterVec::new(opts, label_names)?),
            Kind::IntGauge => Self::IntGauge(IntGaugeVec::new(opts, label_names)?),
            Kind::Gauge => Self::Gauge(GaugeVec::new(opts, label_names)?),
            Kind::Histogram => Self::Histogram(HistogramVec::new(
                HistogramOpts::from(opts).buckets(instrument.buckets.clone()),
                label_names,
            )?),
        })
    }

    fn kind(&self) -> Kind {
        match self {
            Self::Counter(_) => Kind::Counter,
            Self::IntGauge(_) => Kind::IntGauge,
            Self::Gauge(_) => Kind::Gauge,
            Self::Histogram(_) => Kind::Histogram,
        }
    }

    fn child(&self, values: &[&str]) -> prometheus::Result<Child> {
        Ok(match self {
            Self::Counter(v) => Child::Counter(v.get_metric_with_label_values(values)?),
            Self::IntGauge(v) => Child::IntGauge(v.get_metric_with_label_values(values)?),
            Self::Gauge(v) => Child::Gauge(v.get_metric_with_label_values(values)?),
            Self::Histogram(v) => Child::Histogram(v.get_metric_with_label_values(values)?),
        })
    }

    fn collect(&self) -> Vec<MetricFamily> {
        match self {
            Self::Counter(v) => v.collect(),
            Self::IntGauge(v) => v.collect(),
            Self::Gauge(v) => v.collect(),
            Self::Histogram(v) => v.collect(),
        }
    }
}

/// One labelled series of a vector.
enum Child {
    Counter(IntCounter),
    IntGauge(IntGauge),
    Gauge(prometheus::Gauge),
    Histogram(prometheus::Histogram),
}

/// Vectors by (metric name, label names).
type Vectors = HashMap<(String, Vec<String>), Vector>;

/// Every vector the SDK created in this process.
static VECTORS: LazyLock<RwLock<Vectors>> = LazyLock::new(Default::default);

/// The SDK's series, one family per name (vectors of one name with different label sets
/// merged).
pub(super) fn gather() -> Vec<MetricFamily> {
    let vectors = VECTORS.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut by_name: BTreeMap<String, MetricFamily> = BTreeMap::new();
    for family in vectors.values().flat_map(Vector::collect) {
        if family.get_metric().is_empty() {
            continue;
        }
        match by_name.get_mut(family.name()) {
            None => {
                by_name.insert(family.name().to_owned(), family);
            }
            Some(existing) if existing.get_field_type() == family.get_field_type() => {
                let mut family = family;
                existing.mut_metric().extend(family.take_metric());
            }
            // Refused when created (see `Instrument::bind`); never two types under one name.
            Some(_) => {}
        }
    }
    by_name.into_values().collect()
}

/// A metric the SDK created; bound to label values on use.
#[derive(Debug)]
struct Instrument {
    name: String,
    help: String,
    kind: Kind,
    /// Bucket bounds (histograms only).
    buckets: Vec<f64>,
}

impl Instrument {
    fn new(params: &MetricParameters, name: String, kind: Kind) -> Self {
        // Prometheus names allow no dashes.
        Self { name: name.replace('-', "_"), help: params.description.to_string(), kind, buckets: Vec::new() }
    }

    /// The series for `attributes`; `None` (logged) when it cannot exist.
    fn bind(&self, attributes: &MetricAttributes) -> Option<Child> {
        let labels = label_pairs(attributes);
        let names: Vec<String> = labels.keys().cloned().collect();
        let values: Vec<&str> = labels.values().map(String::as_str).collect();
        let key = (self.name.clone(), names);
        let found = VECTORS.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key).cloned();
        let vector = match found {
            Some(vector) => vector,
            None => {
                let mut vectors = VECTORS.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(other) = vectors.iter().find(|((name, _), v)| *name == self.name && v.kind() != self.kind) {
                    tracing::warn!(metric = %self.name, kind = ?self.kind, existing = ?other.1.kind(), "SDK metric created with two types; not recorded");
                    return None;
                }
                match vectors.get(&key) {
                    Some(vector) => vector.clone(),
                    None => {
                        let label_names: Vec<&str> = key.1.iter().map(String::as_str).collect();
                        let vector = match Vector::new(self, &label_names) {
                            Ok(vector) => vector,
                            Err(e) => {
                                tracing::warn!(metric = %self.name, error = %e, "SDK metric cannot be created; not recorded");
                                return None;
                            }
                        };
                        vectors.insert(key, vector.clone());
                        vector
                    }
                }
            }
        };
        match vector.child(&values) {
            Ok(child) => Some(child),
            Err(e) => {
                tracing::warn!(metric = %self.name, error = %e, "SDK metric labels rejected; not recorded");
                None
            }
        }
    }
}

/// Label names and values of attributes this meter made (or an empty set).
fn label_pairs(attributes: &MetricAttributes) -> BTreeMap<String, String> {
    match attributes {
        MetricAttributes::Prometheus { labels } => {
            labels.as_prom_labels().into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
        }
        MetricAttributes::NoOp(labels) => labels.iter().map(|(k, v)| (k.replace('-', "_"), v.clone())).collect(),
        _ => BTreeMap::new(),
    }
}

/// A bound series, as the SDK's recording traits see it.
struct Bound<T>(T);

impl CounterBase for Bound<IntCounter> {
    fn adds(&self, value: u64) {
        self.0.inc_by(value);
    }
}
impl GaugeBase for Bound<IntGauge> {
    fn records(&self, value: u64) {
        self.0.set(i64::try_from(value).unwrap_or(i64::MAX));
    }
}
impl UpDownCounterBase for Bound<IntGauge> {
    fn adds(&self, value: i64) {
        self.0.add(value);
    }
}
impl GaugeF64Base for Bound<prometheus::Gauge> {
    fn records(&self, value: f64) {
        self.0.set(value);
    }
}
impl HistogramBase for Bound<prometheus::Histogram> {
    fn records(&self, value: u64) {
        self.0.observe(value as f64);
    }
}
impl HistogramF64Base for Bound<prometheus::Histogram> {
    fn records(&self, value: f64) {
        self.0.observe(value);
    }
}
impl HistogramDurationBase for Bound<prometheus::Histogram> {
    fn records(&self, value: Duration) {
        self.0.observe(value.as_secs_f64());
    }
}

type AttributeResult<T> = Result<Box<T>, Box<dyn std::error::Error>>;

impl MetricAttributable<Box<dyn CounterBase>> for Instrument {
    fn with_attributes(&self, attributes: &MetricAttributes) -> AttributeResult<dyn CounterBase> {
        Ok(match self.bind(attributes) {
            Some(Child::Counter(c)) => Box::new(Bound(c)),
            _ => Box::new(NoOpInstrument),
        })
    }
}
impl MetricAttributable<Box<dyn GaugeBase>> for Instrument {
    fn with_attributes(&self, attributes: &MetricAttributes) -> AttributeResult<dyn GaugeBase> {
        Ok(match self.bind(attributes) {
            Some(Child::IntGauge(g)) => Box::new(Bound(g)),
            _ => Box::new(NoOpInstrument),
        })
    }
}
impl MetricAttributable<Box<dyn UpDownCounterBase>> for Instrument {
    fn with_attributes(&self, attributes: &MetricAttributes) -> AttributeResult<dyn UpDownCounterBase> {
        Ok(match self.bind(attributes) {
            Some(Child::IntGauge(g)) => Box::new(Bound(g)),
            _ => Box::new(NoOpInstrument),
        })
    }
}
impl MetricAttributable<Box<dyn GaugeF64Base>> for Instrument {
    fn with_attributes(&self, attributes: &MetricAttributes) -> AttributeResult<dyn GaugeF64Base> {
        Ok(match self.bind(attributes) {
            Some(Child::Gauge(g)) => Box::new(Bound(g)),
            _ => Box::new(NoOpInstrument),
        })
    }
}
impl MetricAttributable<Box<dyn HistogramBase>> for Instrument {
    fn with_attributes(&self, attributes: &MetricAttributes) -> AttributeResult<dyn HistogramBase> {
        Ok(match self.bind(attributes) {
            Some(Child::Histogram(h)) => Box::new(Bound(h)),
            _ => Box::new(NoOpInstrument),
        })
    }
}
impl MetricAttributable<Box<dyn HistogramF64Base>> for Instrument {
    fn with_attributes(&self, attributes: &MetricAttributes) -> AttributeResult<dyn HistogramF64Base> {
        Ok(match self.bind(attributes) {
            Some(Child::Histogram(h)) => Box::new(Bound(h)),
            _ => Box::new(NoOpInstrument),
        })
    }
}
impl MetricAttributable<Box<dyn HistogramDurationBase>> for Instrument {
    fn with_attributes(&self, attributes: &MetricAttributes) -> AttributeResult<dyn HistogramDurationBase> {
        Ok(match self.bind(attributes) {
            Some(Child::Histogram(h)) => Box::new(Bound(h)),
            _ => Box::new(NoOpInstrument),
        })
    }
}

/// The [`CoreMeter`] given to the SDK (see [`super::temporal_meter`]); stateless, every
/// instance records into the process-wide vectors.
#[derive(Debug)]
pub(super) struct SdkMeter;

fn histogram(params: &MetricParameters, name: String, seconds: bool) -> Instrument {
    let base = params.name.strip_prefix(SDK_PREFIX).unwrap_or(&params.name);
    let mut instrument = Instrument::new(params, name, Kind::Histogram);
    instrument.buckets = default_buckets_for(base, seconds).to_vec();
    instrument
}

impl CoreMeter for SdkMeter {
    fn new_attributes(&self, attributes: NewAttributes) -> MetricAttributes {
        MetricAttributes::Prometheus { labels: Arc::new(OrderedPromLabelSet::from(attributes)) }
    }

    fn extend_attributes(&self, existing: MetricAttributes, attributes: NewAttributes) -> MetricAttributes {
        let mut labels = match existing {
            MetricAttributes::Prometheus { labels } => Arc::unwrap_or_clone(labels),
            other => OrderedPromLabelSet::from(NewAttributes::from(
                label_pairs(&other).into_iter().map(|(k, v)| MetricKeyValue::new(k, v)),
            )),
        };
        for kv in attributes.attributes {
            labels.add_kv(kv);
        }
        MetricAttributes::Prometheus { labels: Arc::new(labels) }
    }

    fn counter(&self, params: MetricParameters) -> Counter {
        let name =
            if params.name.ends_with("_total") { params.name.to_string() } else { format!("{}_total", params.name) };
        Counter::new(Arc::new(Instrument::new(&params, name, Kind::Counter)))
    }

    fn histogram(&self, params: MetricParameters) -> Histogram {
        Histogram::new(Arc::new(histogram(&params, params.name.to_string(), false)))
    }

    fn histogram_f64(&self, params: MetricParameters) -> HistogramF64 {
        HistogramF64::new(Arc::new(histogram(&params, params.name.to_string(), false)))
    }

    fn histogram_duration(&self, params: MetricParameters) -> HistogramDuration {
        HistogramDuration::new(Arc::new(histogram(&params, format!("{}_seconds", params.name), true)))
    }

    fn gauge(&self, params: MetricParameters) -> Gauge {
        Gauge::new(Arc::new(Instrument::new(&params, params.name.to_string(), Kind::IntGauge)))
    }

    fn gauge_f64(&self, params: MetricParameters) -> GaugeF64 {
        GaugeF64::new(Arc::new(Instrument::new(&params, params.name.to_string(), Kind::Gauge)))
    }

    fn up_down_counter(&self, params: MetricParameters) -> UpDownCounter {
        UpDownCounter::new(Arc::new(Instrument::new(&params, params.name.to_string(), Kind::IntGauge)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(name: &'static str) -> MetricParameters {
        MetricParameters::builder().name(name).description("test metric").build()
    }

    /// The SDK's recording paths (bound instruments and per-call attributes) end up in
    /// [`gather`] under Prometheus names, one family per name.
    #[test]
    fn sdk_instruments_render_with_prometheus_names() {
        let meter = SdkMeter;
        let base = meter.new_attributes(NewAttributes::from([MetricKeyValue::new("task_queue", "unit-q")]));
        let with_type =
            meter.extend_attributes(base.clone(), NewAttributes::from([MetricKeyValue::new("workflow_type", "Unit")]));

        let counter = meter.counter(params("temporal_unit_test_completed"));
        counter.add(2, &with_type);
        counter.add(1, &base); // same name, fewer labels: a second vector, one family
        let mut bound = meter.histogram_duration(params("temporal_unit_test_latency"));
        bound.update_attributes(with_type.clone());
        bound.records(Duration::from_millis(250));
        meter.up_down_counter(params("temporal_unit_test_slots")).add(-3, &base);

        let families = gather();
        let find =
            |name: &str| families.iter().find(|f| f.name() == name).unwrap_or_else(|| panic!("no family {name}"));
        let completed = find("temporal_unit_test_completed_total");
        assert_eq!(completed.get_metric().len(), 2);
        let total: f64 = completed.get_metric().iter().map(|m| m.get_counter().get_value()).sum();
        assert_eq!(total, 3.0);
        let latency = find("temporal_unit_test_latency_seconds").get_metric()[0].get_histogram();
        assert_eq!(latency.get_sample_count(), 1);
        assert!((latency.get_sample_sum() - 0.25).abs() < 1e-9);
        assert_eq!(find("temporal_unit_test_slots").get_metric()[0].get_gauge().get_value(), -3.0);

        // A name reused with another type is refused instead of corrupting the family.
        meter.gauge(params("temporal_unit_test_completed_total")).record(7, &base);
        assert!(
            gather()
                .iter()
                .filter(|f| f.name() == "temporal_unit_test_completed_total")
                .all(|f| f.get_metric().len() == 2)
        );
    }
}
