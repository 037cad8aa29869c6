//! The in-memory sink for tests, and flattened metric points.

use std::future::Future;
use std::sync::{Arc, Mutex};

use opentelemetry::Value;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::InMemoryMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Telemetry kept in memory, for tests: pass it to
/// [`FlowtelBuilder::with_in_memory`](crate::FlowtelBuilder::with_in_memory),
/// record, flush, then look at what was exported.
///
/// ```
/// use std::time::Duration;
/// use flowtel::{Flowtel, FlowEvent, InMemory};
/// let sink = InMemory::new();
/// let flowtel = Flowtel::builder().with_in_memory(&sink).build().unwrap();
/// flowtel.record(FlowEvent::builder("node_success", 1_700_000_000.0)
///     .node("a", "a-1").trace_id("3e512c5b0a184257a25c215d19544e6a")
///     .latency_ms(5.0).build().unwrap()).unwrap();
/// flowtel.shutdown(Duration::from_secs(5)).unwrap();
/// assert_eq!(sink.spans().len(), 2); // the attempt and its run's root
/// assert!(sink.metric_points().iter().any(|p| p.name == "flow.node.duration"));
/// ```
#[derive(Clone, Debug)]
pub struct InMemory {
    pub(crate) spans: MemorySpans,
    pub(crate) metrics: InMemoryMetricExporter,
}

/// The span half of [`InMemory`]. (The SDK's own in-memory span exporter
/// forgets everything on shutdown, which is exactly when tests look.)
#[derive(Clone, Debug, Default)]
pub(crate) struct MemorySpans(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for MemorySpans {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(batch);
        std::future::ready(Ok(()))
    }
}

impl Default for InMemory {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemory {
    /// An empty sink.
    pub fn new() -> Self {
        InMemory {
            spans: MemorySpans::default(),
            metrics: InMemoryMetricExporter::default(),
        }
    }

    /// Every span exported so far.
    pub fn spans(&self) -> Vec<SpanData> {
        self.spans
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forget everything exported so far (for long benchmarks and soaks).
    pub fn clear(&self) {
        self.spans
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.metrics.reset();
    }

    /// The metric points of the latest export (cumulative totals).
    pub fn metric_points(&self) -> Vec<MetricPoint> {
        self.metrics
            .get_finished_metrics()
            .unwrap_or_default()
            .last()
            .map(flatten)
            .unwrap_or_default()
    }
}

/// One metric data point, flattened for assertions and console output.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MetricPoint {
    /// Metric name.
    pub name: String,
    /// Attributes, sorted by key, values rendered as strings.
    pub attributes: Vec<(String, String)>,
    /// The value.
    pub value: PointValue,
}

impl MetricPoint {
    /// The value of attribute `key`, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The value of a [`MetricPoint`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum PointValue {
    /// Counter or UpDownCounter total.
    Sum(f64),
    /// Last gauge value.
    Gauge(f64),
    /// Histogram count and sum.
    Histogram {
        /// Number of observations.
        count: u64,
        /// Sum of observations.
        sum: f64,
    },
}

fn value_str(v: &Value) -> String {
    v.as_str().into_owned()
}

fn attrs<'a>(it: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = it
        .map(|kv| (kv.key.to_string(), value_str(&kv.value)))
        .collect();
    v.sort();
    v
}

fn flatten_data<T: Copy>(
    name: &str,
    data: &MetricData<T>,
    to_f64: fn(T) -> f64,
    out: &mut Vec<MetricPoint>,
) {
    let point = |attributes, value| MetricPoint {
        name: name.to_string(),
        attributes,
        value,
    };
    match data {
        MetricData::Gauge(g) => {
            for p in g.data_points() {
                out.push(point(
                    attrs(p.attributes()),
                    PointValue::Gauge(to_f64(p.value())),
                ));
            }
        }
        MetricData::Sum(s) => {
            for p in s.data_points() {
                out.push(point(
                    attrs(p.attributes()),
                    PointValue::Sum(to_f64(p.value())),
                ));
            }
        }
        MetricData::Histogram(h) => {
            for p in h.data_points() {
                let value = PointValue::Histogram {
                    count: p.count(),
                    sum: to_f64(p.sum()),
                };
                out.push(point(attrs(p.attributes()), value));
            }
        }
        MetricData::ExponentialHistogram(h) => {
            for p in h.data_points() {
                let value = PointValue::Histogram {
                    count: p.count() as u64,
                    sum: to_f64(p.sum()),
                };
                out.push(point(attrs(p.attributes()), value));
            }
        }
    }
}

/// Every data point of one export, flattened. Integer values become f64
/// (exact below 2^53, plenty for assertions and console output).
pub(crate) fn flatten(rm: &ResourceMetrics) -> Vec<MetricPoint> {
    let mut out = Vec::new();
    for sm in rm.scope_metrics() {
        for m in sm.metrics() {
            match m.data() {
                AggregatedMetrics::F64(d) => flatten_data(m.name(), d, |v| v, &mut out),
                AggregatedMetrics::U64(d) => flatten_data(m.name(), d, |v| v as f64, &mut out),
                AggregatedMetrics::I64(d) => flatten_data(m.name(), d, |v| v as f64, &mut out),
            }
        }
    }
    out
}
